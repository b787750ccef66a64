//! The context of a `#[policy]`: what every handler works with, named by
//! the type of its first parameter after `self` (`&X` or `&mut X`), and
//! the type `C` of the generated `impl Policy<C>`, which is `X` with its
//! elided lifetimes named.

use proc_macro2::Span;
use syn::visit_mut::VisitMut;
use syn::{Lifetime, Type, TypeReference};

use super::tokens_to_string;
use crate::symbol::CONTEXT_LIFETIME;

/// The context parameter of one handler, `#[setup]` or `#[reset]`.
#[derive(Clone)]
pub(crate) struct Context {
    /// `X` as written, for error spans.
    pub(crate) written: Type,
    /// `X` with every `'_` and every elided reference lifetime replaced by
    /// `'__es`: the `C` of `impl<'__es> Policy<C>`.
    pub(crate) ty: Type,
    /// Whether the method takes `&mut X` (else `&X`).
    pub(crate) mutable: bool,
    /// Whether `ty` names `'__es`, which the impl then declares.
    pub(crate) has_lifetime: bool,
}

impl Context {
    /// The context of a parameter of type `&X` or `&mut X`.
    pub(crate) fn from_reference(reference: &TypeReference) -> Self {
        let written = (*reference.elem).clone();
        let mut ty = written.clone();
        let mut visitor = NameElided { named: false };
        visitor.visit_type_mut(&mut ty);
        Context {
            written,
            ty,
            mutable: reference.mutability.is_some(),
            has_lifetime: visitor.named,
        }
    }

    /// `X` as the user would write it with its lifetimes named alike, so
    /// that `&Transaction<'_>` and `&'_ Transaction<'_>` compare equal.
    pub(crate) fn key(&self) -> String {
        tokens_to_string(&self.ty)
    }

    /// `X` as written, for messages.
    pub(crate) fn display(&self) -> String {
        tokens_to_string(&self.written)
    }
}

/// Names the lifetimes `X` leaves to elision: `'_`, and references
/// without a lifetime. (A path that hides its lifetime parameters, such as
/// `Transaction` for `Transaction<'_>`, cannot be seen from its tokens;
/// rustc then asks for `<'_>` at the user's type.)
struct NameElided {
    /// Whether any lifetime was named.
    named: bool,
}

impl VisitMut for NameElided {
    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = Lifetime::new(CONTEXT_LIFETIME, lifetime.span());
            self.named = true;
        }
    }

    fn visit_type_reference_mut(&mut self, reference: &mut TypeReference) {
        if reference.lifetime.is_none() {
            let span = reference.and_token.span;
            reference.lifetime = Some(Lifetime::new(CONTEXT_LIFETIME, span));
            self.named = true;
        }
        syn::visit_mut::visit_type_reference_mut(self, reference);
    }

    // Lifetimes inside `fn(&T)` and `dyn Fn(&T)` belong to the function
    // type, not to the context.
    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}

    fn visit_parenthesized_generic_arguments_mut(
        &mut self,
        _: &mut syn::ParenthesizedGenericArguments,
    ) {
    }
}

/// The lifetime `'__es`, for the generated impl's parameters.
pub(crate) fn context_lifetime() -> Lifetime {
    Lifetime::new(CONTEXT_LIFETIME, Span::call_site())
}
