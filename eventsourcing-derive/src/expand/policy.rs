//! `#[policy]`: the impl block as written (our attributes removed), and
//! `impl Policy<C>` for its type, whose `handle` decodes the envelope as
//! each upstream event enum in turn and calls the handler of the variant.
//!
//! The user's tokens carry the checks rustc makes for us: the variant is
//! matched with a struct pattern built from the `#[on]` path and the
//! parameters' names (an unknown variant or field is an error there), and
//! each field is bound with the parameter's declared type, located at that
//! type (a wrong type is "mismatched types" there).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericParam, LifetimeParam, LitStr, Path};

use crate::ast::{
    Context, OnTarget, Param, PolicyImpl, PolicyMethod, context_lifetime, tokens_to_string,
};

/// The impl block and `impl Policy`.
pub(super) fn expand(model: &PolicyImpl) -> TokenStream {
    let item = allow_unused_self(model);
    // Validation has made sure every method takes the same context.
    let Some(context) = model.context() else {
        return quote!(#item);
    };
    let private = private(&model.krate);
    let header = impl_header(model, context);
    let constants = constants(model);
    let topics = topics(model, &private);
    let handle = handle(model, context, &private);
    let setup = hook(model, context, &private, false);
    let reset = hook(model, context, &private, true);
    quote! {
        #item

        #header {
            #constants
            #topics
            #setup
            #reset
            #handle
        }
    }
}

/// The impl block, with clippy's `unused_self` allowed on the methods the
/// generated impl calls: they must take `self`, whether they use it or not,
/// so the lint's advice (an associated function) cannot be followed.
fn allow_unused_self(model: &PolicyImpl) -> syn::ItemImpl {
    let mut item = model.item.clone();
    for impl_item in &mut item.items {
        if let syn::ImplItem::Fn(func) = impl_item
            && model.methods.iter().any(|m| m.sig.ident == func.sig.ident)
        {
            func.attrs
                .push(syn::parse_quote!(#[allow(clippy::unused_self)]));
        }
    }
    item
}

/// `<crate>::__private`.
fn private(krate: &Path) -> TokenStream {
    quote!(#krate::__private)
}

/// `impl<'__es, ..> Policy<C> for Type<..> where ..`: the context type's
/// elided lifetimes are `'__es`, a parameter of the impl (when there are
/// any), and the impl block's own generics and bounds come along.
pub(super) fn impl_header(model: &PolicyImpl, context: &Context) -> TokenStream {
    let private = private(&model.krate);
    let mut generics = model.item.generics.clone();
    if context.has_lifetime {
        let lifetime = LifetimeParam::new(context_lifetime());
        generics.params.insert(0, GenericParam::Lifetime(lifetime));
    }
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let self_ty = &model.item.self_ty;
    let ty = &context.ty;
    quote! {
        #[automatically_derived]
        impl #impl_generics #private::Policy<#ty> for #self_ty #where_clause
    }
}

/// `NAME`, and `VERSION` when given.
pub(super) fn constants(model: &PolicyImpl) -> TokenStream {
    let name = model.name.clone().unwrap_or_else(|| {
        let ident = &model.self_ident;
        let name = ident.to_string();
        LitStr::new(name.strip_prefix("r#").unwrap_or(&name), ident.span())
    });
    let version = model.version.as_ref().map(|version| {
        let value = version.value;
        quote!(const VERSION: ::core::primitive::u32 = #value;)
    });
    quote! {
        const NAME: &'static ::core::primitive::str = #name;
        #version
    }
}

/// `topics()`: every topic of each handled variant, at each schema
/// version; `None` as soon as one enum cannot say.
fn topics(model: &PolicyImpl, private: &TokenStream) -> TokenStream {
    let extend = model.targets().map(|(target, _)| {
        let enum_path = &target.enum_path;
        let variant = target.variant.to_string();
        if target.is_forgotten() {
            return quote! {
                __es_topics.extend(#private::forgotten_topics::<#enum_path>()?);
            };
        }
        quote! {
            __es_topics.extend(#private::variant_topics::<#enum_path>(#variant)?);
        }
    });
    quote! {
        fn topics() -> #private::Option<#private::Vec<&'static ::core::primitive::str>> {
            let mut __es_topics = #private::Vec::new();
            #(#extend)*
            #private::Some(__es_topics)
        }
    }
}

/// `handle()`: for each upstream enum, in the order of its first handler,
/// decode and match; `Ok(false)` when no handler takes the event.
fn handle(model: &PolicyImpl, context: &Context, private: &TokenStream) -> TokenStream {
    let mut groups: Vec<(String, &Path, Vec<TokenStream>)> = Vec::new();
    let mut forgotten = Vec::new();
    for (target, method) in model.targets() {
        if target.is_forgotten() {
            // No fields to bind: the envelope says which aggregate.
            let args: Vec<TokenStream> = method
                .sig
                .params
                .iter()
                .map(|_| quote!(__es_envelope))
                .collect();
            let enum_path = &target.enum_path;
            let call = call(method, private, &args);
            forgotten.push(quote! {
                if #private::is_forgotten_of::<#enum_path>(__es_envelope) {
                    return #call;
                }
            });
            continue;
        }
        let key = tokens_to_string(&target.enum_path);
        let arm = handler_arm(target, method, private);
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, arms)) => arms.push(arm),
            None => groups.push((key, &target.enum_path, vec![arm])),
        }
    }
    let decodes = groups.iter().map(|(_, enum_path, arms)| {
        quote! {
            if let #private::Some(__es_event) =
                #private::Envelope::decode::<#enum_path>(__es_envelope)?
            {
                match __es_event {
                    #(#arms)*
                    _ => {}
                }
            }
        }
    });
    let ty = &context.ty;
    quote! {
        // A handler for every variant leaves `_` unreachable; a handler for
        // one leaves a `match` that reads like an `if let`. The bindings
        // restate each field with the handler's parameter type.
        #[allow(
            unreachable_patterns,
            clippy::single_match,
            clippy::match_wildcard_for_single_variants,
            clippy::redundant_locals
        )]
        fn handle(
            &mut self,
            __es_cx: &mut #ty,
            __es_envelope: &#private::Envelope,
        ) -> #private::Result<::core::primitive::bool, #private::HandleError> {
            #(#forgotten)*
            #(#decodes)*
            #private::Ok(false)
        }
    }
}

/// `Enum::Variant { field, .. } => { bindings; return call; }`.
fn handler_arm(target: &OnTarget, method: &PolicyMethod, private: &TokenStream) -> TokenStream {
    let enum_path = &target.enum_path;
    let variant = &target.variant;
    let mut fields = Vec::new();
    let mut bindings = Vec::new();
    let mut args = Vec::new();
    for param in &method.sig.params {
        match param {
            Param::Envelope => args.push(quote!(__es_envelope)),
            Param::Field { ident, ty, by_ref } => {
                // The value keeps the name's hygiene but sits at the type,
                // so that rustc's "mismatched types" lands there.
                let mut value = ident.clone();
                value.set_span(ident.span().located_at(ty.span()));
                let value = if *by_ref {
                    quote_spanned!(ty.span()=> &#value)
                } else {
                    quote!(#value)
                };
                bindings.push(quote_spanned!(ty.span()=> let #ident: #ty = #value;));
                fields.push(ident);
                args.push(quote!(#ident));
            }
        }
    }
    let call = call(method, private, &args);
    quote! {
        #enum_path::#variant { #(#fields,)* .. } => {
            #(#bindings)*
            return #call;
        }
    }
}

/// `Self::method(self, cx, args..)` as `handle` returns it: `Ok(true)`
/// after an infallible handler, else its `Result` through `handled`, named
/// by the return type so that one that is not a `Result<(), E>` is rustc's
/// error there.
fn call(method: &PolicyMethod, private: &TokenStream, args: &[TokenStream]) -> TokenStream {
    let invoke = invoke(method, args);
    if let Some(output) = &method.sig.output {
        quote!(#private::handled::<#output>(#invoke))
    } else {
        quote!({
            #invoke;
            #private::Ok(true)
        })
    }
}

/// `Self::method(self, cx, args..)`, the context as the method takes it.
fn invoke(method: &PolicyMethod, args: &[TokenStream]) -> TokenStream {
    let ident = &method.sig.ident;
    let cx = match &method.sig.context {
        Ok(context) if context.mutable => quote!(__es_cx),
        _ => quote!(&*__es_cx),
    };
    quote!(Self::#ident(self, #cx #(, #args)*))
}

/// `setup()` or `reset()`, when the impl block marks a method so.
fn hook(model: &PolicyImpl, context: &Context, private: &TokenStream, reset: bool) -> TokenStream {
    let Some((_, method)) = model.hooks(reset).next() else {
        return TokenStream::new();
    };
    let name = if reset { quote!(reset) } else { quote!(setup) };
    let invoke = invoke(method, &[]);
    let body = if let Some(output) = &method.sig.output {
        quote!(#private::boxed::<#output>(#invoke))
    } else {
        quote!(#invoke; #private::Ok(()))
    };
    let ty = &context.ty;
    quote! {
        fn #name(&mut self, __es_cx: &mut #ty) -> #private::Result<(), #private::BoxError> {
            #body
        }
    }
}
