//! The impl block half of `#[aggregate]`: each event method becomes its
//! trigger (and the creation method a constructor) over a hidden method
//! with the user's body, and `impl Aggregate` dispatches events to those.

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ImplItem, Path};

use super::codec::write_object;
use super::event::{event_enum, event_impl};
use crate::ast::versioned_topic;
use crate::ast::{AggregateImpl, Checked, EventEnum, EventMethod, MethodKind, has_apply};
use crate::symbol::{META_FIELD, STATE, WITH_ID_SUFFIX};

/// Generates the event enum, the triggers and the apply dispatch.
pub(super) fn expand(model: &AggregateImpl) -> TokenStream {
    let events = model.event_enum();
    let enum_tokens = event_enum(&events, model);
    let event_impl = event_impl(&events);
    let item = rewrite_methods(model, &events);
    let apply = apply_impl(model, &events);
    quote! {
        #item
        #enum_tokens
        #event_impl
        #apply
    }
}

/// Replaces each event method with its trigger and adds the hidden method
/// that holds the user's body.
fn rewrite_methods(model: &AggregateImpl, events: &EventEnum) -> syn::ItemImpl {
    let mut item = model.item.clone();
    let mut hidden = Vec::new();
    for (method, &slot) in model.methods.iter().zip(&model.method_slots) {
        let public = trigger_methods(method, &events.ident, &model.krate);
        let extra = hidden_method(method, &model.self_ident);
        item.items[slot] = ImplItem::Verbatim(public);
        hidden.push(ImplItem::Verbatim(extra));
    }
    item.items.extend(hidden);
    item
}

/// The public method(s) replacing one event method.
fn trigger_methods(method: &EventMethod, enum_ident: &syn::Ident, krate: &Path) -> TokenStream {
    let private = quote!(#krate::__private);
    let func = &method.func;
    let attrs = &func.attrs;
    let vis = &func.vis;
    let name = &func.sig.ident;
    let variant = &method.name;
    let fields: Vec<_> = method.fields.iter().map(|f| &f.ident).collect();
    let params: Vec<_> = method
        .fields
        .iter()
        .map(|f| {
            let ident = &f.ident;
            let ty = &f.ty;
            quote!(#ident: #ty)
        })
        .collect();
    let event = quote!(#enum_ident::#variant { #(#fields),* });
    match (method.kind, &method.checked) {
        (MethodKind::Event, None) => quote! {
            #(#attrs)*
            #vis fn #name(&mut self, #(#params),*) {
                #private::trigger::<Self>(self, #event);
            }
        },
        (MethodKind::Event, Some(checked)) => {
            let output = &checked.output;
            let check_ident = format_ident!("__es_check_{}", name);
            // `Ok(())` spanned at the return type, so that a type that is
            // not a `Result` is reported there.
            let ok = quote_spanned!(output.span()=> ::core::result::Result::Ok(()));
            quote! {
                #(#attrs)*
                #vis fn #name(&mut self, #(#params),*) -> #output {
                    let mut __es_fields = #private::None;
                    Self::#check_ident(self, #(#fields,)* &mut __es_fields)?;
                    if let #private::Some((#(#fields,)*)) = __es_fields {
                        #private::trigger::<Self>(self, #event);
                    }
                    #ok
                }
            }
        }
        (MethodKind::Created, _) => {
            let with_id = format_ident!("{}{}", name, WITH_ID_SUFFIX, span = name.span());
            let doc = format!(
                "Like `{name}`, but the new aggregate gets the given id instead of a random one."
            );
            let new_id = method.id.as_ref().map_or_else(
                || quote!(#private::Uuid::new_v4()),
                |expr| quote_spanned!(expr.span()=> #expr),
            );
            let start_with_id = if method.constructor {
                build_created(method, &private)
            } else {
                // Spanned at the method, so that a missing `Default` is
                // reported there, with what to do about it.
                quote_spanned!(name.span()=> #private::start_with_id::<Self>(__es_id, #event))
            };
            quote! {
                #(#attrs)*
                #[must_use]
                #vis fn #name(#(#params),*) -> Self {
                    let __es_id = #new_id;
                    Self::#with_id(__es_id, #(#fields),*)
                }

                #[doc = #doc]
                #[must_use]
                #[allow(dead_code)]
                #vis fn #with_id(
                    __es_id: impl ::core::convert::Into<#private::Uuid>,
                    #(#params),*
                ) -> Self {
                    let __es_id: #private::Uuid = ::core::convert::Into::into(__es_id);
                    #start_with_id
                }
            }
        }
    }
}

/// The body of a creation method that builds the aggregate (`__es_id` in
/// scope): records the creation event from the parameters, then lets the
/// user's body build the aggregate from them, and gives it the bookkeeping.
fn build_created(method: &EventMethod, private: &TokenStream) -> TokenStream {
    let build = &method.apply_ident;
    let fields: Vec<_> = method.fields.iter().map(|f| &f.ident).collect();
    let topic = versioned_topic(
        &method.topic.value(),
        method.version.as_ref().map_or(1, |v| v.value),
    );
    let write = write_object(private, &method.fields, |name| quote!(&#name));
    quote! {
        let __es_meta = #private::record_created::<Self>(__es_id, #topic, |__es_out| {
            #[allow(unused_imports)]
            use #private::{WriteField as _, WriteFieldFallback as _};
            #write
            #private::Ok(())
        });
        let mut __es_built = Self::#build(#(#fields),*);
        #private::attach::<Self>(&mut __es_built, __es_meta);
        __es_built
    }
}

/// The hidden method that holds the user's event body: the method as
/// written, renamed and private. (On error it keeps whatever else the user
/// wrote, such as `async` or a return type, so that the body still
/// compiles and reports its own mistakes, not ours.)
///
/// A command with checks has two: its checks, taking `&self` (so they
/// cannot change the aggregate) and handing the event's fields back once
/// they pass, and its `apply!` block as the event's body.
pub(super) fn hidden_method(method: &EventMethod, self_ident: &syn::Ident) -> TokenStream {
    if let Some(checked) = &method.checked {
        return checked_methods(method, checked);
    }
    let mut func = method.func.clone();
    if method.kind == MethodKind::Created {
        // The user writes `Self { ... }` with the state's fields; the
        // struct also has the bookkeeping field, which starts empty. (Also
        // in a creation method that is in error, so that its body adds no
        // error of its own.)
        let body = with_bookkeeping(func.block.to_token_stream(), self_ident);
        func.block = syn::parse_quote!(#body);
    }
    let misplaced_apply = has_apply(&func);
    if misplaced_apply {
        // A misplaced `apply!` (already an error): keep the body out, or it
        // would add errors of its own.
        func.block = syn::parse_quote!({});
        func.sig.output = syn::ReturnType::Default;
    }
    func.sig.ident = method.apply_ident.clone();
    func.vis = syn::Visibility::Inherited;
    func.attrs.retain(|a| !a.path().is_ident("doc"));
    let unused = misplaced_apply.then(|| quote!(#[allow(unused_variables)]));
    quote! {
        #[doc(hidden)]
        #[allow(dead_code, clippy::needless_pass_by_value, clippy::unused_self)]
        #unused
        #func
    }
}

/// `tokens` with the bookkeeping field added to every struct expression of
/// the aggregate (`Self { .. }` or `<Name> { .. }`), at any depth. It
/// starts empty: the creation event's bookkeeping is attached afterwards.
fn with_bookkeeping(tokens: TokenStream, self_ident: &syn::Ident) -> TokenStream {
    let meta_field = format_ident!("{}", META_FIELD);
    let mut out = TokenStream::new();
    let mut after_name = false;
    for tree in tokens {
        match tree {
            TokenTree::Group(group) => {
                let inner = with_bookkeeping(group.stream(), self_ident);
                let stream = if after_name && group.delimiter() == Delimiter::Brace {
                    quote!(#meta_field: ::core::default::Default::default(), #inner)
                } else {
                    inner
                };
                let mut rebuilt = Group::new(group.delimiter(), stream);
                rebuilt.set_span(group.span());
                out.extend([TokenTree::Group(rebuilt)]);
                after_name = false;
            }
            TokenTree::Ident(ident) => {
                after_name = ident == "Self" || ident == *self_ident;
                out.extend([TokenTree::Ident(ident)]);
            }
            other => {
                after_name = false;
                out.extend([other]);
            }
        }
    }
    out
}

/// The checks and the body of a command with checks, as hidden methods.
fn checked_methods(method: &EventMethod, checked: &Checked) -> TokenStream {
    let name = &method.func.sig.ident;
    let check_ident = format_ident!("__es_check_{}", name);
    let apply_ident = &method.apply_ident;
    let params = &method.params;
    let fields: Vec<_> = method.fields.iter().map(|f| &f.ident).collect();
    let types: Vec<_> = method.fields.iter().map(|f| &f.ty).collect();
    let output = &checked.output;
    let checks = &checked.checks;
    let body = &checked.body;
    quote! {
        #[doc(hidden)]
        #[allow(dead_code, clippy::needless_pass_by_value, clippy::unused_self, unreachable_code)]
        fn #check_ident(
            &self,
            #(#params,)*
            __es_fields: &mut ::core::option::Option<(#(#types,)*)>,
        ) -> #output {
            #(#checks)*
            *__es_fields = ::core::option::Option::Some((#(#fields,)*));
            ::core::result::Result::Ok(())
        }

        #[doc(hidden)]
        #[allow(dead_code, clippy::needless_pass_by_value, clippy::unused_self)]
        fn #apply_ident(&mut self, #(#params),*) {
            #(#body)*
        }
    }
}

/// `impl Aggregate`: the apply dispatch.
fn apply_impl(model: &AggregateImpl, events: &EventEnum) -> TokenStream {
    let krate = &model.krate;
    let private = quote!(#krate::__private);
    let self_ty = &model.item.self_ty;
    let enum_ident = &events.ident;
    let arms = model.methods.iter().map(|m| {
        let variant = &m.name;
        let apply_ident = &m.apply_ident;
        let fields: Vec<_> = m.fields.iter().map(|f| &f.ident).collect();
        if m.constructor {
            // Applied to an aggregate that exists (started from `Default`):
            // what the creation method builds replaces its state.
            quote! {
                #enum_ident::#variant { #(#fields),* } =>
                    #private::replace_state::<Self>(self, Self::#apply_ident(#(#fields),*))
            }
        } else {
            quote!(#enum_ident::#variant { #(#fields),* } => Self::#apply_ident(self, #(#fields),*))
        }
    });
    let construct = model.methods.iter().find(|m| m.constructor).map(|m| {
        let variant = &m.name;
        let apply_ident = &m.apply_ident;
        let fields: Vec<_> = m.fields.iter().map(|f| &f.ident).collect();
        quote! {
            fn __new(
                __es_event: #enum_ident,
            ) -> ::core::result::Result<Self, #enum_ident> {
                #[allow(unreachable_patterns)]
                match __es_event {
                    #enum_ident::#variant { #(#fields),* } =>
                        ::core::result::Result::Ok(Self::#apply_ident(#(#fields),*)),
                    __es_other => ::core::result::Result::Err(__es_other),
                }
            }
        }
    });
    let state_upcasters = model.upcasters_of(STATE);
    let declared: Vec<u32> = state_upcasters.iter().map(|u| u.from.value).collect();
    let upcast_arms = state_upcasters.iter().map(|u| {
        let from = u.from.value;
        let call = &u.call;
        quote!(#from => { (#call)(__es_state); true })
    });
    // The state version is set on the struct and its upcasters live here:
    // these check, at compile time, that they agree, each with its caret on
    // the user's token.
    let exists = state_upcasters.iter().map(|u| {
        let from = &u.from.lit;
        let value = u.from.value;
        let check = quote_spanned! {from.span()=>
            __es_check(__es_version, #value)
        };
        quote! {
            const _: () = {
                use #private::check_state_upcaster_exists as __es_check;
                let __es_version = #private::state_version::<#self_ty>();
                #check
            };
        }
    });
    let cover_check = quote_spanned! {self_ty.span()=>
        __es_check(__es_version, &[#(#declared),*])
    };
    let covered = quote! {
        const _: () = {
            use #private::check_state_upcasters_cover as __es_check;
            let __es_version = #private::state_version::<#self_ty>();
            #cover_check
        };
    };
    let upcast_state = if state_upcasters.is_empty() {
        TokenStream::new()
    } else {
        quote! {
            fn upcast_state(
                __es_from: ::core::primitive::u32,
                __es_state: &mut #private::JsonObject,
            ) -> ::core::primitive::bool {
                match __es_from {
                    #(#upcast_arms,)*
                    _ => false,
                }
            }
        }
    };
    quote! {
        #[automatically_derived]
        impl #private::Aggregate for #self_ty {
            type Event = #enum_ident;

            fn apply(&mut self, __es_event: #enum_ident) {
                match __es_event {
                    #(#arms),*
                }
            }

            #upcast_state
            #construct
        }

        #(#exists)*
        #covered
    }
}
