//! What an event method's signature and its fields' types may be: checked
//! while the impl block is parsed, each rule with the reason in its error.

use syn::{FnArg, Ident, ImplItemFn, Pat, Type};

use super::aggregate_impl::{MethodKind, apply_macro};
use super::{Field, reject_reserved_ident, tokens_to_string};
use crate::ctxt::Ctxt;

/// Rejects what an event method cannot be: `async`, `const`, `unsafe`,
/// `extern`, generic.
fn check_qualifiers(cx: &Ctxt, sig: &syn::Signature) {
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
}

/// Checks that an event method can be recorded and replayed, and returns
/// its arguments as event fields. (An `#[event]` method's return type is
/// judged with its body, by `checked_body`.)
pub(super) fn check_signature(
    cx: &Ctxt,
    func: &ImplItemFn,
    kind: MethodKind,
    constructor: bool,
) -> Vec<Field> {
    let sig = &func.sig;
    check_qualifiers(cx, sig);
    if let syn::ReturnType::Type(_, ty) = &sig.output
        && kind == MethodKind::Created
        && !constructor
    {
        let message = if matches!(sig.inputs.first(), Some(FnArg::Receiver(_))) {
            "a creation method either takes `&mut self` and returns nothing (the aggregate starts from `Default` and the body applies the event), or takes no `self` and returns `Self` (the body builds the aggregate); not both"
        } else {
            "a creation method without `self` builds the aggregate: it returns `Self`"
        };
        cx.error_spanned_by(ty, message);
    }
    let mut inputs = sig.inputs.iter().peekable();
    match inputs.peek() {
        Some(FnArg::Receiver(r)) if is_mut_ref(&r.ty) => {
            inputs.next();
        }
        Some(FnArg::Receiver(r)) => {
            cx.error_spanned_by(
                r,
                "event methods take `&mut self`: they apply the event to the aggregate in place",
            );
            inputs.next();
        }
        _ if constructor || !matches!(sig.output, syn::ReturnType::Default) => {}
        _ if kind == MethodKind::Created => cx.error_spanned_by(
            &sig.ident,
            "a creation method takes `&mut self` (the aggregate starts from `Default` and the body applies the event), or returns `Self` (the body builds the aggregate, which then needs no `Default`)",
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
        reject_unkeyable_maps(cx, &pat_type.ty, "event field");
        fields.push(Field {
            ident,
            ty: (*pat_type.ty).clone(),
        });
    }
    fields
}

/// Whether a creation method builds the aggregate: no receiver, and it
/// returns `Self` (or the aggregate's own name).
pub(super) fn is_constructor(self_ident: &Ident, func: &ImplItemFn) -> bool {
    let receiver = matches!(func.sig.inputs.first(), Some(FnArg::Receiver(_)));
    let returns_self = match &func.sig.output {
        syn::ReturnType::Type(_, ty) => match &**ty {
            Type::Path(p) if p.qself.is_none() => {
                p.path.is_ident("Self") || p.path.is_ident(self_ident)
            }
            _ => false,
        },
        syn::ReturnType::Default => false,
    };
    !receiver && returns_self
}

/// Whether any statement of the method's body is `apply!`.
pub(crate) fn has_apply(func: &ImplItemFn) -> bool {
    func.block
        .stmts
        .iter()
        .any(|stmt| apply_macro(stmt).is_some())
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

/// The maps whose type shows keys that JSON cannot hold, anywhere in `ty`
/// (`HashMap<(u32, u32), V>`, `BTreeMap<Vec<u8>, V>`): a JSON object's keys
/// are strings, and serde's JSON writer takes only keys that are strings,
/// numbers, `bool`, `char` or newtypes and unit variants of them. Such a
/// map fails to encode once it holds a key, so it is refused here.
pub(crate) fn reject_unkeyable_maps(cx: &Ctxt, ty: &Type, what: &str) {
    const MAPS: &[&str] = &["HashMap", "BTreeMap", "IndexMap"];
    const COLLECTIONS: &[&str] = &[
        "Vec", "VecDeque", "HashSet", "BTreeSet", "HashMap", "BTreeMap", "IndexMap", "IndexSet",
    ];
    let Type::Path(path) = ty else {
        match ty {
            Type::Array(a) => reject_unkeyable_maps(cx, &a.elem, what),
            Type::Slice(s) => reject_unkeyable_maps(cx, &s.elem, what),
            Type::Paren(p) => reject_unkeyable_maps(cx, &p.elem, what),
            Type::Group(g) => reject_unkeyable_maps(cx, &g.elem, what),
            Type::Tuple(t) => t
                .elems
                .iter()
                .for_each(|e| reject_unkeyable_maps(cx, e, what)),
            _ => {}
        }
        return;
    };
    for segment in &path.path.segments {
        let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
            continue;
        };
        let types: Vec<&Type> = args
            .args
            .iter()
            .filter_map(|arg| match arg {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect();
        if MAPS.iter().any(|m| segment.ident == m)
            && let Some(key) = types.first()
        {
            let unkeyable = match key {
                Type::Tuple(_) | Type::Array(_) | Type::Slice(_) => true,
                Type::Path(p) => p
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| COLLECTIONS.iter().any(|c| s.ident == c)),
                _ => false,
            };
            if unkeyable {
                cx.error_spanned_by(
                    key,
                    format!(
                        "this {what} is a map with keys of type `{}`, which JSON cannot hold (an object's keys are strings): use keys that are strings, numbers, `bool`, `char`, or newtypes or unit variants of them, or a `Vec` of pairs",
                        tokens_to_string(key)
                    ),
                );
            }
        }
        for inner in types {
            reject_unkeyable_maps(cx, inner, what);
        }
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
