//! `#[aggregate]` on an impl block: the aggregate's events, as methods.

use quote::{format_ident, quote};
use syn::{FnArg, Ident, ImplItem, ImplItemFn, Path, Stmt, Type};

use super::signature::{check_signature, is_constructor};
use super::{EventEnum, Field, GENERIC_AGGREGATE, Upcaster, Variant, reject_reserved_ident};
use crate::attr::{EventArgs, SchemaVersion, UpcastArgs};
use crate::ctxt::Ctxt;
use crate::symbol::{APPLY, CREATED, DISCARDED, EVENT, UPCAST};

/// A function of an `#[aggregate]` impl block marked `#[upcast]`.
pub(crate) struct UpcasterFn {
    pub(crate) args: UpcastArgs,
    pub(crate) ident: Ident,
}

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
    /// Stored in plaintext under a key (`public`).
    pub(crate) public: bool,
    /// The method's parameters as written (patterns may be `mut`).
    pub(crate) params: Vec<syn::PatType>,
    /// Set when the method is a command with checks: it returns a `Result`
    /// and its body ends with `apply! { ... }`.
    pub(crate) checked: Option<Checked>,
    /// How a creation method derives the new aggregate's id from its
    /// parameters (`#[created(Name, id = expr)]`).
    pub(crate) id: Option<syn::Expr>,
    /// Set when the method is a creation method that builds the aggregate:
    /// no `self`, and it returns `Self` (so the struct needs no `Default`).
    pub(crate) constructor: bool,
}

/// A command with checks: an event method that returns `Result<(), E>`,
/// whose statements before `apply!` run when it is called (never on
/// replay), and whose `apply! { ... }` block is the event's body.
pub(crate) struct Checked {
    /// The return type as written.
    pub(crate) output: Box<Type>,
    /// The statements before `apply!`.
    pub(crate) checks: Vec<Stmt>,
    /// The statements inside `apply!`: what replay runs.
    pub(crate) body: Vec<Stmt>,
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
    /// Parses an impl block. Problems go to `cx`; the model is still usable
    /// for the fallback expansion. An impl block that cannot be modelled at
    /// all (a trait impl, or one of a type that is not a named struct) comes
    /// back unchanged as the error.
    pub(crate) fn from_syn(
        cx: &Ctxt,
        krate: Path,
        mut item: syn::ItemImpl,
    ) -> Result<Self, Box<syn::ItemImpl>> {
        if let Some((_, path, _)) = &item.trait_ {
            cx.error_spanned_by(
                path,
                "`#[aggregate]` goes on the aggregate's inherent impl block, not on a trait impl",
            );
            return Err(Box::new(item));
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
            return Err(Box::new(item));
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
        Ok(AggregateImpl {
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
                    fields: m.fields.clone(),
                    version: m.version.clone(),
                    upcasters: self.upcasters_of(&m.name.to_string()),
                    public: m.public,
                })
                .collect(),
        }
    }

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
                .is_some_and(|s| s.ident == UPCAST)
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
        let checked = checked_body(cx, kind, func);
        let constructor = kind == MethodKind::Created && is_constructor(self_ident, func);
        let fields = check_signature(cx, func, kind, constructor);
        let params = func
            .sig
            .inputs
            .iter()
            .filter_map(|arg| match arg {
                FnArg::Typed(pat_type) => Some(pat_type.clone()),
                FnArg::Receiver(_) => None,
            })
            .collect();
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
            public: args.public,
            params,
            checked,
            constructor,
            id: args.id,
        })
    }
}

/// Whether `stmt` is an `apply! { ... }` (or `path::apply!`) statement; its
/// macro if so.
pub(super) fn apply_macro(stmt: &Stmt) -> Option<&syn::Macro> {
    let mac = match stmt {
        Stmt::Macro(stmt) => &stmt.mac,
        Stmt::Expr(syn::Expr::Macro(expr), _) => &expr.mac,
        _ => return None,
    };
    mac.path
        .segments
        .last()
        .is_some_and(|s| s.ident == APPLY)
        .then_some(mac)
}

/// Splits a command with checks into its checks and its event body: an
/// `#[event]` method with a return type, whose last statement is
/// `apply! { ... }`. `None` for a plain event method (errors go to `cx`).
fn checked_body(cx: &Ctxt, kind: MethodKind, func: &ImplItemFn) -> Option<Checked> {
    let stmts = &func.block.stmts;
    if let Some(misplaced) = stmts.iter().rev().skip(1).find_map(apply_macro) {
        cx.error_spanned_by(
            misplaced,
            "`apply!` goes last in a command with checks: the checks come before it, and its block is the event's body",
        );
        return None;
    }
    let last = stmts.last().and_then(apply_macro);
    let syn::ReturnType::Type(_, output) = &func.sig.output else {
        if let Some(mac) = last {
            cx.error_spanned_by(
                mac,
                "`apply!` ends a command with checks, which returns `Result<(), E>` for its checks' errors; give the method that return type, or remove `apply!` and keep the body",
            );
        }
        return None;
    };
    if kind == MethodKind::Created {
        // A creation method's return type is another matter (see
        // `check_signature`).
        return None;
    }
    let Some(mac) = last else {
        let message = if success_type(output).is_some() {
            "an event method that returns a `Result` is a command with checks: end its body with `apply! { ... }` holding the event's body, after the checks, which may return an error; on replay only the `apply!` block runs"
        } else {
            "event methods cannot return a value: an event is a fact being applied; compute results in a command method that then calls this one, or make this a command with checks that returns `Result<(), E>` and ends with `apply! { ... }`"
        };
        cx.error_spanned_by(output, message);
        return None;
    };
    if let Some(ok) = success_type(output)
        && !matches!(ok, Type::Tuple(t) if t.elems.is_empty())
    {
        cx.error_spanned_by(
            ok,
            "a command with checks returns `Result<(), E>`: success is the event being recorded; compute values in a command method that calls this one",
        );
        return None;
    }
    let body = match mac.parse_body_with(syn::Block::parse_within) {
        Ok(body) => body,
        Err(error) => {
            cx.syn_error(error);
            return None;
        }
    };
    Some(Checked {
        output: output.clone(),
        checks: stmts[..stmts.len() - 1].to_vec(),
        body,
    })
}

/// The `T` of a return type written `Result<T, E>` (any path ending in
/// `Result` with two type arguments); `None` for anything else, such as an
/// alias, which the compiler checks instead.
fn success_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    });
    let ok = types.next()?;
    types.next()?;
    Some(ok)
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
