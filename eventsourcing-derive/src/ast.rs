//! The small model the macros work on: parsed from syn input, keeping the
//! user's tokens so that every error can point at them.

use quote::format_ident;
use syn::{FnArg, Ident, ImplItem, ImplItemFn, Pat, Path, Type};

use proc_macro2::TokenStream;
use quote::quote;

use crate::attr::{EnumArgs, EventArgs, SchemaVersion, UpcastArgs};
use crate::ctxt::Ctxt;
use crate::symbol::{CREATED, DISCARDED, EVENT};

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

/// A function of an `#[aggregate]` impl block marked `#[upcast]`.
pub(crate) struct UpcasterFn {
    pub(crate) args: UpcastArgs,
    pub(crate) ident: Ident,
}

/// One field of an event.
pub(crate) struct Field {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

impl Field {
    /// The JSON key of the field: its name without any `r#`.
    pub(crate) fn key(&self) -> String {
        let name = self.ident.to_string();
        name.strip_prefix("r#").map_or(name.clone(), str::to_owned)
    }
}

/// The error for type parameters on an aggregate's struct or impl block.
pub(crate) const GENERIC_AGGREGATE: &str = "aggregates cannot be generic: stored events must decode to one aggregate type; remove the type parameters";

/// What kind of event method a method is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MethodKind {
    Created,
    Event,
}

/// A method of an `#[aggregate]` impl block marked `#[event]` or `#[created]`.
pub(crate) struct EventMethod {
    pub(crate) kind: MethodKind,
    /// The method as written, with our attribute removed.
    pub(crate) func: ImplItemFn,
    /// The attribute that marked it (for error spans).
    pub(crate) attr: syn::Attribute,
    /// The event's name: given, or the method's name in `UpperCamelCase`.
    pub(crate) name: Ident,
    pub(crate) topic: syn::LitStr,
    pub(crate) fields: Vec<Field>,
    /// The hidden method that holds the user's body.
    pub(crate) apply_ident: Ident,
    /// The schema version, when declared.
    pub(crate) version: Option<SchemaVersion>,
}

/// An `#[aggregate]` impl block.
pub(crate) struct AggregateImpl {
    pub(crate) krate: Path,
    /// The impl block with event attributes stripped from its methods.
    pub(crate) item: syn::ItemImpl,
    pub(crate) self_ident: Ident,
    pub(crate) methods: Vec<EventMethod>,
    /// Indexes into `item.items` of the event methods, in order.
    pub(crate) method_slots: Vec<usize>,
    /// The functions marked `#[upcast]`, events' and the state's.
    pub(crate) upcasters: Vec<UpcasterFn>,
}

impl AggregateImpl {
    /// Parses an impl block. Problems go to `cx`; the result is still usable
    /// for the fallback expansion.
    pub(crate) fn from_syn(cx: &Ctxt, krate: Path, mut item: syn::ItemImpl) -> Option<Self> {
        if let Some((_, path, _)) = &item.trait_ {
            cx.error_spanned_by(
                path,
                "`#[aggregate]` goes on the aggregate's inherent impl block, not on a trait impl",
            );
            return None;
        }
        if !item.generics.params.is_empty() {
            cx.error_spanned_by(&item.generics, GENERIC_AGGREGATE);
        }
        let self_ident = match &*item.self_ty {
            Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
            _ => None,
        };
        let Some(self_ident) = self_ident else {
            cx.error_spanned_by(
                &item.self_ty,
                "`#[aggregate]` expects an impl block of a named struct, such as `impl World`",
            );
            return None;
        };
        let mut methods = Vec::new();
        let mut method_slots = Vec::new();
        let mut upcasters = Vec::new();
        for (slot, impl_item) in item.items.iter_mut().enumerate() {
            let ImplItem::Fn(func) = impl_item else {
                continue;
            };
            reject_reserved_ident(cx, &func.sig.ident, "method");
            if let Some(upcaster) = UpcasterFn::from_fn(cx, func) {
                upcasters.push(upcaster);
                continue;
            }
            let Some(method) = EventMethod::from_fn(cx, &self_ident, func) else {
                continue;
            };
            methods.push(method);
            method_slots.push(slot);
        }
        Some(AggregateImpl {
            krate,
            item,
            self_ident,
            methods,
            method_slots,
            upcasters,
        })
    }

    /// The generated event enum's model.
    pub(crate) fn event_enum(&self) -> EventEnum {
        EventEnum {
            krate: self.krate.clone(),
            ident: event_enum_ident(&self.self_ident),
            discarded_topic: format!("{}.{DISCARDED}", self.self_ident),
            derived: false,
            variants: self
                .methods
                .iter()
                .map(|m| Variant {
                    ident: m.name.clone(),
                    topic: m.topic.clone(),
                    fields: m.fields.iter().map(Field::clone_field).collect(),
                    version: m.version.clone(),
                    upcasters: self.upcasters_of(&m.name.to_string()),
                })
                .collect(),
        }
    }
}

impl AggregateImpl {
    /// The upcasters declared for `target` (an event name, or `state`).
    pub(crate) fn upcasters_of(&self, target: &str) -> Vec<Upcaster> {
        let self_ty = &self.item.self_ty;
        self.upcasters
            .iter()
            .filter(|u| u.args.target == target)
            .map(|u| {
                let ident = &u.ident;
                Upcaster {
                    from: u.args.from.clone(),
                    call: quote!(<#self_ty>::#ident),
                }
            })
            .collect()
    }
}

impl UpcasterFn {
    /// Takes `#[upcast]` off `func` and models it; `None` without one.
    fn from_fn(cx: &Ctxt, func: &mut ImplItemFn) -> Option<Self> {
        let position = func.attrs.iter().position(|attr| {
            attr.path()
                .segments
                .last()
                .is_some_and(|s| s.ident == crate::symbol::UPCAST)
        })?;
        let attr = func.attrs.remove(position);
        if let Some(other) = func.attrs.iter().find(|a| method_kind(a).is_some()) {
            cx.error_spanned_by(
                other,
                "an upcaster is not an event method; put `#[event]` on a method of its own",
            );
        }
        if let Some(FnArg::Receiver(receiver)) = func.sig.inputs.first() {
            cx.error_spanned_by(
                receiver,
                "upcasters are associated functions `fn(data: &mut JsonObject)`, without `self`: they change stored data, not an aggregate",
            );
        }
        let args = UpcastArgs::parse(cx, &attr)?;
        Some(UpcasterFn {
            args,
            ident: func.sig.ident.clone(),
        })
    }
}

/// `WorldEvent` for `World`.
pub(crate) fn event_enum_ident(self_ident: &Ident) -> Ident {
    format_ident!("{}Event", self_ident)
}

/// Whether `attr` is `#[event]` or `#[created]`, also written with a path
/// such as `#[es::event]` when the runtime crate is renamed.
pub(crate) fn method_kind(attr: &syn::Attribute) -> Option<MethodKind> {
    let last = attr.path().segments.last()?;
    if last.ident == EVENT {
        Some(MethodKind::Event)
    } else if last.ident == CREATED {
        Some(MethodKind::Created)
    } else {
        None
    }
}

/// Removes `#[event]` and `#[created]` from every method of `item`, so that
/// when the block cannot be modelled the stand-alone attribute macros do not
/// add "outside an aggregate" errors to the real one.
pub(crate) fn strip_event_attrs(item: &mut syn::ItemImpl) {
    for impl_item in &mut item.items {
        if let ImplItem::Fn(func) = impl_item {
            func.attrs.retain(|attr| method_kind(attr).is_none());
        }
    }
}

impl Field {
    fn clone_field(&self) -> Field {
        Field {
            ident: self.ident.clone(),
            ty: self.ty.clone(),
        }
    }
}

impl EventMethod {
    /// Takes `#[event]`/`#[created]` off `func` and models it; `None` if the
    /// method has neither attribute.
    fn from_fn(cx: &Ctxt, self_ident: &Ident, func: &mut ImplItemFn) -> Option<Self> {
        let mut found: Option<(MethodKind, syn::Attribute)> = None;
        let mut kept = Vec::with_capacity(func.attrs.len());
        for attr in func.attrs.drain(..) {
            let Some(kind) = method_kind(&attr) else {
                kept.push(attr);
                continue;
            };
            if found.is_some() {
                cx.error_spanned_by(
                    &attr,
                    "a method records one event; remove the extra `#[event]` or `#[created]`",
                );
            } else {
                found = Some((kind, attr));
            }
        }
        func.attrs = kept;
        let (kind, attr) = found?;
        let label = if kind == MethodKind::Event {
            EVENT
        } else {
            CREATED
        };
        let args = EventArgs::parse(cx, &attr, label);
        let name = args
            .name
            .unwrap_or_else(|| format_ident!("{}", upper_camel(&func.sig.ident.to_string())));
        let topic = args
            .topic
            .unwrap_or_else(|| syn::LitStr::new(&format!("{self_ident}.{name}"), name.span()));
        let fields = check_signature(cx, func);
        let apply_ident = format_ident!("__es_apply_{}", func.sig.ident);
        Some(EventMethod {
            kind,
            func: func.clone(),
            attr,
            name,
            topic,
            fields,
            apply_ident,
            version: args.version,
        })
    }
}

/// Checks that an event method can be recorded and replayed, and returns
/// its arguments as event fields.
fn check_signature(cx: &Ctxt, func: &ImplItemFn) -> Vec<Field> {
    let sig = &func.sig;
    if let Some(asyncness) = &sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            "event methods cannot be `async`: applying an event is a synchronous state change; do the async work in a command method that then calls this one",
        );
    }
    if let Some(constness) = &sig.constness {
        cx.error_spanned_by(
            constness,
            "event methods cannot be `const`: recording an event happens at run time; remove `const`",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        cx.error_spanned_by(
            unsafety,
            "event methods cannot be `unsafe`: replay calls them with stored data; move the unsafe code into a safe helper",
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, "event methods cannot declare an ABI; remove it");
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            "event methods cannot be generic: every event field needs one concrete type, so that a stored event decodes to it; remove the type parameters",
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            "event methods cannot have a `where` clause: every event field needs one concrete type; remove it",
        );
    }
    if let syn::ReturnType::Type(_, ty) = &sig.output {
        cx.error_spanned_by(
            ty,
            "event methods cannot return a value: an event is a fact being applied; compute results in a command method that then calls this one",
        );
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if is_mut_ref(&r.ty) => {}
        Some(FnArg::Receiver(r)) => cx.error_spanned_by(
            r,
            "event methods take `&mut self`: they apply the event to the aggregate in place",
        ),
        _ => cx.error_spanned_by(
            &sig.ident,
            "event methods take `&mut self` as their first parameter: they apply the event to the aggregate in place",
        ),
    }
    let mut fields = Vec::new();
    for input in inputs {
        let FnArg::Typed(pat_type) = input else {
            continue;
        };
        let ident = match &*pat_type.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
            other => {
                cx.error_spanned_by(
                    other,
                    "event method parameters must be plain names (`amount: u64`): each becomes a named field of the event",
                );
                continue;
            }
        };
        reject_reserved_ident(cx, &ident, "parameter");
        match unstorable(&pat_type.ty) {
            Some(Unstorable::Reference(r)) => cx.error_spanned_by(
                r,
                format!(
                    "event fields must own their data, because the event is stored and replayed; use an owned type such as `{}` instead of `{}`",
                    owned_suggestion(r),
                    tokens_to_string(r),
                ),
            ),
            Some(Unstorable::ImplTrait(t)) => cx.error_spanned_by(
                t,
                "event fields need one concrete type, so that a stored event decodes to it; write the type instead of `impl Trait`",
            ),
            None => {}
        }
        fields.push(Field {
            ident,
            ty: (*pat_type.ty).clone(),
        });
    }
    fields
}

/// `&mut Self` (or `&mut self`, which syn gives the same type).
fn is_mut_ref(ty: &Type) -> bool {
    matches!(ty, Type::Reference(r) if r.mutability.is_some())
}

/// A part of a field's type that no stored event can hold.
enum Unstorable<'a> {
    Reference(&'a syn::TypeReference),
    ImplTrait(&'a syn::TypeImplTrait),
}

/// The first reference or `impl Trait` anywhere in `ty`, such as the `&str`
/// in `Vec<&str>`.
fn unstorable(ty: &Type) -> Option<Unstorable<'_>> {
    match ty {
        Type::Reference(r) => Some(Unstorable::Reference(r)),
        Type::ImplTrait(t) => Some(Unstorable::ImplTrait(t)),
        Type::Array(a) => unstorable(&a.elem),
        Type::Slice(s) => unstorable(&s.elem),
        Type::Paren(p) => unstorable(&p.elem),
        Type::Group(g) => unstorable(&g.elem),
        Type::Tuple(t) => t.elems.iter().find_map(unstorable),
        Type::Path(p) => p
            .qself
            .as_ref()
            .and_then(|q| unstorable(&q.ty))
            .or_else(|| {
                p.path
                    .segments
                    .iter()
                    .find_map(|segment| match &segment.arguments {
                        syn::PathArguments::AngleBracketed(args) => {
                            args.args.iter().find_map(|arg| match arg {
                                syn::GenericArgument::Type(t) => unstorable(t),
                                _ => None,
                            })
                        }
                        _ => None,
                    })
            }),
        _ => None,
    }
}

/// `String` for `&str`, `Vec<T>` for `&[T]`, `T` for `&T`.
fn owned_suggestion(r: &syn::TypeReference) -> String {
    match &*r.elem {
        Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => "String".to_owned(),
        Type::Slice(s) => format!("Vec<{}>", tokens_to_string(&s.elem)),
        other => tokens_to_string(other),
    }
}

/// Tokens as the user would write them: `&str`, `Vec<u8>`.
pub(crate) fn tokens_to_string<T: quote::ToTokens>(tokens: &T) -> String {
    let mut out = String::new();
    let text = tokens.to_token_stream().to_string();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        // `quote` puts a space between every token; keep only the ones a
        // person would write (after a comma and around `+`, `=` and `dyn`).
        if c == ' ' {
            let prev = out.chars().last();
            let next = chars.peek().copied();
            let keep = matches!(prev, Some(',' | '+' | '='))
                || matches!(next, Some('+' | '='))
                || prev.is_some_and(char::is_alphanumeric)
                    && next.is_some_and(|n| n.is_alphanumeric() || n == '_');
            if !keep {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Rejects names that collide with what the macros generate.
pub(crate) fn reject_reserved_ident(cx: &Ctxt, ident: &Ident, what: &str) {
    let name = ident.to_string();
    if name.starts_with(crate::symbol::RESERVED_PREFIX) {
        cx.error_spanned_by(
            ident,
            format!(
                "the {what} name `{name}` is reserved: names starting with `{}` belong to the generated code; rename it",
                crate::symbol::RESERVED_PREFIX
            ),
        );
    }
}

/// `make_it_so` -> `MakeItSo`.
fn upper_camel(snake: &str) -> String {
    snake
        .trim_start_matches("r#")
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect()
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
            }
            variants.push(Variant {
                ident: variant.ident.clone(),
                topic,
                fields,
                version: variant_args.version,
                upcasters,
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
