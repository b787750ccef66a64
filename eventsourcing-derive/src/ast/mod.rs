//! The small models the macros work on, parsed from syn input. Each keeps
//! the user's tokens, so that every error can point at them. Checks that
//! need only the item at hand are made here, while it is parsed, into the
//! one `Ctxt`; rules across items are in `valid`.

mod aggregate_impl;
mod aggregate_struct;
mod context;
mod event_enum;
mod handler;
mod id_newtype;
mod policy_impl;
mod signature;

pub(crate) use aggregate_impl::{
    AggregateImpl, Checked, EventMethod, MethodKind, event_enum_ident, method_kind,
};
pub(crate) use aggregate_struct::AggregateStruct;
pub(crate) use context::{Context, context_lifetime};
pub(crate) use event_enum::{EventEnum, Upcaster, Variant, versioned_topic};
pub(crate) use handler::{Found, MissingContext, Param};
pub(crate) use id_newtype::IdNewtype;
pub(crate) use policy_impl::{OnTarget, PolicyImpl, PolicyMethod, Role};
pub(crate) use signature::{has_apply, reject_unkeyable_maps};

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{Ident, Type};

use crate::attr::AggregateArgs;
use crate::ctxt::Ctxt;
use crate::symbol::RESERVED_PREFIX;

/// What `#[aggregate]` was put on.
pub(crate) enum AggregateItem {
    /// The aggregate's struct: its state.
    Struct(AggregateStruct),
    /// The aggregate's inherent impl block: its events.
    Impl(AggregateImpl),
    /// Anything else, which is always an error (recorded while parsing):
    /// the item as written, for the fallback to emit.
    Unsupported(syn::Item),
}

impl AggregateItem {
    /// Parses the attribute's arguments and the item it is on.
    pub(crate) fn from_syn(cx: &Ctxt, args: TokenStream, item: syn::Item) -> Self {
        let args = AggregateArgs::parse(cx, args);
        match item {
            syn::Item::Struct(item) => {
                AggregateItem::Struct(AggregateStruct::from_syn(cx, args, item))
            }
            syn::Item::Impl(item) => {
                if let Some((_, span)) = args.encryption {
                    cx.error_at(
                        span,
                        "how an aggregate is encrypted (`key = ...`, `public`) is declared on its struct, not on its impl block; put it in the struct's `#[aggregate(...)]`",
                    );
                }
                Self::from_impl(cx, args.krate, item)
            }
            syn::Item::Enum(item) => {
                cx.error_spanned_by(
                    item.enum_token,
                    "`#[aggregate]` goes on a struct with named fields (and on its impl block); an aggregate's state cannot be an enum, so put the enum in a field",
                );
                AggregateItem::Unsupported(syn::Item::Enum(item))
            }
            other => {
                cx.error_spanned_by(
                    item_keyword(&other),
                    "`#[aggregate]` goes on a struct with named fields and on its impl block",
                );
                AggregateItem::Unsupported(other)
            }
        }
    }
}

impl AggregateItem {
    fn from_impl(cx: &Ctxt, krate: syn::Path, item: syn::ItemImpl) -> Self {
        match AggregateImpl::from_syn(cx, krate, item) {
            Ok(model) => AggregateItem::Impl(model),
            Err(item) => AggregateItem::Unsupported(syn::Item::Impl(*item)),
        }
    }
}

/// The tokens that name what kind of item this is (`fn f`, `trait T`...),
/// for a caret shorter than the whole item.
fn item_keyword(item: &syn::Item) -> TokenStream {
    match item {
        syn::Item::Fn(f) => {
            let (fn_token, ident) = (&f.sig.fn_token, &f.sig.ident);
            quote!(#fn_token #ident)
        }
        syn::Item::Trait(t) => {
            let (trait_token, ident) = (&t.trait_token, &t.ident);
            quote!(#trait_token #ident)
        }
        syn::Item::Union(u) => {
            let (union_token, ident) = (&u.union_token, &u.ident);
            quote!(#union_token #ident)
        }
        syn::Item::Mod(m) => {
            let (mod_token, ident) = (&m.mod_token, &m.ident);
            quote!(#mod_token #ident)
        }
        syn::Item::Type(t) => {
            let (type_token, ident) = (&t.type_token, &t.ident);
            quote!(#type_token #ident)
        }
        other => other.to_token_stream(),
    }
}

/// One field of an event, or of the aggregate's state.
#[derive(Clone)]
pub(crate) struct Field {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

impl Field {
    /// The JSON key of the field: its name without any `r#`.
    pub(crate) fn key(&self) -> String {
        let name = self.ident.to_string();
        name.strip_prefix("r#").map_or(name.clone(), str::to_owned)
    }
}

/// The error for type parameters on an aggregate's struct or impl block.
const GENERIC_AGGREGATE: &str = "aggregates cannot be generic: stored events must decode to one aggregate type; remove the type parameters";

/// Rejects names that collide with what the macros generate.
fn reject_reserved_ident(cx: &Ctxt, ident: &Ident, what: &str) {
    let name = ident.to_string();
    if name.starts_with(RESERVED_PREFIX) {
        cx.error_spanned_by(
            ident,
            format!(
                "the {what} name `{name}` is reserved: names starting with `{RESERVED_PREFIX}` belong to the generated code; rename it"
            ),
        );
    }
}

/// Tokens as the user would write them: `&str`, `Vec<u8>`.
pub(crate) fn tokens_to_string<T: ToTokens>(tokens: &T) -> String {
    let mut out = String::new();
    let text = tokens.to_token_stream().to_string();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        // `quote` puts a space between every token; keep only the ones a
        // person would write (after a comma and around `+`, `=` and `dyn`).
        if c == ' ' {
            let prev = out.chars().last();
            let next = chars.peek().copied();
            let keep = matches!(prev, Some(',' | '+' | '='))
                || matches!(next, Some('+' | '='))
                || prev.is_some_and(char::is_alphanumeric)
                    && next.is_some_and(|n| n.is_alphanumeric() || n == '_');
            if !keep {
                continue;
            }
        }
        out.push(c);
    }
    out
}
