//! Rules across the methods of a `#[policy]` impl block. Each function
//! checks one rule; the comment says the rule and why it exists.

use std::collections::HashMap;

use proc_macro2::Span;

use crate::ast::{
    Context, Found, MissingContext, Param, PolicyImpl, PolicyMethod, Role, tokens_to_string,
};
use crate::ctxt::Ctxt;
use crate::symbol::{ON, POLICY, RESET, SETUP};

/// Checks a `#[policy]` impl block as a whole.
pub(crate) fn check_policy(cx: &Ctxt, model: &PolicyImpl) {
    has_handlers(cx, model);
    one_context_type(cx, model);
    one_handler_per_event(cx, model);
    one_hook_each(cx, model);
    forgotten_takes_no_fields(cx, model);
}

/// A policy has at least one `#[on]` handler: a follower reads only the
/// topics its handlers want, so one without handlers would read nothing,
/// and its context type would be unknown.
fn has_handlers(cx: &Ctxt, model: &PolicyImpl) {
    if !model
        .methods
        .iter()
        .any(|m| matches!(m.role, Role::Handler(_)))
    {
        cx.error_spanned_by(
            &model.item.self_ty,
            format!(
                "`{}` has no handlers; mark each method that handles an upstream event with `#[{ON}(Enum::Variant)]`",
                model.self_ident
            ),
        );
    }
}

/// Every handler, `#[setup]` and `#[reset]` takes the same context type
/// (by `&` or `&mut`) as its first parameter after `self`: the generated
/// impl is `Policy<C>` for that one type, and the follower hands each
/// method the same context.
fn one_context_type(cx: &Ctxt, model: &PolicyImpl) {
    let expected = model
        .methods
        .iter()
        .find_map(|m| m.sig.context.as_ref().ok().map(|context| (context, m)));
    for method in &model.methods {
        match (&method.sig.context, expected) {
            (Ok(context), Some((expected, owner))) if expected.key() != context.key() => {
                cx.error_spanned_by(
                    &context.written,
                    format!(
                        "this context is `{}`, but `{}` takes `{}`: every handler, `#[{SETUP}]` and `#[{RESET}]` of a policy works with one context type; take `&{}` or `&mut {}` here",
                        context.display(),
                        owner.sig.ident,
                        expected.display(),
                        expected.display(),
                        expected.display(),
                    ),
                );
            }
            (Ok(_), _) => {}
            (Err(missing), expected) => missing_context(cx, method, missing, expected),
        }
    }
}

/// The error for a method whose first parameter after `self` is not the
/// context: it says where the context goes, and which parameter it is
/// when one later on has the context type of the others (or, after an
/// envelope, is any reference).
fn missing_context(
    cx: &Ctxt,
    method: &PolicyMethod,
    missing: &MissingContext,
    expected: Option<(&Context, &PolicyMethod)>,
) {
    let what = subject(&method.role);
    let misplaced = match expected {
        Some((expected, _)) => missing
            .later
            .iter()
            .find(|(_, context)| context.key() == expected.key()),
        None if matches!(missing.found, Found::Envelope) => missing.later.first(),
        None => None,
    };
    let example = expected.map_or_else(
        || "`cx: &mut Totals` or `tx: &rusqlite::Transaction<'_>`".to_owned(),
        |(context, _)| format!("`cx: {}`", reference_to(context)),
    );
    let rule = format!("{what} take the context first after `self`, by reference");
    let message = match (&missing.found, misplaced) {
        (Found::Nothing, _) => format!(
            "`{}` has no context parameter: {rule}; add {example}",
            method.sig.ident
        ),
        (Found::Envelope, Some((param, _))) => {
            format!("the context comes before the envelope: {rule}; move `{param}` here")
        }
        (Found::Envelope, None) => {
            format!("the context comes before the envelope: {rule}; add {example} here")
        }
        (Found::Value, Some((param, _))) => format!(
            "expected the context here: {rule}, then the event's fields; move `{param}` here"
        ),
        (Found::Value, None) => format!(
            "expected the context here: {rule}, such as {example}; the event's fields come after it"
        ),
    };
    cx.error_spanned_by(&missing.at, message);
}

/// `&X` or `&mut X`, as the method that names `context` takes it.
fn reference_to(context: &Context) -> String {
    let mutability = if context.mutable { "mut " } else { "" };
    format!("&{mutability}{}", context.display())
}

/// "handlers", "`#[setup]` methods": the subject of a message about
/// `role`.
fn subject(role: &Role) -> String {
    match role {
        Role::Handler(_) => "handlers".to_owned(),
        Role::Setup(_) => format!("`#[{SETUP}]` methods"),
        Role::Reset(_) => format!("`#[{RESET}]` methods"),
    }
}

/// An upstream event has one handler: the follower calls the first
/// handler that matches, so a second one would never run.
/// A handler of `Enum::Forgotten` takes the envelope and no field: the
/// event has none.
fn forgotten_takes_no_fields(cx: &Ctxt, model: &PolicyImpl) {
    for (target, method) in model.targets() {
        if !target.is_forgotten() {
            continue;
        }
        for param in &method.sig.params {
            if let Param::Field { ident, .. } = param {
                cx.error_spanned_by(
                    ident,
                    format!(
                        "the `Forgotten` event has no fields; take `&Envelope` and read `originator_id()` to know which aggregate was forgotten (`{ident}` is not a field)"
                    ),
                );
            }
        }
    }
}

fn one_handler_per_event(cx: &Ctxt, model: &PolicyImpl) {
    let mut seen: HashMap<String, &PolicyMethod> = HashMap::new();
    for (target, method) in model.targets() {
        let key = format!(
            "{}::{}",
            tokens_to_string(&target.enum_path),
            target.variant
        );
        if let Some(first) = seen.get(&key) {
            cx.error_spanned_by(
                &target.attr,
                format!(
                    "`{key}` already has a handler, `{}`: an upstream event has one handler in a policy; do both things in one handler",
                    first.sig.ident
                ),
            );
        } else {
            seen.insert(key, method);
        }
    }
}

/// A policy has at most one `#[setup]` and one `#[reset]`: each is one
/// method of the `Policy` trait.
fn one_hook_each(cx: &Ctxt, model: &PolicyImpl) {
    for (reset, name) in [(false, SETUP), (true, RESET)] {
        let mut hooks = model.hooks(reset);
        let Some((_, first)) = hooks.next() else {
            continue;
        };
        for (attr, _) in hooks {
            cx.error_spanned_by(
                attr,
                format!(
                    "a policy has one `#[{name}]`, here `{}`; do the work of both in it (it may call other methods)",
                    first.sig.ident
                ),
            );
        }
    }
}

/// `#[on]`, `#[setup]` and `#[reset]` belong inside a `#[policy]` impl
/// block, which reads and removes them. One that reaches its own macro is
/// anywhere else, where no follower would ever call the method. Only that
/// macro calls this, so the rule is already broken.
pub(crate) fn attribute_inside_policy(cx: &Ctxt, attribute: &str) {
    cx.error_at(
        Span::call_site(),
        format!(
            "`#[{attribute}]` only works on methods inside a `#[{POLICY}]` impl block; add `#[{POLICY}]` to the impl"
        ),
    );
}
