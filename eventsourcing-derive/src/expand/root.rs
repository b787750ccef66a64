//! The struct half of `#[aggregate]`: the bookkeeping field, `Root` with
//! the state's snapshot codec, and the inherent `id()`, `version()`,
//! `head()` and `discard()`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Path};

use super::codec::{bind_fields, serde_crate_literal, write_object};
use crate::ast::{AggregateStruct, Field, tokens_to_string};
use crate::symbol::{DISCARDED, FORGOTTEN, META_FIELD};

/// Adds the bookkeeping field and implements `Root`.
pub(super) fn expand(model: &AggregateStruct) -> TokenStream {
    let krate = &model.krate;
    let private = quote!(#krate::__private);
    let meta_field = format_ident!("{}", META_FIELD);
    let mut item = struct_as_emitted(model);
    if let syn::Fields::Named(named) = &mut item.fields {
        let serde_skip = if model.derives_serde {
            let serde_path = serde_crate_literal(krate);
            quote!(#[serde(skip, crate = #serde_path)])
        } else {
            TokenStream::new()
        };
        named.named.push(syn::parse_quote! {
            #[doc(hidden)]
            #serde_skip
            #meta_field: #private::Meta
        });
    }
    let mut skipped_fields = model.skipped_fields.clone();
    skipped_fields.push(meta_field.clone());
    let (state_consts, state_codec) =
        state_codec(krate, model.version, &model.state_fields, &skipped_fields);
    let impls = root_impls(
        model,
        &RootBodies {
            meta: quote!(&self.#meta_field),
            meta_mut: quote!(&mut self.#meta_field),
            state_consts,
            state_codec,
        },
    );
    quote! {
        #item
        #impls
    }
}

/// The struct as emitted, before any bookkeeping field: as written, except
/// that without a serde derive on the struct, `#[serde(skip)]` on a field
/// is ours alone to read, and is taken off (rustc would reject it).
pub(super) fn struct_as_emitted(model: &AggregateStruct) -> syn::ItemStruct {
    let mut item = model.item.clone();
    if !model.derives_serde
        && let syn::Fields::Named(named) = &mut item.fields
    {
        for field in &mut named.named {
            field.attrs.retain(|a| !a.path().is_ident("serde"));
        }
    }
    item
}

/// The bodies `root_impls` fills in: the real ones, or the fallback's
/// stand-ins.
pub(super) struct RootBodies {
    /// `Bookkeeping::meta`.
    pub(super) meta: TokenStream,
    /// `Bookkeeping::meta_mut`.
    pub(super) meta_mut: TokenStream,
    /// `Root::STATE_VERSION` and `Root::STATE_SCHEMA`.
    pub(super) state_consts: TokenStream,
    /// `Bookkeeping::encode_state` and `Bookkeeping::decode_state`.
    pub(super) state_codec: TokenStream,
}

/// `Bookkeeping`, `Root`, and the inherent methods that call them.
pub(super) fn root_impls(model: &AggregateStruct, bodies: &RootBodies) -> TokenStream {
    let krate = &model.krate;
    let private = quote!(#krate::__private);
    let RootBodies {
        meta,
        meta_mut,
        state_consts,
        state_codec,
    } = bodies;
    let ident = &model.item.ident;
    let vis = &model.item.vis;
    let name = ident.to_string();
    let check_replay = model.check_replay.then(|| {
        quote!(
            const CHECK_REPLAY: ::core::primitive::bool = ::core::cfg!(debug_assertions);
        )
    });
    let id_type = model
        .id
        .as_ref()
        .map_or_else(|| quote!(#private::Uuid), quote::ToTokens::to_token_stream);
    let discarded = format!("{name}.{DISCARDED}");
    let forgotten = format!("{name}.{FORGOTTEN}");
    let encryption = model.encryption.map(|kind| {
        let variant = quote::format_ident!("{}", kind.variant());
        quote!(
            const ENCRYPTION: #private::Encryption = #private::Encryption::#variant;
        )
    });
    quote! {
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
            #[inline]
            fn blank() -> #private::Option<Self> {
                #[allow(unused_imports)]
                use #private::{BlankDefault as _, BlankNone as _};
                (&#private::Blank::<Self>::NEW).__es_blank()
            }
        }

        #[automatically_derived]
        impl #private::Root for #ident {
            type Id = #id_type;
            #check_replay
            const NAME: &'static ::core::primitive::str = #name;
            const DISCARDED_TOPIC: &'static ::core::primitive::str = #discarded;
            const FORGOTTEN_TOPIC: &'static ::core::primitive::str = #forgotten;
            #encryption
            #state_consts
        }

        #[automatically_derived]
        #[allow(dead_code)]
        impl #ident {
            /// The aggregate's id (nil before it is created).
            #[must_use]
            #[inline]
            #vis fn id(&self) -> <Self as #private::Root>::Id {
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

/// The state half of `Root`: schema version and fields, and the state's
/// JSON form for snapshots, written field by field like an event's, with
/// one compile-time check per field spanned at its type.
fn state_codec(
    krate: &Path,
    version: u32,
    fields: &[Field],
    skipped: &[Ident],
) -> (TokenStream, TokenStream) {
    let private = quote!(#krate::__private);
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
    let bind = bind_fields(&private, &serde_crate_literal(krate), fields);
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
            #bind
            #private::Ok(Self {
                #(#names,)*
                #(#skipped: ::core::default::Default::default(),)*
            })
        }
    };
    (consts, codec)
}
