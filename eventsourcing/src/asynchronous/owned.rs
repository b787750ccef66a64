//! What [`AsyncApplication::save`](super::AsyncApplication::save) takes by
//! value and gives back: one aggregate, or several of any types.

use crate::application::{Pending, Visit};
use crate::domain::Aggregate;
use crate::error::Result;

/// Aggregates that an async save takes by value and gives back: one
/// aggregate, a `Vec` or array of aggregates of one type, or a tuple of
/// these (up to eight) for aggregates of several types, saved in one
/// transaction.
///
/// Sealed: implemented here for those shapes, and by nothing else.
///
/// ```
/// # use eventsourcing::prelude::*;
/// # #[aggregate] #[derive(Default)] struct Cat {}
/// # #[aggregate] impl Cat { #[created(Born)] fn born(&mut self) {} }
/// # #[aggregate] #[derive(Default)] struct Dog {}
/// # #[aggregate] impl Dog { #[created(Born)] fn born(&mut self) {} }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let app = Application::builder().build()?.into_async();
/// let ((cat, dog), ids) = app.save((Cat::born(), Dog::born())).await?;
/// assert_eq!(ids, [1, 2]);
/// let (litter, ids) = app.save(vec![Cat::born(), Cat::born()]).await?;
/// assert_eq!((litter.len(), ids), (2, vec![3, 4]));
/// # let _ = (cat, dog);
/// # Ok::<(), eventsourcing::Error>(())
/// # }).unwrap();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be saved by value",
    label = "not aggregates to save",
    note = "an async `save` takes an aggregate, a `Vec` or array of aggregates, or a tuple of these, by value"
)]
pub trait Owned: sealed::Sealed + Send + 'static {}

impl<T: sealed::Sealed + Send + 'static> Owned for T {}

/// Owned aggregates seen as a set to save.
pub(super) struct ByValue<'a, U>(pub(super) &'a mut U);

impl<U: Owned> Visit for ByValue<'_, U> {
    fn visit(&mut self, each: &mut dyn FnMut(&mut dyn Pending) -> Result<()>) -> Result<()> {
        self.0.visit_owned(each)
    }
}

mod sealed {
    use super::{Aggregate, Pending, Result};

    /// Owned aggregates, whatever their shape.
    pub trait Sealed {
        /// Calls `each` with every aggregate, in order.
        fn visit_owned(
            &mut self,
            each: &mut dyn FnMut(&mut dyn Pending) -> Result<()>,
        ) -> Result<()>;
    }

    impl<A: Aggregate> Sealed for A {
        fn visit_owned(
            &mut self,
            each: &mut dyn FnMut(&mut dyn Pending) -> Result<()>,
        ) -> Result<()> {
            each(self)
        }
    }

    impl<T: Aggregate> Sealed for Vec<T> {
        fn visit_owned(
            &mut self,
            each: &mut dyn FnMut(&mut dyn Pending) -> Result<()>,
        ) -> Result<()> {
            self.iter_mut().try_for_each(|a| each(a))
        }
    }

    impl<A: Aggregate, const N: usize> Sealed for [A; N] {
        fn visit_owned(
            &mut self,
            each: &mut dyn FnMut(&mut dyn Pending) -> Result<()>,
        ) -> Result<()> {
            self.iter_mut().try_for_each(|a| each(a))
        }
    }

    macro_rules! tuples {
        ($(($($t:ident),+)),+ $(,)?) => {$(
            impl<$($t: Sealed),+> Sealed for ($($t,)+) {
                #[allow(non_snake_case)]
                fn visit_owned(
                    &mut self,
                    each: &mut dyn FnMut(&mut dyn Pending) -> Result<()>,
                ) -> Result<()> {
                    let ($($t,)+) = self;
                    $($t.visit_owned(each)?;)+
                    Ok(())
                }
            }
        )+};
    }

    tuples!(
        (A),
        (A, B),
        (A, B, C),
        (A, B, C, D),
        (A, B, C, D, E),
        (A, B, C, D, E, F),
        (A, B, C, D, E, F, G),
        (A, B, C, D, E, F, G, H),
    );
}
