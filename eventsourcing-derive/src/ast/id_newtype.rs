//! `#[derive(AggregateId)]`: a newtype of `Uuid` as an aggregate's id.

use syn::{Ident, Path, Type};

use crate::attr::parse_enum_args;
use crate::ctxt::Ctxt;

/// `struct TrackingId(Uuid);`: the newtype and the type it wraps.
pub(crate) struct IdNewtype {
    pub(crate) krate: Path,
    pub(crate) ident: Ident,
    pub(crate) inner: Type,
}

impl IdNewtype {
    /// Models the derive's input; `None` (with the error in `cx`) when it
    /// is not a tuple struct of one field without generics.
    pub(crate) fn from_derive(cx: &Ctxt, input: &syn::DeriveInput) -> Option<Self> {
        let message = "`#[derive(AggregateId)]` goes on a newtype of `Uuid`, such as `struct TrackingId(Uuid);`";
        let syn::Data::Struct(data) = &input.data else {
            cx.error_spanned_by(&input.ident, message);
            return None;
        };
        if !input.generics.params.is_empty() {
            cx.error_spanned_by(
                &input.generics,
                "an id type cannot be generic: every aggregate of a type has ids of one type; remove the type parameters",
            );
            return None;
        }
        let syn::Fields::Unnamed(fields) = &data.fields else {
            cx.error_spanned_by(&input.ident, message);
            return None;
        };
        let mut fields = fields.unnamed.iter();
        let (Some(field), None) = (fields.next(), fields.next()) else {
            cx.error_spanned_by(&data.fields, message);
            return None;
        };
        let krate = parse_enum_args(cx, &input.attrs)
            .krate
            .unwrap_or_else(crate::attr::default_crate_path);
        Some(IdNewtype {
            krate,
            ident: input.ident.clone(),
            inner: field.ty.clone(),
        })
    }
}
