//! The JSON codec every event and the aggregate's state share: one writer
//! and one reader, generated field by field.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use syn::Path;

use crate::ast::Field;

/// `"::eventsourcing::__private::serde"`, for `#[serde(crate = "...")]`.
pub(super) fn serde_crate_literal(krate: &Path) -> String {
    quote!(#krate::__private::serde)
        .to_string()
        .replace(' ', "")
}

/// Binds each field's name to its value read from the JSON object in
/// `__es_data`, through a helper struct generic over the field types, so
/// that its derived `Deserialize` is bounded on them (a type without serde's
/// traits is reported once, by the field's assertion, not again here).
pub(super) fn bind_fields(
    private: &TokenStream,
    serde_path: &str,
    fields: &[Field],
) -> TokenStream {
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
pub(super) fn write_object(
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
