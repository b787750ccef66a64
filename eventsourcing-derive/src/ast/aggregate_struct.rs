//! `#[aggregate]` on a struct: the aggregate's state.

use syn::{Ident, Path};

use super::{Field, GENERIC_AGGREGATE, reject_reserved_ident};
use crate::attr::AggregateArgs;
use crate::ctxt::Ctxt;
use crate::symbol::META_FIELD;

/// An aggregate's struct.
pub(crate) struct AggregateStruct {
    pub(crate) krate: Path,
    /// The struct as written. Its ident, visibility and generics are the
    /// aggregate's; its fields keep their attributes.
    pub(crate) item: syn::ItemStruct,
    /// The state's schema version (`version = N`; 1 unless declared).
    pub(crate) version: u32,
    /// The id type (`id = T`), when it is not `Uuid`.
    pub(crate) id: Option<syn::Type>,
    /// Whether events are checked to replay as they ran (`check_replay`).
    pub(crate) check_replay: bool,
    /// How the records are encrypted, when declared (`key = ...`, `public`).
    pub(crate) encryption: Option<crate::attr::Encryption>,
    /// Whether the struct derives serde's `Serialize` or `Deserialize`: the
    /// bookkeeping field must then be skipped, and `#[serde]` on a field is
    /// serde's as well as ours.
    pub(crate) derives_serde: bool,
    /// The named fields that make up the state in snapshots, in order.
    pub(crate) state_fields: Vec<Field>,
    /// The named fields marked `#[serde(skip)]`: left out of snapshots, and
    /// `Default` in an aggregate loaded from one.
    pub(crate) skipped_fields: Vec<Ident>,
    /// Whether the bookkeeping field can be added: the fields are named and
    /// none of them already has its name. Always so in a valid model.
    pub(crate) room_for_bookkeeping: bool,
}

impl AggregateStruct {
    /// Models the struct. Problems go to `cx`; the model still serves the
    /// fallback expansion.
    pub(crate) fn from_syn(cx: &Ctxt, args: AggregateArgs, item: syn::ItemStruct) -> Self {
        let mut model = AggregateStruct {
            krate: args.krate,
            version: args.version.as_ref().map_or(1, |v| v.value),
            id: args.id.clone(),
            check_replay: args.check_replay,
            encryption: args.encryption.map(|(kind, _)| kind),
            derives_serde: derives_serde(&item.attrs),
            state_fields: Vec::new(),
            skipped_fields: Vec::new(),
            room_for_bookkeeping: false,
            item,
        };
        if !model.item.generics.params.is_empty() {
            // `Root` cannot be implemented without knowing the parameters,
            // so nothing else about the struct matters.
            cx.error_spanned_by(&model.item.generics, GENERIC_AGGREGATE);
            return model;
        }
        match &model.item.fields {
            syn::Fields::Named(named) => {
                for field in &named.named {
                    let Some(ident) = &field.ident else {
                        continue;
                    };
                    if serde_skips(&field.attrs) {
                        model.skipped_fields.push(ident.clone());
                    } else {
                        super::reject_unkeyable_maps(cx, &field.ty, "state field");
                        model.state_fields.push(Field {
                            ident: ident.clone(),
                            ty: field.ty.clone(),
                        });
                    }
                }
                let mut taken = false;
                for ident in named.named.iter().filter_map(|f| f.ident.as_ref()) {
                    reject_reserved_ident(cx, ident, "field");
                    taken |= ident == META_FIELD;
                }
                model.room_for_bookkeeping = !taken;
            }
            syn::Fields::Unnamed(fields) => cx.error_spanned_by(
                fields,
                "aggregates need named fields: write `struct Name { field: Type }`",
            ),
            syn::Fields::Unit => cx.error_spanned_by(
                &model.item.ident,
                "aggregates need named fields: write `struct Name {}` even when it holds no state",
            ),
        }
        model
    }
}

/// Whether the struct derives serde's `Serialize` or `Deserialize`.
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

/// Whether a field is marked `#[serde(skip)]`.
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
