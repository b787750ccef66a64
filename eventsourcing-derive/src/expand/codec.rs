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

/// The most fields read through the runtime's tuple reader
/// (`codec::MAX_FIELDS`); more are read through a derived helper struct.
const MAX_TUPLE_FIELDS: usize = 12;

/// Binds each field's name to its value, read from the JSON object in
/// `__es_data` in one pass by the runtime's reader, which is generic over
/// the tuple of the fields' types: its code is shared by every event with
/// the same types, and nothing is derived per event. (A type without
/// serde's traits is reported once, by the field's assertion; the fallback
/// reader keeps it from being reported again here.) Past twelve fields (the
/// largest tuple with `Default`), a
/// helper struct with a derived `Deserialize` reads them.
pub(super) fn bind_fields(
    private: &TokenStream,
    serde_path: &str,
    fields: &[Field],
) -> TokenStream {
    let names: Vec<_> = fields.iter().map(|f| &f.ident).collect();
    let types: Vec<_> = fields.iter().map(|f| &f.ty).collect();
    if fields.len() > MAX_TUPLE_FIELDS {
        let params: Vec<_> = (0..fields.len())
            .map(|i| format_ident!("__EsT{}", i))
            .collect();
        return quote! {
            #[derive(#private::serde::Deserialize)]
            #[serde(crate = #serde_path)]
            struct __EsFields <#(#params),*> { #(#names: #params),* }
            #[allow(unused_imports)]
            use #private::{ReadFields as _, ReadFieldsFallback as _};
            let __EsFields { #(#names),* } =
                (&#private::FieldsReader::<__EsFields <#(#types),*>>::NEW).__es_read(__es_data)?;
        };
    }
    let keys = fields.iter().map(Field::key);
    quote! {
        #[allow(unused_imports)]
        use #private::{ReadTuple as _, ReadTupleFallback as _};
        let (#(#names,)*) = (&#private::TupleReader::<(#(#types,)*)>::NEW)
            .__es_read(__es_data, &[#(#keys),*])?;
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
