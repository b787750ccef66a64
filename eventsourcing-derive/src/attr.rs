//! Parsing of the macros' own attributes into plain values.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::{Ident, LitStr, Path};

use crate::ctxt::Ctxt;
use crate::symbol::{CRATE, PREFIX, TOPIC};

/// The runtime crate's path, `::eventsourcing` unless `crate = "..."` says otherwise.
pub(crate) fn default_crate_path() -> Path {
    syn::parse_quote!(::eventsourcing)
}

/// Options of `#[aggregate(...)]`.
pub(crate) struct AggregateArgs {
    pub(crate) krate: Path,
}

impl AggregateArgs {
    /// Parses the arguments of the `#[aggregate]` attribute itself.
    pub(crate) fn parse(cx: &Ctxt, args: TokenStream) -> Self {
        let mut krate = None;
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident(CRATE) {
                krate = Some(parse_crate_path(&meta)?);
                Ok(())
            } else {
                Err(unknown_key(&meta, "#[aggregate]", &[CRATE], None))
            }
        });
        if let Err(e) = syn::parse::Parser::parse2(parser, args) {
            cx.syn_error(e);
        }
        AggregateArgs {
            krate: krate.unwrap_or_else(default_crate_path),
        }
    }
}

/// Options of `#[event(...)]` or `#[created(...)]` on a method.
pub(crate) struct EventArgs {
    /// The event's name, if given (`#[event(Name)]`).
    pub(crate) name: Option<Ident>,
    /// The topic, if renamed (`topic = "..."`).
    pub(crate) topic: Option<LitStr>,
}

impl EventArgs {
    /// Parses `#[event]`, `#[event(Name)]`, `#[event(Name, topic = "...")]`.
    pub(crate) fn parse(cx: &Ctxt, attr: &syn::Attribute, kind: &str) -> Self {
        let label = format!("#[{kind}]");
        let mut args = EventArgs {
            name: None,
            topic: None,
        };
        if matches!(attr.meta, syn::Meta::Path(_)) {
            return args;
        }
        let result =
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident(TOPIC) && meta.input.peek(syn::Token![=]) {
                    args.topic = Some(parse_topic(&meta)?);
                    return Ok(());
                }
                if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
                    return Err(unknown_key(&meta, &label, &[TOPIC], None));
                }
                match meta.path.get_ident() {
                    Some(ident) if args.name.is_none() => {
                        args.name = Some(ident.clone());
                        Ok(())
                    }
                    Some(_) => Err(meta.error(format!(
                        "`#[{kind}]` takes one event name; give the topic with `topic = \"...\"`"
                    ))),
                    None => Err(meta
                        .error("expected an event name, such as `SomethingHappened`, not a path")),
                }
            });
        if let Err(e) = result {
            cx.syn_error(e);
        }
        args
    }
}

/// Options of `#[es(...)]` on an enum deriving `Event`.
#[derive(Default)]
pub(crate) struct EnumArgs {
    pub(crate) krate: Option<Path>,
    pub(crate) prefix: Option<LitStr>,
}

/// Parses every `#[es(...)]` attribute of a derived event enum.
pub(crate) fn parse_enum_args(cx: &Ctxt, attrs: &[syn::Attribute]) -> EnumArgs {
    let mut args = EnumArgs::default();
    for attr in attrs
        .iter()
        .filter(|a| a.path().is_ident(crate::symbol::ES))
    {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(CRATE) {
                args.krate = Some(parse_crate_path(&meta)?);
                Ok(())
            } else if meta.path.is_ident(PREFIX) {
                args.prefix = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                let hint = meta
                    .path
                    .is_ident(TOPIC)
                    .then_some("`topic` goes on a variant");
                Err(unknown_key(&meta, "#[es]", &[CRATE, PREFIX], hint))
            }
        });
        if let Err(e) = result {
            cx.syn_error(e);
        }
    }
    args
}

/// Parses every `#[es(...)]` attribute of one variant: only `topic` is valid.
pub(crate) fn parse_variant_topic(cx: &Ctxt, attrs: &[syn::Attribute]) -> Option<LitStr> {
    let mut topic = None;
    for attr in attrs
        .iter()
        .filter(|a| a.path().is_ident(crate::symbol::ES))
    {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(TOPIC) {
                topic = Some(parse_topic(&meta)?);
                Ok(())
            } else {
                let hint = (meta.path.is_ident(CRATE) || meta.path.is_ident(PREFIX))
                    .then_some("`crate` and `prefix` go on the enum");
                Err(unknown_key(&meta, "#[es]", &[TOPIC], hint))
            }
        });
        if let Err(e) = result {
            cx.syn_error(e);
        }
    }
    topic
}

fn parse_crate_path(meta: &ParseNestedMeta<'_>) -> syn::Result<Path> {
    let lit: LitStr = meta.value()?.parse()?;
    lit.parse::<Path>()
        .map_err(|_| syn::Error::new(lit.span(), "expected a crate path, such as `\"es\"`"))
}

fn parse_topic(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    let lit: LitStr = meta.value()?.parse()?;
    if lit.value().is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            "a topic cannot be empty; write one such as `\"Account.Opened\"`, or remove `topic` to use the default",
        ));
    }
    Ok(lit)
}

/// "unknown `#[event]` attribute `topci`; expected `topic`", with the caret
/// on the key.
fn unknown_key(
    meta: &ParseNestedMeta<'_>,
    attribute: &str,
    expected: &[&str],
    hint: Option<&str>,
) -> syn::Error {
    let key = meta
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::");
    let list = expected
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let which = if expected.len() == 1 { "" } else { "one of: " };
    let hint = hint.map_or_else(String::new, |h| format!(" ({h})"));
    syn::Error::new_spanned(
        &meta.path,
        format!("unknown `{attribute}` attribute `{key}`; expected {which}{list}{hint}"),
    )
}
