//! What [`Application::save`](crate::Application::save) takes: one
//! aggregate, or several of any types at once.

use crate::domain::{Aggregate, RecordedEvent, Snapshot};
use crate::error::Result;
use crate::format::Hash;

/// Aggregates whose pending events can be saved in one transaction: a
/// `&mut` to one aggregate, to a slice, array or `Vec` of aggregates of one
/// type, or a tuple of these (up to eight) for aggregates of several types.
///
/// Sealed: implemented here for those shapes, and by nothing else.
///
/// ```
/// # use eventsourcing::prelude::*;
/// # #[aggregate] #[derive(Default)] struct Cat { lives: u8 }
/// # #[aggregate] impl Cat { #[created(Born)] fn born(&mut self) { self.lives = 9 } }
/// # #[aggregate] #[derive(Default)] struct Dog {}
/// # #[aggregate] impl Dog { #[created(Born)] fn born(&mut self) {} }
/// let app = Application::builder().build()?;
/// let (mut cat, mut dog) = (Cat::born(), Dog::born());
/// assert_eq!(app.save((&mut cat, &mut dog))?, [1, 2]);
/// let mut litter = vec![Cat::born(), Cat::born()];
/// assert_eq!(app.save(&mut litter)?, [3, 4]);
/// # Ok::<(), eventsourcing::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be saved",
    label = "not aggregates to save",
    note = "`save` takes `&mut aggregate`, a `&mut` slice, array or `Vec` of aggregates, or a tuple of these, such as `app.save((&mut a, &mut b))`"
)]
pub trait Unsaved: sealed::Sealed {}

impl<T: sealed::Sealed> Unsaved for T {}

pub(crate) use self::sealed::{Pending, Sealed as Visit};

mod sealed {
    use super::{Aggregate, Hash, RecordedEvent, Result, Snapshot};
    use crate::keys::{Encryption, PublicTopics, is_public};

    /// One aggregate being saved, whatever its type.
    pub trait Pending {
        /// The events to save, or the fault that makes the aggregate
        /// unsavable.
        fn events(&self) -> Result<&[RecordedEvent]>;

        /// Forgets the pending events once they are stored; `head` is the
        /// hash of the last one as stored, when metadata was stamped on them.
        fn mark_saved(&mut self, head: Option<Hash>);

        /// The aggregate type's name ([`Root::NAME`]): what snapshot
        /// intervals are configured by.
        fn type_name(&self) -> &'static str;

        /// The aggregate's state now, as a snapshot; `None` when there is
        /// nothing to snapshot (discarded, or never created).
        fn snapshot(&self) -> Result<Option<Snapshot>>;

        /// How the aggregate type's records are encrypted.
        fn encryption(&self) -> Encryption;

        /// Whether a record of the aggregate with `topic` is stored in
        /// plaintext (a public type or event).
        fn is_public(&self, topic: &str) -> bool;

        /// Teaches `public` the type's public topics.
        fn learn(&self, public: &PublicTopics);
    }

    impl<A: Aggregate> Pending for A {
        fn events(&self) -> Result<&[RecordedEvent]> {
            self.meta().pending_checked()
        }

        fn mark_saved(&mut self, head: Option<Hash>) {
            self.meta_mut().clear_pending(head);
        }

        fn type_name(&self) -> &'static str {
            A::NAME
        }

        fn snapshot(&self) -> Result<Option<Snapshot>> {
            if self.is_discarded() || self.version() == 0 {
                return Ok(None);
            }
            self.to_snapshot().map(Some)
        }

        fn encryption(&self) -> Encryption {
            A::ENCRYPTION
        }

        fn is_public(&self, topic: &str) -> bool {
            is_public::<A>(topic)
        }

        fn learn(&self, public: &PublicTopics) {
            public.learn::<A>();
        }
    }

    /// A set of aggregates being saved.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be saved",
        label = "not aggregates to save",
        note = "`save` takes `&mut aggregate`, a `&mut` slice, array or `Vec` of aggregates, or a tuple of these, such as `app.save((&mut a, &mut b))`"
    )]
    pub trait Sealed {
        /// Calls `each` with every aggregate of the set, in order.
        fn visit(&mut self, each: &mut dyn FnMut(&mut dyn Pending) -> Result<()>) -> Result<()>;
    }

    impl<A: Aggregate> Sealed for &mut A {
        fn visit(&mut self, each: &mut dyn FnMut(&mut dyn Pending) -> Result<()>) -> Result<()> {
            each(&mut **self)
        }
    }

    impl<A: Aggregate> Sealed for &mut [A] {
        fn visit(&mut self, each: &mut dyn FnMut(&mut dyn Pending) -> Result<()>) -> Result<()> {
            self.iter_mut().try_for_each(|a| each(a))
        }
    }

    impl<A: Aggregate, const N: usize> Sealed for &mut [A; N] {
        fn visit(&mut self, each: &mut dyn FnMut(&mut dyn Pending) -> Result<()>) -> Result<()> {
            self.iter_mut().try_for_each(|a| each(a))
        }
    }

    impl<A: Aggregate> Sealed for &mut Vec<A> {
        fn visit(&mut self, each: &mut dyn FnMut(&mut dyn Pending) -> Result<()>) -> Result<()> {
            self.iter_mut().try_for_each(|a| each(a))
        }
    }

    macro_rules! tuples {
        ($(($($t:ident),+)),+ $(,)?) => {$(
            impl<$($t: Sealed),+> Sealed for ($($t,)+) {
                #[allow(non_snake_case)]
                fn visit(
                    &mut self,
                    each: &mut dyn FnMut(&mut dyn Pending) -> Result<()>,
                ) -> Result<()> {
                    let ($($t,)+) = self;
                    $($t.visit(each)?;)+
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
