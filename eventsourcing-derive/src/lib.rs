//! Procedural macros of the `eventsourcing` crate. Use them through
//! `eventsourcing` (which re-exports them), not from this crate directly.
//!
//! Every macro runs the same three steps: `ast` parses the input into a
//! small model, checking what concerns one item; `valid` checks the rules
//! across items; and `expand` generates code from a model that passed, and
//! cannot fail. Errors from the first two steps accumulate in one `Ctxt`;
//! if there are any, `expand::fallback` emits them with the user's item and
//! stand-ins for the generated code, so one mistake is reported once.

mod ast;
mod attr;
mod ctxt;
mod expand;
mod symbol;
mod valid;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use syn::parse_macro_input;

use crate::ast::{AggregateItem, EventEnum, PolicyImpl};
use crate::attr::PolicyArgs;
use crate::ctxt::Ctxt;

/// Makes a struct and its impl block an event-sourced aggregate.
///
/// On the struct, it adds the aggregate's hidden bookkeeping field and the
/// methods `id()`, `version()`, `head()` and `discard()`. Put it above any
/// `#[derive]`, which must include `Default`.
///
/// On the impl block, every method marked `#[event(Name)]` becomes an event:
/// the method's arguments are the event's fields, calling the method records
/// the event and runs the body, and replay runs the same body from the
/// stored event. Exactly one method is marked `#[created(Name)]`; it becomes
/// an associated function that starts a new aggregate (and a `_with_id`
/// twin that takes the id). The macro generates the public enum
/// `<Aggregate>Event`, implements `Aggregate` and `Event`, and gives each
/// event the topic `Aggregate.Name` unless `topic = "..."` renames it.
///
/// An event method takes `&mut self` and named parameters of owned,
/// concrete types, returns nothing, and is neither generic, `async`,
/// `const`, `unsafe` nor `extern`. Each parameter type must implement
/// serde's `Serialize` and `Deserialize` (events are stored as JSON) and
/// `Clone`, `Debug` and `PartialEq` (which the event enum derives). The
/// names `Discarded`, `id`, `version`, `head`, `discard`,
/// `<creation>_with_id` and anything starting with `__es_` are taken.
///
/// `#[aggregate(crate = "path")]` names the runtime crate when a
/// dependency renames it; inside the impl block, `#[event]` and
/// `#[created]` may then also be written `#[path::event]`.
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = parse_macro_input!(input as syn::Item);
    let cx = Ctxt::default();
    let model = AggregateItem::from_syn(&cx, args.into(), item);
    valid::check_aggregate(&cx, &model);
    match cx.check() {
        Ok(()) => expand::aggregate(&model),
        Err(errors) => expand::fallback::aggregate(&errors, &model),
    }
    .into()
}

/// What it generates: the impl block as written, without the `#[on]`,
/// `#[setup]` and `#[reset]` attributes, and `impl Policy<C> for` its
/// type, whose `handle` decodes the envelope as each upstream event enum
/// in turn and calls the handler of the variant.
//
// The manual is on the re-export in `eventsourcing/src/lib.rs`, where its
// example can run against the runtime; rustdoc shows it before this.
#[proc_macro_attribute]
pub fn policy(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = parse_macro_input!(input as syn::Item);
    let cx = Ctxt::default();
    let args = PolicyArgs::parse(&cx, args.into());
    let model = match PolicyImpl::from_item(&cx, args, item) {
        Ok(model) => model,
        Err(item) => {
            return expand::fallback::policy_unsupported(&cx.into_compile_errors(), &item).into();
        }
    };
    valid::check_policy(&cx, &model);
    match cx.check() {
        Ok(()) => expand::policy(&model),
        Err(errors) => expand::fallback::policy(&errors, &model),
    }
    .into()
}

/// Implements `Event` for a hand-written event enum (the explicit style).
///
/// Each variant is an event with named fields (or none); its topic is
/// `Prefix.Variant`, where the prefix is the enum's name without a trailing
/// `Event` unless `#[es(prefix = "...")]` sets it, and `#[es(topic = "...")]`
/// on a variant renames one topic. `#[es(crate = "path")]` names a renamed
/// runtime crate.
#[proc_macro_derive(Event, attributes(es))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as syn::DeriveInput);
    let cx = Ctxt::default();
    let Some(events) = EventEnum::from_derive(&cx, &input) else {
        // Not an enum (an error): there is nothing to stand in for.
        return cx.into_compile_errors().into();
    };
    valid::check_enum(&cx, &events);
    match cx.check() {
        Ok(()) => expand::derive_event(&events),
        Err(errors) => expand::fallback::derive_event(&errors, &input, &events),
    }
    .into()
}

/// Makes a newtype of `Uuid` an aggregate id type: `From<Uuid>` and
/// `From<Self> for Uuid`, and `AggregateId`, so that
/// `#[aggregate(id = TrackingId)]` can name it.
///
/// ```ignore
/// #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, AggregateId)]
/// pub struct TrackingId(Uuid);
/// ```
#[proc_macro_derive(AggregateId, attributes(es))]
pub fn derive_aggregate_id(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as syn::DeriveInput);
    let cx = Ctxt::default();
    let model = ast::IdNewtype::from_derive(&cx, &input);
    match (cx.check(), model) {
        (Ok(()), Some(model)) => expand::derive_aggregate_id(&model),
        (Err(errors), _) => errors,
        (Ok(()), None) => TokenStream2::new(),
    }
    .into()
}

/// Marks an event method inside an `#[aggregate]` impl block; on its own it
/// is an error that says so.
#[proc_macro_attribute]
pub fn event(_args: TokenStream, input: TokenStream) -> TokenStream {
    misplaced(symbol::EVENT, input)
}

/// Marks the creation method inside an `#[aggregate]` impl block; on its
/// own it is an error that says so.
#[proc_macro_attribute]
pub fn created(_args: TokenStream, input: TokenStream) -> TokenStream {
    misplaced(symbol::CREATED, input)
}

/// Marks an upcaster inside an `#[aggregate]` impl block:
/// `#[upcast(EventName, from = N)]` or `#[upcast(state, from = N)]` on a
/// function `fn(&mut JsonObject)` that turns stored data of schema version
/// `N` into version `N + 1`. On its own it is an error that says so.
#[proc_macro_attribute]
pub fn upcast(_args: TokenStream, input: TokenStream) -> TokenStream {
    misplaced(symbol::UPCAST, input)
}

/// `#[event]`, `#[created]` or `#[upcast]` that no `#[aggregate]` impl
/// block took: always an error.
fn misplaced(attribute: &str, input: TokenStream) -> TokenStream {
    let cx = Ctxt::default();
    valid::attribute_inside_aggregate(&cx, attribute);
    expand::fallback::misplaced(&cx.into_compile_errors(), &input.into()).into()
}

/// Marks a handler inside a `#[policy]` impl block:
/// `#[on(Enum::Variant)]` on the method that handles that upstream event.
/// On its own it is an error that says so.
#[proc_macro_attribute]
pub fn on(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_policy(symbol::ON, input)
}

/// Marks the method of a `#[policy]` impl block that creates what the
/// handlers need. On its own it is an error that says so.
#[proc_macro_attribute]
pub fn setup(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_policy(symbol::SETUP, input)
}

/// Marks the method of a `#[policy]` impl block that removes what the
/// handlers made. On its own it is an error that says so.
#[proc_macro_attribute]
pub fn reset(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_policy(symbol::RESET, input)
}

/// `#[on]`, `#[setup]` or `#[reset]` that no `#[policy]` impl block took:
/// always an error.
fn outside_policy(attribute: &str, input: TokenStream) -> TokenStream {
    let cx = Ctxt::default();
    valid::attribute_inside_policy(&cx, attribute);
    expand::fallback::misplaced(&cx.into_compile_errors(), &input.into()).into()
}
