//! `#[policy]` on an impl block: a follower's handlers, as methods marked
//! `#[on(Enum::Variant)]`, and its optional `#[setup]` and `#[reset]`.

use syn::{Attribute, Ident, ImplItem, ImplItemFn, LitStr, Path, Type};

use super::context::Context;
use super::handler::{PolicySig, SigKind};
use crate::attr::{PolicyArgs, SchemaVersion, parse_on};
use crate::ctxt::Ctxt;
use crate::symbol::{ON, POLICY, RESET, SETUP};

/// A `#[policy]` impl block.
pub(crate) struct PolicyImpl {
    pub(crate) krate: Path,
    /// The impl block as written, with `#[on]`, `#[setup]` and `#[reset]`
    /// removed from its methods.
    pub(crate) item: syn::ItemImpl,
    /// The last segment of the self type's path: the default name.
    pub(crate) self_ident: Ident,
    /// `name = "..."`, when given.
    pub(crate) name: Option<LitStr>,
    /// `version = N`, when given.
    pub(crate) version: Option<SchemaVersion>,
    /// The methods the generated impl calls, in the order written.
    pub(crate) methods: Vec<PolicyMethod>,
}

/// A method of a `#[policy]` impl block that the generated impl calls.
pub(crate) struct PolicyMethod {
    pub(crate) role: Role,
    pub(crate) sig: PolicySig,
}

/// What a method is for.
pub(crate) enum Role {
    /// A handler of the upstream events its `#[on]` attributes name (one
    /// or more).
    Handler(Vec<OnTarget>),
    /// `#[setup]`: creates what the handlers need.
    Setup(Attribute),
    /// `#[reset]`: removes what the handlers made.
    Reset(Attribute),
}

/// The upstream event an `#[on(Enum::Variant)]` names.
pub(crate) struct OnTarget {
    /// The attribute, for error spans.
    pub(crate) attr: Attribute,
    /// The path without its last segment: the event enum's type.
    pub(crate) enum_path: Path,
    /// The last segment: the variant.
    pub(crate) variant: Ident,
}

impl PolicyImpl {
    /// Parses what `#[policy]` is on. Anything but an inherent impl block
    /// of a named type comes back unchanged as the error (recorded).
    pub(crate) fn from_item(
        cx: &Ctxt,
        args: PolicyArgs,
        item: syn::Item,
    ) -> Result<Self, Box<syn::Item>> {
        let mut item = match item {
            syn::Item::Impl(item) => item,
            other => {
                cx.error_spanned_by(
                    super::item_keyword(&other),
                    format!(
                        "`#[{POLICY}]` goes on the impl block of a follower's handlers: `#[{POLICY}] impl Statistics {{ #[{ON}(AccountEvent::Opened)] fn opened(..) {{ .. }} }}`"
                    ),
                );
                return Err(Box::new(other));
            }
        };
        if let Some((_, path, _)) = &item.trait_ {
            cx.error_spanned_by(
                path,
                format!(
                    "`#[{POLICY}]` goes on an inherent impl block, not on a trait impl: it implements `Policy` itself"
                ),
            );
            strip_policy_attrs(&mut item);
            return Err(Box::new(syn::Item::Impl(item)));
        }
        let self_ident = match &*item.self_ty {
            Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
            _ => None,
        };
        let Some(self_ident) = self_ident else {
            cx.error_spanned_by(
                &item.self_ty,
                format!(
                    "`#[{POLICY}]` expects the impl block of a named type, such as `impl Statistics`"
                ),
            );
            strip_policy_attrs(&mut item);
            return Err(Box::new(syn::Item::Impl(item)));
        };
        let mut methods = Vec::new();
        for impl_item in &mut item.items {
            if let ImplItem::Fn(func) = impl_item
                && let Some(method) = PolicyMethod::from_fn(cx, func)
            {
                methods.push(method);
            }
        }
        Ok(PolicyImpl {
            krate: args.krate,
            item,
            self_ident,
            name: args.name,
            version: args.version,
            methods,
        })
    }

    /// The context the methods take: the first one's (`valid` checks that
    /// the others take the same).
    pub(crate) fn context(&self) -> Option<&Context> {
        self.methods
            .iter()
            .find_map(|method| method.sig.context.as_ref().ok())
    }

    /// Every handler's targets, with the handler, in the order written.
    pub(crate) fn targets(&self) -> impl Iterator<Item = (&OnTarget, &PolicyMethod)> {
        self.methods.iter().flat_map(|method| {
            let targets: &[OnTarget] = match &method.role {
                Role::Handler(targets) => targets,
                Role::Setup(_) | Role::Reset(_) => &[],
            };
            targets.iter().map(move |target| (target, method))
        })
    }

    /// The methods marked `#[setup]`, or `#[reset]` when `reset`.
    pub(crate) fn hooks(&self, reset: bool) -> impl Iterator<Item = (&Attribute, &PolicyMethod)> {
        self.methods
            .iter()
            .filter_map(move |method| match &method.role {
                Role::Setup(attr) if !reset => Some((attr, method)),
                Role::Reset(attr) if reset => Some((attr, method)),
                _ => None,
            })
    }
}

/// Which of our attributes `attr` is, also written with a path such as
/// `#[es::on]`.
fn policy_attr(attr: &Attribute) -> Option<&'static str> {
    let last = attr.path().segments.last()?;
    [ON, SETUP, RESET]
        .into_iter()
        .find(|name| last.ident == name)
}

/// Removes `#[on]`, `#[setup]` and `#[reset]` from every method of `item`,
/// so that the stand-alone attribute macros do not add "outside a policy"
/// errors to the real one.
fn strip_policy_attrs(item: &mut syn::ItemImpl) {
    for impl_item in &mut item.items {
        if let ImplItem::Fn(func) = impl_item {
            func.attrs.retain(|attr| policy_attr(attr).is_none());
        }
    }
}

impl PolicyMethod {
    /// Takes our attributes off `func` and models it; `None` if it has none
    /// (a helper, left alone).
    fn from_fn(cx: &Ctxt, func: &mut ImplItemFn) -> Option<Self> {
        let mut on = false;
        let mut targets = Vec::new();
        let mut hook: Option<(&'static str, Attribute)> = None;
        let mut kept = Vec::with_capacity(func.attrs.len());
        for attr in func.attrs.drain(..) {
            let Some(name) = policy_attr(&attr) else {
                kept.push(attr);
                continue;
            };
            let first = match &hook {
                Some((first, _)) => Some(*first),
                None if on && name != ON => Some(ON),
                None => None,
            };
            if let Some(first) = first {
                let message = if first == name {
                    format!("this method is already marked `#[{name}]`; remove this one")
                } else {
                    format!(
                        "this method is already marked `#[{first}]`; a method is a handler, `#[{SETUP}]` or `#[{RESET}]`, so give `#[{name}]` a method of its own"
                    )
                };
                cx.error_spanned_by(&attr, message);
            } else if name == ON {
                // A handler even when its `#[on]` is in error, so that its
                // signature is checked too.
                on = true;
                targets.extend(OnTarget::parse(cx, attr));
            } else {
                hook = Some((name, attr));
            }
        }
        func.attrs = kept;
        let (role, kind) = match hook {
            Some((SETUP, attr)) => (Role::Setup(attr), SigKind::Hook(SETUP)),
            Some((_, attr)) => (Role::Reset(attr), SigKind::Hook(RESET)),
            None if on => (Role::Handler(targets), SigKind::Handler),
            None => return None,
        };
        let sig = PolicySig::from_fn(cx, func, kind);
        Some(PolicyMethod { role, sig })
    }
}

impl OnTarget {
    /// Whether it names `Enum::Forgotten`: the event that forgetting one
    /// of the enum's aggregates records (a name no event may take).
    pub(crate) fn is_forgotten(&self) -> bool {
        self.variant == crate::symbol::FORGOTTEN
    }

    /// Parses `#[on(Enum::Variant)]`; `None` (with the error recorded) when
    /// it does not name a variant with its enum.
    fn parse(cx: &Ctxt, attr: Attribute) -> Option<Self> {
        let mut path = parse_on(cx, &attr)?;
        if let Some(args) = path
            .segments
            .iter()
            .map(|s| &s.arguments)
            .find(|a| !a.is_empty())
        {
            cx.error_spanned_by(
                args,
                format!(
                    "write the variant's path without generic arguments, such as `#[{ON}(AccountEvent::Opened)]`"
                ),
            );
            return None;
        }
        if path.segments.len() < 2 {
            let name = super::tokens_to_string(&path);
            cx.error_spanned_by(
                &path,
                format!(
                    "`#[{ON}]` names a variant with its enum, as in `#[{ON}(AccountEvent::{name})]`: write the upstream event enum's path before `{name}`"
                ),
            );
            return None;
        }
        let variant = path.segments.pop()?.into_value().ident;
        // `pop` leaves the separator after the enum's name.
        path.segments.pop_punct();
        Some(OnTarget {
            attr,
            enum_path: path,
            variant,
        })
    }
}
