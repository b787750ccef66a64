//! Code generation over a validated model. Generated code names the
//! runtime only through `<crate>::__private`, with absolute paths, and calls
//! the runtime's traits through free functions there (see that module for
//! why), so that a user's inherent method of the same name cannot hijack a
//! call and a missing supertrait is one error rather than one per call.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ImplItem, Path};

use crate::ast::{
    AggregateImpl, EventEnum, EventMethod, Field, MethodKind, Variant, reject_reserved_ident,
    strip_event_attrs, tokens_to_string, versioned_topic,
};
use crate::attr::AggregateArgs;
use crate::ctxt::Ctxt;
use crate::symbol::{DISCARDED, GENERATED_METHODS, META_FIELD, STATE, WITH_ID_SUFFIX};

/// `#[aggregate]` on a struct or an impl block.
pub(crate) fn aggregate(args: TokenStream, item: syn::Item) -> TokenStream {
    let cx = Ctxt::default();
    let args = AggregateArgs::parse(&cx, args);
    match item {
        syn::Item::Struct(item) => aggregate_struct(cx, &args, item),
        syn::Item::Impl(item) => aggregate_impl(cx, &args, item),
        syn::Item::Enum(item) => {
            cx.error_spanned_by(
                item.enum_token,
                "`#[aggregate]` goes on a struct with named fields (and on its impl block); an aggregate's state cannot be an enum, so put the enum in a field",
            );
            let errors = cx.into_compile_errors();
            quote!(#errors #item)
        }
        other => {
            cx.error_spanned_by(
                item_keyword(&other),
                "`#[aggregate]` goes on a struct with named fields and on its impl block",
            );
            let errors = cx.into_compile_errors();
            quote!(#errors #other)
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

/// Adds the bookkeeping field and implements `Root`.
///
/// On error it still implements `Root` when it can (with bodies that never
/// run), so that the impl block's `Aggregate` impl adds no errors of its own.
fn aggregate_struct(cx: Ctxt, args: &AggregateArgs, mut item: syn::ItemStruct) -> TokenStream {
    let krate = &args.krate;
    let private = quote!(#krate::__private);
    if !item.generics.params.is_empty() {
        cx.error_spanned_by(&item.generics, crate::ast::GENERIC_AGGREGATE);
        // `Root` cannot be implemented without knowing the parameters.
        let errors = cx.into_compile_errors();
        return quote!(#errors #item);
    }
    let derives_serde = derives_serde(&item.attrs);
    let serde_skip = if derives_serde {
        let serde_path = serde_crate_literal(krate);
        quote!(#[serde(skip, crate = #serde_path)])
    } else {
        TokenStream::new()
    };
    let meta_field = format_ident!("{}", META_FIELD);
    let (has_meta, state_fields, skipped_fields) =
        add_meta_field(&cx, &mut item, derives_serde, &serde_skip, &private);
    let errors = cx.into_compile_errors();
    let (meta, meta_mut) = if has_meta {
        (quote!(&self.#meta_field), quote!(&mut self.#meta_field))
    } else {
        (
            quote!(::core::unreachable!()),
            quote!(::core::unreachable!()),
        )
    };
    let ident = &item.ident;
    let vis = &item.vis;
    let name = ident.to_string();
    let discarded = format!("{name}.{DISCARDED}");
    let (state_consts, state_codec) = if has_meta {
        state_codec(
            krate,
            args.version.as_ref().map_or(1, |v| v.value),
            &state_fields,
            &skipped_fields,
        )
    } else {
        (TokenStream::new(), TokenStream::new())
    };
    quote! {
        #errors
        #item

        #[automatically_derived]
        impl #private::Bookkeeping for #ident {
            #state_codec
            #[inline]
            fn meta(&self) -> &#private::Meta {
                #meta
            }
            #[inline]
            fn meta_mut(&mut self) -> &mut #private::Meta {
                #meta_mut
            }
        }

        #[automatically_derived]
        impl #private::Root for #ident {
            const NAME: &'static ::core::primitive::str = #name;
            const DISCARDED_TOPIC: &'static ::core::primitive::str = #discarded;
            #state_consts
        }

        #[automatically_derived]
        #[allow(dead_code)]
        impl #ident {
            /// The aggregate's id (nil before it is created).
            #[must_use]
            #[inline]
            #vis fn id(&self) -> #private::Uuid {
                #private::id::<Self>(self)
            }

            /// The version of the aggregate's last event: 1 after creation, +1 per event.
            #[must_use]
            #[inline]
            #vis fn version(&self) -> ::core::primitive::u64 {
                #private::version::<Self>(self)
            }

            /// The hash of the aggregate's last event, the head of its hash chain
            /// (shown as 64 hex digits).
            #[must_use]
            #[inline]
            #vis fn head(&self) -> #private::Hash {
                #private::head::<Self>(self)
            }

            /// Records that the aggregate is discarded: once saved, the repository no
            /// longer finds it, and events triggered after this are refused.
            #[inline]
            #vis fn discard(&mut self) {
                #private::discard::<Self>(self);
            }
        }
    }
}

/// Adds the bookkeeping field to the struct's named fields (unless a field
/// already has its name, an error) and returns whether it did, with the
/// fields that make up the state in snapshots, and the other fields (those
/// marked `#[serde(skip)]`, and the bookkeeping).
fn add_meta_field(
    cx: &Ctxt,
    item: &mut syn::ItemStruct,
    derives_serde: bool,
    serde_skip: &TokenStream,
    private: &TokenStream,
) -> (bool, Vec<Field>, Vec<syn::Ident>) {
    let mut skipped_fields = Vec::new();
    let meta_field = format_ident!("{}", META_FIELD);
    let mut has_meta = false;
    let mut state_fields = Vec::new();
    match &mut item.fields {
        syn::Fields::Named(named) => {
            for field in &mut named.named {
                let skip = serde_skips(&field.attrs);
                if !derives_serde {
                    // Without a serde derive on the struct, `#[serde(skip)]`
                    // is ours to read, and rustc would reject it.
                    field.attrs.retain(|a| !a.path().is_ident("serde"));
                }
                match (skip, &field.ident) {
                    (false, Some(ident)) => state_fields.push(Field {
                        ident: ident.clone(),
                        ty: field.ty.clone(),
                    }),
                    (true, Some(ident)) => skipped_fields.push(ident.clone()),
                    (_, None) => {}
                }
            }
            let mut taken = false;
            for field in &named.named {
                if let Some(ident) = &field.ident {
                    reject_reserved_ident(cx, ident, "field");
                    taken |= ident == META_FIELD;
                }
            }
            if !taken {
                named.named.push(syn::parse_quote! {
                    #[doc(hidden)]
                    #serde_skip
                    #meta_field: #private::Meta
                });
                has_meta = true;
            }
        }
        syn::Fields::Unnamed(fields) => cx.error_spanned_by(
            fields,
            "aggregates need named fields: write `struct Name { field: Type }`",
        ),
        syn::Fields::Unit => cx.error_spanned_by(
            &item.ident,
            "aggregates need named fields: write `struct Name {}` even when it holds no state",
        ),
    }
    if has_meta {
        skipped_fields.push(meta_field);
    }
    (has_meta, state_fields, skipped_fields)
}

/// Whether a field is marked `#[serde(skip)]`: left out of snapshots, and
/// `Default` in an aggregate loaded from one.
fn serde_skips(attrs: &[syn::Attribute]) -> bool {
    let mut skip = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        // Other serde keys are serde's to check (when the struct derives it).
        let _ = attr.parse_nested_meta(|meta| {
            skip |= meta.path.is_ident("skip");
            if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        });
    }
    skip
}

/// The state half of `Root`: schema version and fields, and the state's
/// JSON form for snapshots, written field by field like an event's, with
/// one compile-time check per field spanned at its type.
fn state_codec(
    krate: &Path,
    version: u32,
    fields: &[Field],
    skipped: &[syn::Ident],
) -> (TokenStream, TokenStream) {
    let private = quote!(#krate::__private);
    let serde_path = serde_crate_literal(krate);
    let schema = fields.iter().map(|f| {
        let key = f.key();
        let ty = tokens_to_string(&f.ty);
        quote!((#key, #ty))
    });
    let assertions = fields.iter().map(|f| {
        let ty = &f.ty;
        quote_spanned!(ty.span()=> #private::assert_state_field::<#ty>();)
    });
    let write = write_object(&private, fields, |name| quote!(&self.#name));
    let bind = bind_fields(&private, &serde_path, fields);
    let names: Vec<_> = fields.iter().map(|f| &f.ident).collect();
    let consts = quote! {
        const STATE_VERSION: ::core::primitive::u32 = #version;

        const STATE_SCHEMA: &'static [(&'static ::core::primitive::str, &'static ::core::primitive::str)] =
            &[#(#schema),*];
    };
    let codec = quote! {
        fn encode_state(
            &self,
            __es_out: &mut #private::Vec<::core::primitive::u8>,
        ) -> #private::Result<(), #private::serde_json::Error> {
            const _: () = { #(#assertions)* };
            #[allow(unused_imports)]
            use #private::{WriteField as _, WriteFieldFallback as _};
            #write
            #private::Ok(())
        }

        fn decode_state(
            __es_data: &[::core::primitive::u8],
        ) -> #private::Result<Self, #private::serde_json::Error> {
            #[allow(unused_imports)]
            use #private::{ReadFields as _, ReadFieldsFallback as _};
            #bind
            #private::Ok(Self {
                #(#names,)*
                #(#skipped: ::core::default::Default::default(),)*
            })
        }
    };
    (consts, codec)
}

/// Whether the struct derives serde's `Serialize` or `Deserialize`, so the
/// bookkeeping field must be skipped.
fn derives_serde(attrs: &[syn::Attribute]) -> bool {
    let mut found = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("derive")) {
        // A malformed derive is rustc's to report; we only look.
        let _ = attr.parse_nested_meta(|meta| {
            if let Some(last) = meta.path.segments.last() {
                found |= last.ident == "Serialize" || last.ident == "Deserialize";
            }
            Ok(())
        });
    }
    found
}

/// `"::eventsourcing::__private::serde"`, for `#[serde(crate = "...")]`.
fn serde_crate_literal(krate: &Path) -> String {
    quote!(#krate::__private::serde)
        .to_string()
        .replace(' ', "")
}

/// Generates the event enum, the triggers and the apply dispatch.
fn aggregate_impl(cx: Ctxt, args: &AggregateArgs, item: syn::ItemImpl) -> TokenStream {
    let mut original = item.clone();
    let Some(model) = AggregateImpl::from_syn(&cx, args.krate.clone(), item) else {
        strip_event_attrs(&mut original);
        let errors = cx.into_compile_errors();
        return quote!(#errors #original);
    };
    crate::valid::check_impl(&cx, &model);
    if !cx.is_ok() {
        return impl_fallback(cx, &model);
    }
    let events = model.event_enum();
    let enum_tokens = event_enum(&events, &model);
    let event_impl = event_impl(&events);
    let item = rewrite_methods(&model, &events);
    let apply = apply_impl(&model, &events);
    quote! {
        #item
        #enum_tokens
        #event_impl
        #apply
    }
}

/// On error: the user's impl block as written (our attributes removed), an
/// empty event enum and an `Aggregate` impl over it, so that one mistake
/// does not cascade into errors wherever the aggregate is used.
fn impl_fallback(cx: Ctxt, model: &AggregateImpl) -> TokenStream {
    let errors = cx.into_compile_errors();
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
        hidden.push(ImplItem::Verbatim(hidden_method(method)));
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
    let enum_ident = crate::ast::event_enum_ident(&model.self_ident);
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

/// The distinct field types of `events`, in order.
fn field_types(events: &EventEnum) -> Vec<&syn::Type> {
    let mut seen = std::collections::HashSet::new();
    events
        .variants
        .iter()
        .flat_map(|v| &v.fields)
        .map(|f| &f.ty)
        .filter(|ty| seen.insert(ty.to_token_stream().to_string()))
        .collect()
}

/// The public event enum of an aggregate.
///
/// Its serde impls are bounded on every field type: a field of a type
/// without serde's traits makes the impl not apply, instead of being an
/// error inside it (`assert_field` reports it once, at the field). The
/// `for<'__es_a>` keeps rustc from rejecting a bound that names no generic
/// parameter and does not hold.
fn event_enum(events: &EventEnum, model: &AggregateImpl) -> TokenStream {
    let krate = &events.krate;
    let ident = &events.ident;
    let serde_path = serde_crate_literal(krate);
    let aggregate = model.self_ident.to_string();
    let doc = format!(
        "The events of `{aggregate}`, generated by `#[aggregate]`: one variant per event method."
    );
    // A type written with `$crate` (by a user's `macro_rules!`) cannot be
    // spelled in a string; it keeps serde's default, unconditional impl.
    let types: Vec<_> = field_types(events)
        .into_iter()
        .filter(|ty| !ty.to_token_stream().to_string().contains("$crate"))
        .collect();
    let serialize_bound = types
        .iter()
        .map(|ty| {
            format!(
                "for<'__es_a> {}: {serde_path}::Serialize",
                ty.to_token_stream()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let deserialize_bound = types
        .iter()
        .map(|ty| format!("{}: {serde_path}::Deserialize<'de>", ty.to_token_stream()))
        .collect::<Vec<_>>()
        .join(", ");
    let variants = model.methods.iter().map(|m| {
        let name = &m.name;
        let method = format!("{aggregate}::{}", m.func.sig.ident);
        let variant_doc = format!("Recorded by `{method}` (topic `{}`).", m.topic.value());
        let fields = m.fields.iter().map(|f| {
            let field = &f.ident;
            let ty = &f.ty;
            let field_doc = format!("The `{}` argument of `{method}`.", f.key());
            quote!(#[doc = #field_doc] #field: #ty)
        });
        quote! {
            #[doc = #variant_doc]
            #name { #(#fields),* }
        }
    });
    quote! {
        #[doc = #doc]
        #[derive(
            ::core::clone::Clone,
            ::core::fmt::Debug,
            ::core::cmp::PartialEq,
            #krate::__private::serde::Serialize,
            #krate::__private::serde::Deserialize,
        )]
        #[serde(
            crate = #serde_path,
            bound(serialize = #serialize_bound, deserialize = #deserialize_bound),
        )]
        // The enum is public whatever the aggregate's visibility (the macro
        // cannot see it), so a field type may well be less public.
        #[allow(private_interfaces)]
        pub enum #ident {
            #(#variants),*
        }
    }
}

/// `Event::SCHEMA`: each event's name, current topic, version and fields.
fn event_schema(private: &TokenStream, events: &EventEnum) -> Vec<TokenStream> {
    let schema = events.variants.iter().map(|v| {
        let name = v.ident.to_string();
        let topic = v.current_topic();
        let version = v.version();
        let fields = v.fields.iter().map(|f| {
            let key = f.key();
            let ty = tokens_to_string(&f.ty);
            quote!((#key, #ty))
        });
        quote! {
            #private::EventSchema {
                name: #name,
                topic: #topic,
                version: #version,
                fields: &[#(#fields),*],
            }
        }
    });
    schema.collect()
}

/// `impl Event`: topics, and the stored JSON form of each variant, plus one
/// compile-time check per field that its type can be stored.
pub(crate) fn event_impl(events: &EventEnum) -> TokenStream {
    let krate = &events.krate;
    let private = quote!(#krate::__private);
    let ident = &events.ident;
    let serde_path = serde_crate_literal(krate);
    let topics: Vec<_> = events
        .variants
        .iter()
        .flat_map(|v| (1..=v.version()).map(|version| versioned_topic(&v.topic.value(), version)))
        .collect();
    let schema = event_schema(&private, events);
    let assertions = events.variants.iter().flat_map(|v| &v.fields).map(|f| {
        let ty = &f.ty;
        quote_spanned!(ty.span()=> #private::assert_field::<#ty>();)
    });
    let topic_arms = events.variants.iter().map(|v| {
        let variant = &v.ident;
        let topic = v.current_topic();
        quote!(Self::#variant { .. } => #topic)
    });
    let encode_arms = events.variants.iter().map(|v| {
        let variant = &v.ident;
        let names: Vec<_> = v.fields.iter().map(|f| &f.ident).collect();
        let write = write_object(&private, &v.fields, |name| quote!(#name));
        quote! {
            Self::#variant { #(#names),* } => { #write }
        }
    });
    let decode_arms = events
        .variants
        .iter()
        .flat_map(|v| decode_arms(&private, &serde_path, v));
    let (topic_body, encode_body) = if events.variants.is_empty() {
        (quote!(match *self {}), quote!(match *self {}))
    } else {
        (
            quote!(match self { #(#topic_arms),* }),
            quote! {
                #[allow(unused_imports)]
                use #private::{WriteField as _, WriteFieldFallback as _};
                match self { #(#encode_arms),* }
                #private::Ok(())
            },
        )
    };
    quote! {
        const _: () = {
            #(#assertions)*
        };

        #[automatically_derived]
        impl #private::Event for #ident {
            const TOPICS: &'static [&'static ::core::primitive::str] = &[#(#topics),*];

            const SCHEMA: &'static [#private::EventSchema] = &[#(#schema),*];

            fn topic(&self) -> &'static ::core::primitive::str {
                #topic_body
            }

            fn encode(
                &self,
                __es_out: &mut #private::Vec<::core::primitive::u8>,
            ) -> #private::Result<(), #private::serde_json::Error> {
                #encode_body
            }

            fn decode(
                __es_topic: &::core::primitive::str,
                __es_data: &[::core::primitive::u8],
            ) -> #private::Result<#private::Option<Self>, #private::serde_json::Error> {
                #[allow(unused_imports)]
                use #private::{ReadFields as _, ReadFieldsFallback as _};
                match __es_topic {
                    #(#decode_arms)*
                    _ => #private::Ok(#private::None),
                }
            }
        }
    }
}

/// The arms of `Event::decode` for one event: its current version, read
/// directly, and each older version, parsed into a JSON object, passed
/// through the upcasters from that version on, then read.
fn decode_arms(private: &TokenStream, serde_path: &str, variant: &Variant) -> Vec<TokenStream> {
    let current = variant.version();
    let base = variant.topic.value();
    let read = read_fields(private, serde_path, &variant.ident, &variant.fields);
    let mut arms = Vec::with_capacity(current as usize);
    for stored in 1..=current {
        let topic = syn::LitStr::new(&versioned_topic(&base, stored), variant.topic.span());
        if stored == current {
            arms.push(quote!(#topic => { #read }));
            continue;
        }
        let calls = (stored..current).filter_map(|from| {
            variant
                .upcasters
                .iter()
                .find(|u| u.from.value == from)
                .map(|u| {
                    let call = &u.call;
                    quote!((#call)(&mut __es_object);)
                })
        });
        arms.push(quote! {
            #topic => {
                let mut __es_object: #private::JsonObject =
                    #private::serde_json::from_slice(__es_data)?;
                #(#calls)*
                let __es_upcast = #private::serde_json::to_vec(&__es_object)?;
                let __es_data: &[::core::primitive::u8] = &__es_upcast;
                #read
            }
        });
    }
    arms
}

/// Reads one event's fields from `__es_data` into the variant.
fn read_fields(
    private: &TokenStream,
    serde_path: &str,
    variant: &syn::Ident,
    fields: &[Field],
) -> TokenStream {
    let bind = bind_fields(private, serde_path, fields);
    let names = fields.iter().map(|f| &f.ident);
    quote! {
        #bind
        #private::Ok(#private::Some(Self::#variant { #(#names),* }))
    }
}

/// Binds each field's name to its value read from the JSON object in
/// `__es_data`, through a helper struct generic over the field types, so
/// that its derived `Deserialize` is bounded on them (a type without serde's
/// traits is reported once, by the field's assertion, not again here).
fn bind_fields(private: &TokenStream, serde_path: &str, fields: &[Field]) -> TokenStream {
    let names: Vec<_> = fields.iter().map(|f| &f.ident).collect();
    let params: Vec<_> = (0..fields.len())
        .map(|i| format_ident!("__EsT{}", i))
        .collect();
    let types: Vec<_> = fields.iter().map(|f| &f.ty).collect();
    let (decl_generics, use_generics) = if fields.is_empty() {
        (TokenStream::new(), TokenStream::new())
    } else {
        (quote!(<#(#params),*>), quote!(<#(#types),*>))
    };
    quote! {
        #[derive(#private::serde::Deserialize)]
        #[serde(crate = #serde_path)]
        struct __EsFields #decl_generics { #(#names: #params),* }
        let __EsFields { #(#names),* } =
            (&#private::FieldsReader::<__EsFields #use_generics>::NEW).__es_read(__es_data)?;
    }
}

/// Appends `fields` to `__es_out` as one JSON object, each value reached by
/// `access(field name)`. The keys are escaped here, once, at compile time.
fn write_object(
    private: &TokenStream,
    fields: &[Field],
    access: impl Fn(&syn::Ident) -> TokenStream,
) -> TokenStream {
    if fields.is_empty() {
        return quote!(__es_out.extend_from_slice(b"{}"););
    }
    let writes = fields.iter().enumerate().map(|(i, f)| {
        let sep = if i == 0 { "{" } else { "," };
        let key = Literal::byte_string(format!("{sep}\"{}\":", f.key()).as_bytes());
        let value = access(&f.ident);
        quote! {
            __es_out.extend_from_slice(#key);
            (&#private::FieldRef(#value)).__es_write(__es_out)?;
        }
    });
    quote! {
        #(#writes)*
        __es_out.push(b'}');
    }
}

/// Replaces each event method with its trigger and adds the hidden method
/// that holds the user's body.
fn rewrite_methods(model: &AggregateImpl, events: &EventEnum) -> syn::ItemImpl {
    let mut item = model.item.clone();
    let mut hidden = Vec::new();
    for (method, &slot) in model.methods.iter().zip(&model.method_slots) {
        let (public, extra) = trigger_methods(method, &events.ident, &model.krate);
        item.items[slot] = ImplItem::Verbatim(public);
        hidden.push(ImplItem::Verbatim(extra));
    }
    item.items.extend(hidden);
    item
}

/// The public method(s) replacing one event method, and the hidden body.
fn trigger_methods(
    method: &EventMethod,
    enum_ident: &syn::Ident,
    krate: &Path,
) -> (TokenStream, TokenStream) {
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
    let public = match method.kind {
        MethodKind::Event => quote! {
            #(#attrs)*
            #vis fn #name(&mut self, #(#params),*) {
                #private::trigger::<Self>(self, #event);
            }
        },
        MethodKind::Created => {
            let with_id = format_ident!("{}{}", name, WITH_ID_SUFFIX, span = name.span());
            let doc = format!(
                "Like `{name}`, but the new aggregate gets the given id instead of a random one."
            );
            quote! {
                #(#attrs)*
                #[must_use]
                #vis fn #name(#(#params),*) -> Self {
                    #private::start::<Self>(#event)
                }

                #[doc = #doc]
                #[must_use]
                #[allow(dead_code)]
                #vis fn #with_id(__es_id: #private::Uuid, #(#params),*) -> Self {
                    #private::start_with_id::<Self>(__es_id, #event)
                }
            }
        }
    };
    (public, hidden_method(method))
}

/// The hidden method that holds the user's event body: the method as
/// written, renamed and private. (On error it keeps whatever else the user
/// wrote, such as `async` or a return type, so that the body still
/// compiles and reports its own mistakes, not ours.)
fn hidden_method(method: &EventMethod) -> TokenStream {
    let mut func = method.func.clone();
    func.sig.ident = method.apply_ident.clone();
    func.vis = syn::Visibility::Inherited;
    func.attrs.retain(|a| !a.path().is_ident("doc"));
    quote! {
        #[doc(hidden)]
        #[allow(dead_code, clippy::needless_pass_by_value, clippy::unused_self)]
        #func
    }
}

/// On error: the public method(s) an event method becomes, with the
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
                twin.inputs = syn::parse_quote!(_: #krate::__private::Uuid, #(#args),*);
                quote!(#allow #[allow(dead_code)] #vis #twin #unreachable)
            };
            quote!(#(#attrs)* #allow #vis #sig #unreachable #twin)
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
        quote!(#enum_ident::#variant { #(#fields),* } => Self::#apply_ident(self, #(#fields),*))
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
        }

        #(#exists)*
        #covered
    }
}

/// `#[derive(Event)]` on a user's enum.
pub(crate) fn derive_event(input: &syn::DeriveInput) -> TokenStream {
    let cx = Ctxt::default();
    let Some(events) = EventEnum::from_derive(&cx, input) else {
        return cx.into_compile_errors();
    };
    crate::valid::check_enum(&cx, &events);
    if !cx.is_ok() {
        let errors = cx.into_compile_errors();
        if !input.generics.params.is_empty() {
            return errors;
        }
        let stub = event_impl_stub(&events);
        return quote!(#errors #stub);
    }
    event_impl(&events)
}

/// On error: an `Event` impl whose bodies never run (the build has failed),
/// so that the aggregate naming this enum adds no errors of its own.
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

/// `#[event]` or `#[created]` where no `#[aggregate]` impl block took it.
pub(crate) fn misplaced(attribute: &str, item: &TokenStream) -> TokenStream {
    let message = format!(
        "`#[{attribute}]` only works on methods inside an `#[aggregate]` impl block; add `#[aggregate]` to the impl"
    );
    let error = syn::Error::new(Span::call_site(), message).to_compile_error();
    quote!(#error #item)
}
