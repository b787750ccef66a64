//! The event enum: generated from an `#[aggregate]` impl block, or a
//! user's enum deriving `Event`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Ident, Path};

use super::{Field, reject_reserved_ident};
use crate::attr::{EnumArgs, SchemaVersion};
use crate::ctxt::Ctxt;
use crate::symbol::DISCARDED;

/// An event type to generate an `Event` impl for: the enum of an
/// `#[aggregate]` impl block, or a user's enum deriving `Event`.
pub(crate) struct EventEnum {
    pub(crate) krate: Path,
    pub(crate) ident: Ident,
    pub(crate) variants: Vec<Variant>,
    /// The topic that `discard()` records, which no variant may have.
    pub(crate) discarded_topic: String,
    /// Written by hand with `#[derive(Event)]` (upcasters in `#[es(...)]`)
    /// rather than generated from an impl block (`#[upcast]` functions).
    pub(crate) derived: bool,
}

/// One event: a variant of the event enum.
pub(crate) struct Variant {
    pub(crate) ident: Ident,
    /// The stored topic at schema version 1; its span is the user's token
    /// that decided it.
    pub(crate) topic: syn::LitStr,
    pub(crate) fields: Vec<Field>,
    /// The schema version, when declared.
    pub(crate) version: Option<SchemaVersion>,
    /// The upcasters of older versions' data, as declared.
    pub(crate) upcasters: Vec<Upcaster>,
    /// Stored in plaintext under a key (`public`).
    pub(crate) public: bool,
}

impl Variant {
    /// The current schema version (1 unless declared).
    pub(crate) fn version(&self) -> u32 {
        self.version.as_ref().map_or(1, |v| v.value)
    }

    /// The topic new events are stored with: the base topic, with `@N`
    /// above version 1.
    pub(crate) fn current_topic(&self) -> syn::LitStr {
        syn::LitStr::new(
            &versioned_topic(&self.topic.value(), self.version()),
            self.topic.span(),
        )
    }
}

/// The stored topic of `base` at `version` (the runtime's `versioned_topic`).
pub(crate) fn versioned_topic(base: &str, version: u32) -> String {
    if version <= 1 {
        base.to_owned()
    } else {
        format!("{base}@{version}")
    }
}

/// An upcaster: turns stored data of version `from` into `from + 1`.
pub(crate) struct Upcaster {
    pub(crate) from: SchemaVersion,
    /// An expression of type `fn(&mut JsonObject)`.
    pub(crate) call: TokenStream,
}

impl EventEnum {
    /// Models a user's enum deriving `Event`.
    pub(crate) fn from_derive(cx: &Ctxt, input: &syn::DeriveInput) -> Option<Self> {
        let args: EnumArgs = crate::attr::parse_enum_args(cx, &input.attrs);
        let syn::Data::Enum(data) = &input.data else {
            cx.error_spanned_by(
                &input.ident,
                "`#[derive(Event)]` goes on an enum with one variant per event",
            );
            return None;
        };
        if !input.generics.params.is_empty() {
            cx.error_spanned_by(
                &input.generics,
                "event enums cannot be generic: every event field needs one concrete type, so that a stored event decodes to it; remove the type parameters",
            );
        }
        let prefix = args.prefix.as_ref().map_or_else(
            || {
                let name = input.ident.to_string();
                match name.strip_suffix("Event") {
                    Some(stem) if !stem.is_empty() => stem.to_owned(),
                    _ => name,
                }
            },
            syn::LitStr::value,
        );
        let mut variants = Vec::new();
        for variant in &data.variants {
            let variant_args = crate::attr::parse_variant_args(cx, &variant.attrs);
            let topic = variant_args.topic.unwrap_or_else(|| {
                syn::LitStr::new(&format!("{prefix}.{}", variant.ident), variant.ident.span())
            });
            let upcasters = variant_args
                .upcasters
                .iter()
                .flat_map(|list| list.elems.iter().enumerate())
                .map(|(i, call)| {
                    let from = u32::try_from(i + 1).unwrap_or(u32::MAX);
                    Upcaster {
                        from: SchemaVersion {
                            value: from,
                            lit: syn::LitInt::new(
                                &from.to_string(),
                                syn::spanned::Spanned::span(call),
                            ),
                        },
                        call: quote!(#call),
                    }
                })
                .collect();
            let fields: Vec<Field> = match &variant.fields {
                syn::Fields::Named(named) => named
                    .named
                    .iter()
                    .filter_map(|f| {
                        f.ident.as_ref().map(|ident| Field {
                            ident: ident.clone(),
                            ty: f.ty.clone(),
                        })
                    })
                    .collect(),
                syn::Fields::Unit => Vec::new(),
                syn::Fields::Unnamed(unnamed) => {
                    cx.error_spanned_by(
                        unnamed,
                        "event variants need named fields (`Deposited { amount: u64 }`): the stored data is a JSON object keyed by field name",
                    );
                    continue;
                }
            };
            for field in &fields {
                reject_reserved_ident(cx, &field.ident, "field");
                super::reject_unkeyable_maps(cx, &field.ty, "event field");
            }
            variants.push(Variant {
                ident: variant.ident.clone(),
                topic,
                fields,
                version: variant_args.version,
                upcasters,
                public: variant_args.public,
            });
        }
        Some(EventEnum {
            krate: args.krate.unwrap_or_else(crate::attr::default_crate_path),
            ident: input.ident.clone(),
            variants,
            discarded_topic: format!("{prefix}.{DISCARDED}"),
            derived: true,
        })
    }
}
