//! Parsing of the macros' own attributes into plain values.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::{Ident, LitInt, LitStr, Path};

use crate::ctxt::Ctxt;
use crate::symbol::{
    APPLICATION, CHECK_REPLAY, CRATE, CREATED, FROM, ID, KEY, NAME, ON, PER_AGGREGATE, PREFIX,
    PUBLIC, STATE, TOPIC, UPCASTERS, VERSION,
};

/// The runtime crate's path, `::eventsourcing` unless `crate = "..."` says otherwise.
pub(crate) fn default_crate_path() -> Path {
    syn::parse_quote!(::eventsourcing)
}

/// Options of `#[aggregate(...)]`.
pub(crate) struct AggregateArgs {
    pub(crate) krate: Path,
    /// The state's schema version (`version = N`, on the struct).
    pub(crate) version: Option<SchemaVersion>,
    /// The aggregate's id type (`id = T`, on the struct), if not `Uuid`.
    pub(crate) id: Option<syn::Type>,
    /// Whether to check, in debug builds, that each event triggered live
    /// replays to the same state (`check_replay`, on the struct).
    pub(crate) check_replay: bool,
    /// How the aggregate's records are encrypted (`key = ...` or
    /// `public`, on the struct), with the span of the key that said so.
    pub(crate) encryption: Option<(Encryption, proc_macro2::Span)>,
}

/// How an aggregate type's records are encrypted, as declared.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encryption {
    /// `key = application`.
    Application,
    /// `key = per_aggregate`.
    PerAggregate,
    /// `public`.
    Public,
}

impl Encryption {
    /// The runtime's `Encryption` variant.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            Encryption::Application => "Application",
            Encryption::PerAggregate => "PerAggregate",
            Encryption::Public => "Public",
        }
    }
}

/// Parses a flag that takes no value, such as `public`; `usage` says how
/// to write it.
fn no_value(meta: &ParseNestedMeta<'_>, usage: &str) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
        let key = meta
            .path
            .get_ident()
            .map_or_else(String::new, ToString::to_string);
        return Err(meta.error(format!("`{key}` takes no value: write {usage}")));
    }
    Ok(())
}

/// A schema version as written (`version = 2`): its value and its token.
#[derive(Clone)]
pub(crate) struct SchemaVersion {
    pub(crate) value: u32,
    pub(crate) lit: LitInt,
}

/// Parses `version = N` (N at least 1).
fn parse_version(meta: &ParseNestedMeta<'_>) -> syn::Result<SchemaVersion> {
    parse_positive(
        meta,
        "a schema version is a whole number from 1 up; the first version is 1",
    )
}

/// Parses `key = N` with N at least 1; `message` when it is not.
fn parse_positive(meta: &ParseNestedMeta<'_>, message: &str) -> syn::Result<SchemaVersion> {
    let lit: LitInt = meta.value()?.parse()?;
    match lit.base10_parse::<u32>() {
        Ok(value) if value >= 1 => Ok(SchemaVersion { value, lit }),
        _ => Err(syn::Error::new(lit.span(), message)),
    }
}

impl AggregateArgs {
    /// Parses the arguments of the `#[aggregate]` attribute itself.
    pub(crate) fn parse(cx: &Ctxt, args: TokenStream) -> Self {
        let mut krate = None;
        let mut version = None;
        let mut id = None;
        let mut check_replay = false;
        let mut encryption: Option<(Encryption, proc_macro2::Span)> = None;
        let mut set_encryption = |meta: &ParseNestedMeta<'_>, value: Encryption| {
            let span = syn::spanned::Spanned::span(&meta.path);
            if let Some((earlier, _)) = encryption {
                let message = if earlier == value {
                    "the encryption of the aggregate is declared twice".to_owned()
                } else {
                    format!(
                        "`{PUBLIC}` and `{KEY} = ...` cannot go together: a public aggregate is stored in plaintext, so it has no key"
                    )
                };
                return Err(syn::Error::new(span, message));
            }
            encryption = Some((value, span));
            Ok(())
        };
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident(CRATE) {
                krate = Some(parse_crate_path(&meta)?);
                Ok(())
            } else if meta.path.is_ident(VERSION) {
                version = Some(parse_version(&meta)?);
                Ok(())
            } else if meta.path.is_ident(ID) {
                id = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident(CHECK_REPLAY) {
                if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
                    return Err(meta.error(
                        "`check_replay` takes no value: write `#[aggregate(check_replay)]`",
                    ));
                }
                check_replay = true;
                Ok(())
            } else if meta.path.is_ident(KEY) {
                let value: Ident = meta.value()?.parse().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        format!("expected `{KEY} = {PER_AGGREGATE}` or `{KEY} = {APPLICATION}`"),
                    )
                })?;
                let kind = if value == PER_AGGREGATE {
                    Encryption::PerAggregate
                } else if value == APPLICATION {
                    Encryption::Application
                } else {
                    return Err(syn::Error::new(
                        value.span(),
                        format!(
                            "unknown key `{value}`; expected `{PER_AGGREGATE}` (a data key for each aggregate, which can be forgotten) or `{APPLICATION}` (the default)"
                        ),
                    ));
                };
                set_encryption(&meta, kind)
            } else if meta.path.is_ident(PUBLIC) {
                no_value(&meta, "`#[aggregate(public)]`")?;
                set_encryption(&meta, Encryption::Public)
            } else {
                Err(unknown_key(
                    &meta,
                    "#[aggregate]",
                    &[CRATE, VERSION, ID, CHECK_REPLAY, KEY, PUBLIC],
                    None,
                ))
            }
        });
        if let Err(e) = syn::parse::Parser::parse2(parser, args) {
            cx.syn_error(e);
        }
        AggregateArgs {
            krate: krate.unwrap_or_else(default_crate_path),
            version,
            id,
            check_replay,
            encryption,
        }
    }
}

/// Options of `#[event(...)]` or `#[created(...)]` on a method.
pub(crate) struct EventArgs {
    /// The event's name, if given (`#[event(Name)]`).
    pub(crate) name: Option<Ident>,
    /// The topic, if renamed (`topic = "..."`).
    pub(crate) topic: Option<LitStr>,
    /// The schema version, if declared (`version = N`).
    pub(crate) version: Option<SchemaVersion>,
    /// How a creation method derives the new aggregate's id from its
    /// parameters (`id = expr`), instead of a random one.
    pub(crate) id: Option<syn::Expr>,
    /// Whether the event is stored in plaintext under a key (`public`).
    pub(crate) public: bool,
}

impl EventArgs {
    /// Parses `#[event]`, `#[event(Name)]`, `#[event(Name, topic = "...")]`.
    pub(crate) fn parse(cx: &Ctxt, attr: &syn::Attribute, kind: &str) -> Self {
        let label = format!("#[{kind}]");
        let mut args = EventArgs {
            name: None,
            topic: None,
            version: None,
            id: None,
            public: false,
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
                if meta.path.is_ident(VERSION) && meta.input.peek(syn::Token![=]) {
                    args.version = Some(parse_version(&meta)?);
                    return Ok(());
                }
                if meta.path.is_ident(ID) && meta.input.peek(syn::Token![=]) && kind == CREATED {
                    args.id = Some(meta.value()?.parse()?);
                    return Ok(());
                }
                if meta.path.is_ident(PUBLIC) {
                    no_value(&meta, &format!("`#[{kind}(Name, public)]`"))?;
                    if args.public {
                        return Err(meta.error("`public` is given twice"));
                    }
                    args.public = true;
                    return Ok(());
                }
                if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
                    let keys: &[&str] = if kind == CREATED {
                        &[TOPIC, VERSION, ID, PUBLIC]
                    } else {
                        &[TOPIC, VERSION, PUBLIC]
                    };
                    let hint = (meta.path.is_ident(ID)).then_some(
                        "`id = ...` derives a new aggregate's id, so it goes on `#[created]`",
                    );
                    return Err(unknown_key(&meta, &label, keys, hint));
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

/// Options of `#[es(...)]` on one variant of a derived event enum.
#[derive(Default)]
pub(crate) struct VariantArgs {
    pub(crate) topic: Option<LitStr>,
    pub(crate) version: Option<SchemaVersion>,
    /// `upcasters = [v1_to_v2, ...]`: the upcaster from version k is the
    /// k-th entry.
    pub(crate) upcasters: Option<syn::ExprArray>,
    /// `public`: stored in plaintext under a key.
    pub(crate) public: bool,
}

/// Parses every `#[es(...)]` attribute of one variant.
pub(crate) fn parse_variant_args(cx: &Ctxt, attrs: &[syn::Attribute]) -> VariantArgs {
    let mut args = VariantArgs::default();
    for attr in attrs
        .iter()
        .filter(|a| a.path().is_ident(crate::symbol::ES))
    {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(TOPIC) {
                args.topic = Some(parse_topic(&meta)?);
                Ok(())
            } else if meta.path.is_ident(VERSION) {
                args.version = Some(parse_version(&meta)?);
                Ok(())
            } else if meta.path.is_ident(UPCASTERS) {
                args.upcasters = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident(PUBLIC) {
                no_value(&meta, "`#[es(public)]`")?;
                args.public = true;
                Ok(())
            } else {
                let hint = (meta.path.is_ident(CRATE) || meta.path.is_ident(PREFIX))
                    .then_some("`crate` and `prefix` go on the enum");
                Err(unknown_key(
                    &meta,
                    "#[es]",
                    &[TOPIC, VERSION, UPCASTERS, PUBLIC],
                    hint,
                ))
            }
        });
        if let Err(e) = result {
            cx.syn_error(e);
        }
    }
    args
}

/// `#[upcast(Name, from = N)]` or `#[upcast(state, from = N)]`.
pub(crate) struct UpcastArgs {
    /// The event name, or `state`.
    pub(crate) target: Ident,
    pub(crate) from: SchemaVersion,
}

impl UpcastArgs {
    /// Parses the attribute; `None` (with the error recorded) when malformed.
    pub(crate) fn parse(cx: &Ctxt, attr: &syn::Attribute) -> Option<Self> {
        let mut target = None;
        let mut from = None;
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(FROM) && meta.input.peek(syn::Token![=]) {
                from = Some(parse_version(&meta)?);
                return Ok(());
            }
            if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
                return Err(unknown_key(&meta, "#[upcast]", &[FROM], None));
            }
            match meta.path.get_ident() {
                Some(ident) if target.is_none() => {
                    target = Some(ident.clone());
                    Ok(())
                }
                _ => Err(meta.error(format!(
                    "`#[upcast]` takes one event name (or `{STATE}`) and `from = N`"
                ))),
            }
        });
        if let Err(e) = result {
            cx.syn_error(e);
            return None;
        }
        if let (Some(target), Some(from)) = (target, from) {
            Some(UpcastArgs { target, from })
        } else {
            {
                cx.error_spanned_by(
                    attr,
                    format!(
                        "write `#[upcast(EventName, from = N)]` (or `#[upcast({STATE}, from = N)]`) on a function `fn(&mut JsonObject)` that turns version N data into version N + 1"
                    ),
                );
                None
            }
        }
    }
}

/// Options of `#[policy(...)]`.
pub(crate) struct PolicyArgs {
    pub(crate) krate: Path,
    /// The follower's name, if not the type's (`name = "..."`).
    pub(crate) name: Option<LitStr>,
    /// The version of what the handlers make (`version = N`).
    pub(crate) version: Option<SchemaVersion>,
}

impl PolicyArgs {
    /// Parses the arguments of the `#[policy]` attribute itself.
    pub(crate) fn parse(cx: &Ctxt, args: TokenStream) -> Self {
        let mut krate = None;
        let mut name = None;
        let mut version = None;
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident(CRATE) {
                krate = Some(parse_crate_path(&meta)?);
            } else if meta.path.is_ident(NAME) {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "a policy's name cannot be empty; write one such as `\"Statistics\"`, or remove `name` to use the type's name",
                    ));
                }
                name = Some(lit);
            } else if meta.path.is_ident(VERSION) {
                version = Some(parse_positive(
                    &meta,
                    "a policy's version is a whole number from 1 up; raise it when the handlers change what they make, to rebuild it",
                )?);
            } else {
                return Err(unknown_key(
                    &meta,
                    "#[policy]",
                    &[NAME, VERSION, CRATE],
                    None,
                ));
            }
            Ok(())
        });
        if let Err(e) = syn::parse::Parser::parse2(parser, args) {
            cx.syn_error(e);
        }
        PolicyArgs {
            krate: krate.unwrap_or_else(default_crate_path),
            name,
            version,
        }
    }
}

/// Parses `#[on(Enum::Variant)]` into the path it names; `None` (with the
/// error recorded) when it names none.
pub(crate) fn parse_on(cx: &Ctxt, attr: &syn::Attribute) -> Option<Path> {
    let usage = format!(
        "`#[{ON}]` names the upstream event it handles, as a path to a variant of its event enum: `#[{ON}(AccountEvent::Opened)]`"
    );
    if matches!(attr.meta, syn::Meta::Path(_)) {
        cx.error_spanned_by(attr, usage);
        return None;
    }
    match attr.parse_args::<Path>() {
        Ok(path) => Some(path),
        Err(error) => {
            cx.error_at(error.span(), usage);
            None
        }
    }
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
    if lit.value().contains('@') {
        return Err(syn::Error::new(
            lit.span(),
            "`@` is reserved in topics for schema versions (`Account.Opened@2`); declare a version with `version = N` instead",
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
