//! Code generation over a validated model: it cannot fail, and reports
//! nothing. Generated code names the runtime only through
//! `<crate>::__private`, with absolute paths, and calls the runtime's traits
//! through free functions there (see that module for why), so that a user's
//! inherent method of the same name cannot hijack a call and a missing
//! supertrait is one error rather than one per call.
//!
//! - `root`: the struct half of `#[aggregate]` (`Root`, the bookkeeping).
//! - `aggregate`: the impl block half (triggers, `impl Aggregate`).
//! - `event`: the generated event enum and every `impl Event`.
//! - `codec`: the JSON writer and reader that events and state share.
//! - `policy`: `#[policy]`, the impl block and `impl Policy`.
//! - `fallback`: what is emitted instead when the input has errors.

mod aggregate;
mod codec;
mod event;
pub(crate) mod fallback;
mod policy;
mod root;

use proc_macro2::TokenStream;
use quote::ToTokens;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::{AggregateItem, EventEnum, PolicyImpl};

/// `#[aggregate]` on a struct or an impl block.
pub(crate) fn aggregate(model: &AggregateItem) -> TokenStream {
    match model {
        AggregateItem::Struct(model) => root::expand(model),
        AggregateItem::Impl(model) => aggregate::expand(model),
        // Parsing reports this as an error, so only the fallback meets it;
        // the item as written is still the whole answer.
        AggregateItem::Unsupported(item) => item.to_token_stream(),
    }
}

/// `#[policy]` on an impl block.
pub(crate) fn policy(model: &PolicyImpl) -> TokenStream {
    policy::expand(model)
}

/// `#[derive(Event)]` on a user's enum.
pub(crate) fn derive_event(events: &EventEnum) -> TokenStream {
    event::event_impl(events)
}

/// `#[derive(AggregateId)]`: `AggregateId`, and the conversions to and
/// from `Uuid` for users. The wrapped type must be `Uuid` (the conversions say so
/// otherwise, at the field).
pub(crate) fn derive_aggregate_id(model: &crate::ast::IdNewtype) -> TokenStream {
    let krate = &model.krate;
    let private = quote!(#krate::__private);
    let ident = &model.ident;
    let inner = &model.inner;
    let uuid = quote_spanned!(inner.span()=> #private::Uuid);
    quote! {
        #[automatically_derived]
        impl ::core::convert::From<#uuid> for #ident {
            #[inline]
            fn from(__es_id: #uuid) -> Self {
                #ident(__es_id)
            }
        }

        #[automatically_derived]
        impl ::core::convert::From<#ident> for #private::Uuid {
            #[inline]
            fn from(__es_id: #ident) -> Self {
                __es_id.0
            }
        }

        #[automatically_derived]
        impl #private::AggregateId for #ident {
            #[inline]
            fn from_uuid(__es_id: #private::Uuid) -> Self {
                #ident(__es_id)
            }

            #[inline]
            fn to_uuid(self) -> #private::Uuid {
                self.0
            }
        }
    }
}
