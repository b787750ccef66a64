//! Rules that span several items. Each function checks one rule; the
//! comment says the rule and why it exists.

mod policy;

pub(crate) use policy::{attribute_inside_policy, check_policy};

use std::collections::HashSet;

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::ToTokens;

use crate::ast::{AggregateImpl, AggregateItem, EventEnum, MethodKind};
use crate::ctxt::Ctxt;
use crate::symbol::{DISCARDED, FORGOTTEN, GENERATED_METHODS, STATE, WITH_ID_SUFFIX};

/// The end of every discard topic.
const DISCARDED_SUFFIX: &str = ".Discarded";
/// The end of the topic of the event that forgetting records.
const FORGOTTEN_SUFFIX: &str = ".Forgotten";

/// Checks what `#[aggregate]` is on. A struct's rules concern the struct
/// alone, and were checked as it was parsed.
pub(crate) fn check_aggregate(cx: &Ctxt, model: &AggregateItem) {
    match model {
        AggregateItem::Impl(model) => check_impl(cx, model),
        AggregateItem::Struct(_) | AggregateItem::Unsupported(_) => {}
    }
}

/// Checks an `#[aggregate]` impl block as a whole.
fn check_impl(cx: &Ctxt, model: &AggregateImpl) {
    creation_events(cx, model);
    generated_names_are_free(cx, model);
    upcasters_name_events(cx, model);
    event_bodies_record_nothing(cx, model);
    check_enum(cx, &model.event_enum());
}

/// An event's body applies one recorded fact and records nothing: a call
/// of an event method (or `discard()`) from it would record a second
/// event inside the first one's version, which replay cannot follow. The
/// runtime refuses such a trigger; where the call is visible in the body,
/// it is refused here, at the call.
fn event_bodies_record_nothing(cx: &Ctxt, model: &AggregateImpl) {
    let triggers: Vec<String> = model
        .methods
        .iter()
        .filter(|m| m.kind == MethodKind::Event)
        .map(|m| m.func.sig.ident.to_string())
        .chain(std::iter::once("discard".to_owned()))
        .collect();
    for method in &model.methods {
        let body = match &method.checked {
            Some(checked) => checked.body.iter().map(ToTokens::to_token_stream).collect(),
            None => method.func.block.to_token_stream(),
        };
        for call in calls_of(body, &triggers) {
            let callee = call.to_string();
            let what = if callee == "discard" {
                "`discard()` records the `Discarded` event".to_owned()
            } else {
                format!("`{callee}` is an event method")
            };
            cx.error_at(
                call.span(),
                format!(
                    "the body of event method `{}` calls `{callee}`, but an event's body applies one recorded fact and cannot record another ({what}); call both from a command method",
                    method.func.sig.ident
                ),
            );
        }
    }
}

/// The identifiers of `tokens` called as `self.name(...)` or
/// `Self::name(...)` with `name` in `names`, however deeply nested.
fn calls_of(tokens: TokenStream, names: &[String]) -> Vec<proc_macro2::Ident> {
    let mut found = Vec::new();
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        if let TokenTree::Group(group) = tree {
            found.extend(calls_of(group.stream(), names));
        }
        let TokenTree::Ident(receiver) = tree else {
            continue;
        };
        let rest = &trees[i + 1..];
        let callee = match (receiver.to_string().as_str(), rest) {
            (
                "self",
                [
                    TokenTree::Punct(dot),
                    TokenTree::Ident(name),
                    TokenTree::Group(args),
                    ..,
                ],
            ) if dot.as_char() == '.' && args.delimiter() == Delimiter::Parenthesis => Some(name),
            (
                "Self",
                [
                    TokenTree::Punct(a),
                    TokenTree::Punct(b),
                    TokenTree::Ident(name),
                    TokenTree::Group(args),
                    ..,
                ],
            ) if a.as_char() == ':'
                && b.as_char() == ':'
                && args.delimiter() == Delimiter::Parenthesis =>
            {
                Some(name)
            }
            _ => None,
        };
        if let Some(name) = callee
            && names.iter().any(|n| name == n)
        {
            found.push(name.clone());
        }
    }
    found
}

/// Checks an event enum, generated or derived.
pub(crate) fn check_enum(cx: &Ctxt, events: &EventEnum) {
    unique_names(cx, events);
    unique_topics(cx, events);
    discarded_is_reserved(cx, events);
    upcasters_cover_versions(cx, events);
}

/// An `#[upcast(Name, from = N)]` names an event of this aggregate, or
/// `state`: an upcaster for nothing would silently never run.
fn upcasters_name_events(cx: &Ctxt, model: &AggregateImpl) {
    for upcaster in &model.upcasters {
        let target = upcaster.args.target.to_string();
        if target != STATE && !model.methods.iter().any(|m| m.name == target) {
            cx.error_spanned_by(
                &upcaster.args.target,
                format!(
                    "`{}` has no event named `{target}`; name one of its events, or `{STATE}` for the aggregate's state",
                    model.self_ident
                ),
            );
        }
    }
}

/// An event at schema version N has exactly one upcaster from each version
/// 1 to N - 1, and none from N or above: records are never rewritten, so
/// every old version must be readable, one step at a time.
fn upcasters_cover_versions(cx: &Ctxt, events: &EventEnum) {
    for variant in &events.variants {
        let version = variant.version();
        let mut seen = HashSet::new();
        for upcaster in &variant.upcasters {
            let from = upcaster.from.value;
            if from >= version {
                cx.error_spanned_by(
                    &upcaster.from.lit,
                    format!(
                        "event `{}` is at schema version {version}, so there is no version {from} to upcast from; raise its version with `version = {}` or remove this upcaster",
                        variant.ident,
                        from + 1
                    ),
                );
            } else if !seen.insert(from) {
                cx.error_spanned_by(
                    &upcaster.from.lit,
                    format!(
                        "event `{}` already has an upcaster from version {from}; keep one",
                        variant.ident
                    ),
                );
            }
        }
        for missing in (1..version).filter(|v| !seen.contains(v)) {
            let fix = if events.derived {
                format!(
                    "list one `fn(&mut JsonObject)` per older version, oldest first, in `upcasters = [...]` (entry {missing} upcasts version {missing})"
                )
            } else {
                format!(
                    "add `#[upcast({}, from = {missing})] fn ...(data: &mut JsonObject)`",
                    variant.ident
                )
            };
            let message = format!(
                "event `{}` is at schema version {version} but nothing upcasts its version {missing} data; {fix}",
                variant.ident
            );
            match &variant.version {
                Some(v) => cx.error_spanned_by(&v.lit, message),
                None => cx.error_spanned_by(&variant.ident, message),
            }
        }
    }
}

/// Exactly one method is marked `#[created]`: it becomes the associated
/// function that starts new aggregates, and replay needs a single
/// well-known first event. Several ways to create an aggregate are several
/// commands calling the one creation event.
fn creation_events(cx: &Ctxt, model: &AggregateImpl) {
    let mut created = model
        .methods
        .iter()
        .filter(|m| m.kind == MethodKind::Created);
    if created.next().is_none() {
        cx.error_spanned_by(
            &model.item.self_ty,
            format!(
                "aggregate `{}` has no creation event; mark the method that creates it with `#[created(Name)]`",
                model.self_ident
            ),
        );
    }
    for extra in created {
        cx.error_spanned_by(
            &extra.attr,
            "an aggregate has one creation event; make this an `#[event]` or a command that calls the creation method",
        );
    }
}

/// No method of the impl block has the name of a method the macros
/// generate (`id`, `version`, `head`, `discard`, and `<creation>_with_id`):
/// rustc would report the clash at the `#[aggregate]` line, not at the
/// method.
fn generated_names_are_free(cx: &Ctxt, model: &AggregateImpl) {
    for func in model.item.items.iter().filter_map(|item| match item {
        syn::ImplItem::Fn(func) => Some(func),
        _ => None,
    }) {
        let name = func.sig.ident.to_string();
        if GENERATED_METHODS.contains(&name.as_str()) {
            cx.error_spanned_by(
                &func.sig.ident,
                format!(
                    "`#[aggregate]` already gives `{}` a method `{name}()`; rename this one",
                    model.self_ident
                ),
            );
        } else if let Some(created) = model
            .methods
            .iter()
            .filter(|m| m.kind == MethodKind::Created)
            .find(|m| format!("{}{WITH_ID_SUFFIX}", m.func.sig.ident) == name)
        {
            cx.error_spanned_by(
                &func.sig.ident,
                format!(
                    "`#[aggregate]` already generates `{name}()` next to the creation method `{}()`; rename this one",
                    created.func.sig.ident
                ),
            );
        }
    }
}

/// Event names are unique: each becomes a variant of the event enum.
fn unique_names(cx: &Ctxt, events: &EventEnum) {
    let mut seen = HashSet::new();
    for variant in &events.variants {
        if !seen.insert(variant.ident.to_string()) {
            cx.error_spanned_by(
                &variant.ident,
                format!(
                    "two events are named `{}`; give each event its own name",
                    variant.ident
                ),
            );
        }
    }
}

/// Topics are unique: the topic is how a stored event finds its type again.
/// A variant whose name is already taken is skipped: its default topic
/// repeats too, and the name error is the one to fix.
fn unique_topics(cx: &Ctxt, events: &EventEnum) {
    let mut names = HashSet::new();
    let mut topics = HashSet::new();
    for variant in &events.variants {
        if !names.insert(variant.ident.to_string()) {
            continue;
        }
        if !topics.insert(variant.topic.value()) {
            cx.error_spanned_by(
                &variant.topic,
                format!(
                    "two events have the topic `{}`; give each event its own topic",
                    variant.topic.value()
                ),
            );
        }
    }
}

/// `Discarded`, and the topic `<Aggregate>.Discarded`, belong to the event
/// that `discard()` records: replay treats that topic as the end of the
/// aggregate's life, so no user event may have it.
fn discarded_is_reserved(cx: &Ctxt, events: &EventEnum) {
    for variant in &events.variants {
        if variant.ident == DISCARDED {
            cx.error_spanned_by(
                &variant.ident,
                "the event name `Discarded` is reserved for the event that `discard()` records; choose another name",
            );
        } else if variant.ident == FORGOTTEN {
            cx.error_spanned_by(
                &variant.ident,
                "the event name `Forgotten` is reserved for the event that forgetting an aggregate records; choose another name",
            );
        } else if variant.topic.value().ends_with(FORGOTTEN_SUFFIX) {
            cx.error_spanned_by(
                &variant.topic,
                format!(
                    "topics ending in `{FORGOTTEN_SUFFIX}` are reserved for the event that forgetting an aggregate records; choose another topic"
                ),
            );
        } else if variant.topic.value() == events.discarded_topic
            || variant.topic.value().ends_with(DISCARDED_SUFFIX)
        {
            cx.error_spanned_by(
                &variant.topic,
                format!(
                    "topics ending in `{DISCARDED_SUFFIX}` are reserved for the event that `discard()` records (`{}`); choose another topic",
                    events.discarded_topic
                ),
            );
        }
    }
}

/// `#[event]`, `#[created]` and `#[upcast]` belong inside an `#[aggregate]`
/// impl block, which reads and removes them: the method is the event, and
/// only the aggregate records it. One that reaches its own macro is
/// anywhere else, where nothing would ever record the event or run the
/// upcaster. Only that macro calls this, so the rule is already broken.
pub(crate) fn attribute_inside_aggregate(cx: &Ctxt, attribute: &str) {
    cx.error_at(
        Span::call_site(),
        format!(
            "`#[{attribute}]` only works on methods inside an `#[aggregate]` impl block; add `#[aggregate]` to the impl"
        ),
    );
}
