//! What the macros emit when the input has errors, after the errors
//! themselves: the user's item as written, plus stand-ins for what would
//! have been generated, so that one mistake is reported once rather than
//! again wherever the aggregate or its events are used. Like the rest of
//! `expand`, this cannot fail: the errors arrive already as tokens.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{ImplItem, Path};

use super::aggregate::hidden_method;
use super::event::event_impl;
use super::policy::{constants, impl_header};
use super::root::{self, RootBodies, root_impls, struct_as_emitted};
use crate::ast::{
    AggregateImpl, AggregateItem, AggregateStruct, EventEnum, EventMethod, MethodKind, PolicyImpl,
    event_enum_ident, method_kind,
};
use crate::symbol::{GENERATED_METHODS, WITH_ID_SUFFIX};

/// `#[aggregate]` with errors.
pub(crate) fn aggregate(errors: &TokenStream, model: &AggregateItem) -> TokenStream {
    match model {
        AggregateItem::Struct(model) => aggregate_struct(errors, model),
        AggregateItem::Impl(model) => impl_block(errors, model),
        AggregateItem::Unsupported(item) => unsupported(errors, item),
    }
}

/// The struct and `Root`, so that the impl block's `Aggregate` impl adds no
/// errors of its own: the whole expansion when the struct can hold the
/// bookkeeping field (the mistakes are elsewhere, such as in a field's
/// name), else `Root` with bodies that never run; for a generic struct, the
/// struct alone.
fn aggregate_struct(errors: &TokenStream, model: &AggregateStruct) -> TokenStream {
    if !model.item.generics.params.is_empty() {
        // `Root` cannot be implemented without knowing the parameters.
        let item = &model.item;
        return quote!(#errors #item);
    }
    if model.room_for_bookkeeping {
        let expanded = root::expand(model);
        return quote!(#errors #expanded);
    }
    // A tuple or unit struct, or one with a field of the bookkeeping's
    // name: `Root` all the same, with bodies that never run.
    let item = struct_as_emitted(model);
    let unreachable = quote!(::core::unreachable!());
    let impls = root_impls(
        model,
        &RootBodies {
            meta: unreachable.clone(),
            meta_mut: unreachable,
            state_consts: TokenStream::new(),
            state_codec: TokenStream::new(),
        },
    );
    quote! {
        #errors
        #item
        #impls
    }
}

/// Something `#[aggregate]` cannot go on, as written; an impl block loses
/// our attributes (see `strip_event_attrs`).
fn unsupported(errors: &TokenStream, item: &syn::Item) -> TokenStream {
    let mut item = item.clone();
    if let syn::Item::Impl(item) = &mut item {
        strip_event_attrs(item);
    }
    quote!(#errors #item)
}

/// Removes `#[event]` and `#[created]` from every method of `item`, so that
/// when the block cannot be modelled the stand-alone attribute macros do not
/// add "outside an aggregate" errors to the real one.
fn strip_event_attrs(item: &mut syn::ItemImpl) {
    for impl_item in &mut item.items {
        if let ImplItem::Fn(func) = impl_item {
            func.attrs.retain(|attr| method_kind(attr).is_none());
        }
    }
}

/// The impl block as written (our attributes removed), an empty event enum
/// and an `Aggregate` impl over it, so that one mistake does not cascade
/// into errors wherever the aggregate is used.
fn impl_block(errors: &TokenStream, model: &AggregateImpl) -> TokenStream {
    let mut item = model.item.clone();
    let taken: Vec<String> = item
        .items
        .iter()
        .filter_map(|impl_item| match impl_item {
            ImplItem::Fn(func) => Some(func.sig.ident.to_string()),
            _ => None,
        })
        .collect();
    let mut hidden = Vec::new();
    for (method, &slot) in model.methods.iter().zip(&model.method_slots) {
        item.items[slot] = ImplItem::Verbatim(stub_methods(method, &model.krate, &taken));
        hidden.push(ImplItem::Verbatim(hidden_method(method, &model.self_ident)));
    }
    item.items.extend(hidden);
    // A method that clashes with a generated one is already an error; keeping
    // it would add rustc's own "duplicate definitions" at the struct.
    item.items.retain(|impl_item| match impl_item {
        ImplItem::Fn(func) => !GENERATED_METHODS.contains(&func.sig.ident.to_string().as_str()),
        _ => true,
    });
    if !item.generics.params.is_empty() {
        // Already an error; an `Aggregate` impl would only add more.
        return quote!(#errors #item);
    }
    let krate = &model.krate;
    let self_ty = &model.item.self_ty;
    let enum_ident = event_enum_ident(&model.self_ident);
    let private = quote!(#krate::__private);
    let event_impl = event_impl(&EventEnum {
        krate: krate.clone(),
        ident: enum_ident.clone(),
        variants: Vec::new(),
        discarded_topic: String::new(),
        derived: false,
    });
    quote! {
        #errors
        #item

        #[doc(hidden)]
        #[derive(::core::clone::Clone, ::core::fmt::Debug, ::core::cmp::PartialEq)]
        pub enum #enum_ident {}

        #event_impl

        #[automatically_derived]
        impl #private::Aggregate for #self_ty {
            type Event = #enum_ident;
            fn apply(&mut self, __es_event: #enum_ident) {
                match __es_event {}
            }
        }
    }
}

/// The public method(s) an event method becomes, with the
/// generated signature and a body that never runs (the build has failed),
/// so that callers written for the generated API add no errors of their
/// own. Names in `taken` are left to the user's methods.
fn stub_methods(method: &EventMethod, krate: &Path, taken: &[String]) -> TokenStream {
    let func = &method.func;
    let attrs = &func.attrs;
    let vis = &func.vis;
    let name = &func.sig.ident;
    if GENERATED_METHODS.contains(&name.to_string().as_str()) {
        return TokenStream::new();
    }
    let mut sig = func.sig.clone();
    let args: Vec<syn::FnArg> = sig
        .inputs
        .iter()
        .filter(|arg| matches!(arg, syn::FnArg::Typed(_)))
        .cloned()
        .collect();
    let unreachable = quote!({ ::core::unreachable!() });
    let allow = quote!(#[allow(unused_variables, clippy::unused_self)]);
    match method.kind {
        MethodKind::Event => {
            sig.inputs = syn::parse_quote!(&mut self, #(#args),*);
            quote!(#(#attrs)* #allow #vis #sig #unreachable)
        }
        MethodKind::Created => {
            sig.inputs = syn::parse_quote!(#(#args),*);
            sig.output = syn::parse_quote!(-> Self);
            let with_id = format_ident!("{}{}", name, WITH_ID_SUFFIX, span = name.span());
            let twin = if taken.contains(&with_id.to_string()) {
                TokenStream::new()
            } else {
                let mut twin = sig.clone();
                twin.ident = with_id;
                twin.inputs = syn::parse_quote!(_: impl ::core::convert::Into<#krate::__private::Uuid>, #(#args),*);
                quote!(#allow #[allow(dead_code)] #vis #twin #unreachable)
            };
            quote!(#(#attrs)* #allow #vis #sig #unreachable #twin)
        }
    }
}

/// `#[derive(Event)]` with errors: the errors, and an `Event` impl that
/// stands in for the real one unless the enum is generic (a stand-in would
/// need the parameters, and add errors of its own).
pub(crate) fn derive_event(
    errors: &TokenStream,
    input: &syn::DeriveInput,
    events: &EventEnum,
) -> TokenStream {
    if !input.generics.params.is_empty() {
        return errors.clone();
    }
    let stub = event_impl_stub(events);
    quote!(#errors #stub)
}

/// An `Event` impl whose bodies never run (the build has failed), so that
/// the aggregate naming this enum adds no errors of its own.
fn event_impl_stub(events: &EventEnum) -> TokenStream {
    let krate = &events.krate;
    let private = quote!(#krate::__private);
    let ident = &events.ident;
    quote! {
        #[automatically_derived]
        impl #private::Event for #ident {
            const TOPICS: &'static [&'static ::core::primitive::str] = &[];
            fn topic(&self) -> &'static ::core::primitive::str {
                ::core::unreachable!()
            }
            fn encode(
                &self,
                _: &mut #private::Vec<::core::primitive::u8>,
            ) -> #private::Result<(), #private::serde_json::Error> {
                ::core::unreachable!()
            }
            fn decode(
                _: &::core::primitive::str,
                _: &[::core::primitive::u8],
            ) -> #private::Result<#private::Option<Self>, #private::serde_json::Error> {
                #private::Ok(#private::None)
            }
        }
    }
}

/// `#[event]`, `#[created]` or `#[upcast]` where no `#[aggregate]` impl
/// block took it: the error, and the item as written.
pub(crate) fn misplaced(errors: &TokenStream, item: &TokenStream) -> TokenStream {
    quote!(#errors #item)
}

/// `#[policy]` with errors: the impl block as written (our attributes
/// removed) and, when a context type is known, an `impl Policy` whose
/// bodies never run, so that code using the policy adds no errors of its
/// own.
pub(crate) fn policy(errors: &TokenStream, model: &PolicyImpl) -> TokenStream {
    let item = &model.item;
    let Some(context) = model.context() else {
        return quote!(#errors #item);
    };
    let krate = &model.krate;
    let private = quote!(#krate::__private);
    let header = impl_header(model, context);
    let constants = constants(model);
    let ty = &context.ty;
    quote! {
        #errors
        #item

        #header {
            #constants
            fn topics() -> #private::Option<#private::Vec<&'static ::core::primitive::str>> {
                #private::None
            }
            fn handle(
                &mut self,
                _: &mut #ty,
                _: &#private::Envelope,
            ) -> #private::Result<::core::primitive::bool, #private::HandleError> {
                ::core::unreachable!()
            }
        }
    }
}

/// Something `#[policy]` cannot go on (our attributes removed from an
/// impl block's methods), after the error.
pub(crate) fn policy_unsupported(errors: &TokenStream, item: &syn::Item) -> TokenStream {
    quote!(#errors #item)
}
