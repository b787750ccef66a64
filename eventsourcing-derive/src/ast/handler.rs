//! What the signature of a `#[policy]` method may be (a handler,
//! `#[setup]` or `#[reset]`): `&self` or `&mut self`, then the context by
//! reference, then (handlers only) the envelope and the event's fields by
//! name; it returns nothing or `Result<(), E>`. Checked while the impl
//! block is parsed, each rule with the reason in its error.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{FnArg, Ident, ImplItemFn, Pat, PatType, Type};

use super::context::Context;
use super::{reject_reserved_ident, tokens_to_string};
use crate::ctxt::Ctxt;
use crate::symbol::ENVELOPE;

/// The signature of a method the generated `impl Policy` calls.
pub(crate) struct PolicySig {
    pub(crate) ident: Ident,
    /// The context parameter, or why there is none (reported by `valid`,
    /// which knows the context the other methods take).
    pub(crate) context: Result<Context, MissingContext>,
    /// The parameters after the context, in order.
    pub(crate) params: Vec<Param>,
    /// The return type, when the method can fail (`-> Result<(), E>`);
    /// `None` when it returns nothing.
    pub(crate) output: Option<Box<Type>>,
}

/// A method whose first parameter after `self` is not a context.
pub(crate) struct MissingContext {
    /// Where the context should be: the parameter in its place, or the
    /// parentheses of a method without one.
    pub(crate) at: TokenStream,
    pub(crate) found: Found,
    /// The later parameters taken by reference (other than the envelope),
    /// as written, with the context each would be: one may be the context,
    /// out of place.
    pub(crate) later: Vec<(String, Context)>,
}

/// What stands where the context should be.
pub(crate) enum Found {
    /// Nothing: the method takes only `self`.
    Nothing,
    /// The envelope, which comes after the context.
    Envelope,
    /// A parameter not taken by reference, such as a field.
    Value,
}

/// A parameter after the context.
pub(crate) enum Param {
    /// `&Envelope`: the upstream event as received.
    Envelope,
    /// An event field, by name: `amount: u64`, or `owner: &str` for a
    /// reference to it.
    Field {
        ident: Ident,
        /// The type as written, which the generated binding declares.
        ty: Box<Type>,
        /// Whether the type is a reference, `&T` (the binding then borrows
        /// the field).
        by_ref: bool,
    },
}

/// Which kind of method a signature belongs to: handlers take event
/// fields, `#[setup]` and `#[reset]` only the context.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigKind {
    Handler,
    /// `#[setup]` or `#[reset]`, by its attribute's name.
    Hook(&'static str),
}

impl SigKind {
    /// "handlers", "`#[setup]` methods": the subject of an error message.
    fn plural(self) -> String {
        match self {
            SigKind::Handler => "handlers".to_owned(),
            SigKind::Hook(name) => format!("`#[{name}]` methods"),
        }
    }
}

impl PolicySig {
    /// Checks the signature of `func`, recording what is wrong in `cx`.
    pub(crate) fn from_fn(cx: &Ctxt, func: &ImplItemFn, kind: SigKind) -> Self {
        let sig = &func.sig;
        check_qualifiers(cx, sig, kind);
        let mut inputs = sig.inputs.iter().peekable();
        match inputs.peek() {
            Some(FnArg::Receiver(receiver)) => {
                if !matches!(&*receiver.ty, Type::Reference(_)) {
                    cx.error_spanned_by(
                        receiver,
                        format!(
                            "{} borrow the policy: take `&self` or `&mut self`; the follower keeps the policy for the next event",
                            kind.plural()
                        ),
                    );
                }
                inputs.next();
            }
            _ => cx.error_spanned_by(
                &sig.ident,
                format!(
                    "{} are methods: take `&self` or `&mut self` first, then the context (such as `cx: &mut Totals`)",
                    kind.plural()
                ),
            ),
        }
        let typed: Vec<&PatType> = inputs
            .filter_map(|arg| match arg {
                FnArg::Typed(pat_type) => Some(pat_type),
                FnArg::Receiver(_) => None,
            })
            .collect();
        let (context, rest) = match typed.split_first() {
            None => {
                let mut at = TokenStream::new();
                sig.paren_token
                    .surround(&mut at, |tokens| sig.inputs.to_tokens(tokens));
                let missing = MissingContext {
                    at,
                    found: Found::Nothing,
                    later: Vec::new(),
                };
                (Err(missing), &[][..])
            }
            Some((first, rest)) => match &*first.ty {
                Type::Reference(reference) if !is_envelope(&reference.elem) => {
                    (Ok(Context::from_reference(reference)), rest)
                }
                ty => {
                    let envelope = match ty {
                        Type::Reference(reference) => is_envelope(&reference.elem),
                        other => is_envelope(other),
                    };
                    let missing = MissingContext {
                        at: first.to_token_stream(),
                        found: if envelope {
                            Found::Envelope
                        } else {
                            Found::Value
                        },
                        later: rest.iter().filter_map(|p| reference_param(p)).collect(),
                    };
                    // The other parameters are not read: with the context
                    // out of place, what they are is a guess.
                    (Err(missing), &[][..])
                }
            },
        };
        let params = rest
            .iter()
            .filter_map(|pat_type| param(cx, pat_type, kind))
            .collect();
        PolicySig {
            ident: sig.ident.clone(),
            context,
            params,
            output: output(cx, &sig.output, kind),
        }
    }
}

/// A parameter of type `&X` or `&mut X` other than the envelope, as
/// written (`totals: &mut Totals`), with `X` as a context.
fn reference_param(pat_type: &PatType) -> Option<(String, Context)> {
    match &*pat_type.ty {
        Type::Reference(reference) if !is_envelope(&reference.elem) => Some((
            format!(
                "{}: {}",
                tokens_to_string(&pat_type.pat),
                tokens_to_string(&pat_type.ty)
            ),
            Context::from_reference(reference),
        )),
        _ => None,
    }
}

/// Rejects what the generated impl cannot call: `async`, `unsafe` and
/// generic methods.
fn check_qualifiers(cx: &Ctxt, sig: &syn::Signature, kind: SigKind) {
    let what = kind.plural();
    if let Some(asyncness) = &sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            format!(
                "{what} cannot be `async`: a follower calls them one event at a time, inside its transaction, and waits for each; remove `async`"
            ),
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        cx.error_spanned_by(
            unsafety,
            format!(
                "{what} cannot be `unsafe`: the follower calls them with any upstream event; move the unsafe code into a safe helper"
            ),
        );
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            format!(
                "{what} cannot be generic: the follower calls them with one context type and the event's own field types; remove the parameters (write `'_` for a lifetime)"
            ),
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            format!("{what} cannot have a `where` clause; put bounds on the impl block"),
        );
    }
}

/// One parameter after the context; `None` when it is in error.
fn param(cx: &Ctxt, pat_type: &PatType, kind: SigKind) -> Option<Param> {
    let ty = &*pat_type.ty;
    if is_envelope_ref(ty) && kind == SigKind::Handler {
        return Some(Param::Envelope);
    }
    if let SigKind::Hook(name) = kind {
        cx.error_spanned_by(
            pat_type,
            format!(
                "`#[{name}]` takes only the context, as in `fn {name}(&mut self, cx: &mut Totals)`; remove this parameter"
            ),
        );
        return None;
    }
    if is_envelope(ty) {
        cx.error_spanned_by(
            ty,
            "handlers take the envelope by reference: write `&Envelope`",
        );
        return None;
    }
    let ident = match &*pat_type.pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
        other => {
            cx.error_spanned_by(
                other,
                "a handler's parameters after the context are the event's fields, each by its name (`amount: u64`), or the envelope (`envelope: &Envelope`)",
            );
            return None;
        }
    };
    reject_reserved_ident(cx, &ident, "parameter");
    let by_ref = match ty {
        Type::Reference(reference) if reference.mutability.is_some() => {
            cx.error_spanned_by(
                ty,
                format!(
                    "a handler receives an event field by value or by shared reference: write `{}` or `&{}`",
                    tokens_to_string(&reference.elem),
                    tokens_to_string(&reference.elem),
                ),
            );
            return None;
        }
        Type::Reference(_) => true,
        _ => false,
    };
    Some(Param::Field {
        ident,
        ty: pat_type.ty.clone(),
        by_ref,
    })
}

/// The return type of a method that can fail; `None` for one that
/// returns nothing (or `()`). A `Result` whose success type is not `()`
/// is an error here; any other type is left to rustc, whose error lands on
/// it.
fn output(cx: &Ctxt, output: &syn::ReturnType, kind: SigKind) -> Option<Box<Type>> {
    let syn::ReturnType::Type(_, ty) = output else {
        return None;
    };
    if matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()) {
        return None;
    }
    if let Some(ok) = success_type(ty)
        && !matches!(ok, Type::Tuple(t) if t.elems.is_empty())
    {
        cx.error_spanned_by(
            ok,
            format!(
                "{} return nothing, or `Result<(), E>` to fail: what they make goes into the context",
                kind.plural()
            ),
        );
    }
    Some(ty.clone())
}

/// The first type argument of a path type ending in `Result`
/// (`Result<T, E>`, `rusqlite::Result<T>`).
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
    args.args.iter().find_map(|arg| match arg {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// A path whose last segment is `Envelope`.
fn is_envelope(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == ENVELOPE && s.arguments.is_empty()),
        Type::Paren(paren) => is_envelope(&paren.elem),
        Type::Group(group) => is_envelope(&group.elem),
        _ => false,
    }
}

/// `&Envelope` (any path ending in `Envelope`), the envelope parameter.
pub(crate) fn is_envelope_ref(ty: &Type) -> bool {
    matches!(ty, Type::Reference(r) if r.mutability.is_none() && is_envelope(&r.elem))
}
