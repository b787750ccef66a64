//! Systems: applications wired into pipelines, each following the ones
//! before it, declared once and run unchanged on one thread, on threads,
//! in processes or on machines.
//!
//! An application of a system is a type that implements [`App`]: a
//! `#[policy]` (its handlers for the events of the applications it
//! follows) that names the aggregates it records. A pipeline is a tuple
//! of such types, each following the one before it: the seed's
//! `Orders | Reservations | Orders, Orders | Payments | Orders` is
//!
//! ```ignore
//! let system = System::builder()
//!     .app(Orders)
//!     .app(Reservations)
//!     .app(Payments)
//!     .pipe::<(Orders, Reservations, Orders)>()
//!     .pipe::<(Orders, Payments, Orders)>()
//!     .build()?;
//! let running = system.start(Runner::Threads)?;
//! running.app::<Orders>().save(&mut order)?;
//! ```
//!
//! [`SystemBuilder::build`] checks the definition ([`SystemError`]); a
//! pipeline naming a type that is not an [`App`] does not compile. Each
//! [`Runner`] builds one [`Application`](crate::Application) per
//! application of the system (from the environment, or from a function of
//! the caller's) and one follower per application that follows another
//! (per partition, when it is partitioned).

mod definition;
#[cfg(feature = "postgres")]
mod lease;
#[cfg(feature = "postgres")]
mod machines;
mod processes;
mod quiescence;
mod repartition;
mod run;
mod single;
mod worker;

use crate::domain::{Aggregate, Event};
use crate::follower::{Policy, Processing};

pub use self::definition::{System, SystemBuilder, SystemError};
#[cfg(feature = "postgres")]
pub use self::machines::MachineOptions;
pub use self::processes::{ProcessOptions, ROLE_VARIABLE};
pub use self::run::{AppFactory, Runner, SystemRunning, table_prefix};

/// An application of a [`System`]: a process application's policy (its
/// `#[policy]` handlers for the events of the applications it follows;
/// [`source_app!`](crate::source_app) for one that follows nothing) and
/// the aggregates it records. Its
/// name in the system is the policy's name (`#[policy(name = "...")]`,
/// the type's name unless given).
///
/// ```
/// # use eventsourcing::prelude::*;
/// # use eventsourcing::follower::{Envelope, Processing};
/// # #[aggregate] #[derive(Default)] struct Order {}
/// # #[aggregate] impl Order { #[created(Placed)] fn place(&mut self) {} }
/// use eventsourcing::system::App;
///
/// #[derive(Clone)]
/// struct Orders;
///
/// // Follows nothing: takes commands only.
/// eventsourcing::source_app!(Orders: Order);
///
/// # #[aggregate] #[derive(Default)] struct Invoice {}
/// # #[aggregate] impl Invoice { #[created(Issued, id = order)] fn issue(&mut self, order: Uuid) { let _ = order; } }
/// #[derive(Clone)]
/// struct Invoicing;
///
/// #[policy]
/// impl Invoicing {
///     #[on(OrderEvent::Placed)]
///     fn placed(&self, cx: &mut Processing, envelope: &Envelope) -> Result<()> {
///         cx.collect(Invoice::issue(envelope.originator_id()))?;
///         Ok(())
///     }
/// }
///
/// impl App for Invoicing {
///     type Aggregates = (Invoice,);
/// }
/// ```
pub trait App: Policy<Processing> + Clone + Sync {
    /// The aggregates whose events the application records: a tuple of
    /// aggregate types.
    type Aggregates: Aggregates;

    /// The application's name in the system.
    #[must_use]
    fn name() -> &'static str {
        <Self as Policy<Processing>>::NAME
    }
}

/// A tuple of aggregate types: what an [`App`] records.
pub trait Aggregates {
    /// Every topic their events can be recorded under.
    fn topics() -> Vec<&'static str>;
}

macro_rules! aggregates_tuple {
    ($($a:ident),+) => {
        impl<$($a: Aggregate),+> Aggregates for ($($a,)+) {
            fn topics() -> Vec<&'static str> {
                let mut topics = Vec::new();
                $(topics.extend_from_slice(<$a::Event as Event>::TOPICS);)+
                topics
            }
        }
    };
}

aggregates_tuple!(A1);
aggregates_tuple!(A1, A2);
aggregates_tuple!(A1, A2, A3);
aggregates_tuple!(A1, A2, A3, A4);
aggregates_tuple!(A1, A2, A3, A4, A5);
aggregates_tuple!(A1, A2, A3, A4, A5, A6);
aggregates_tuple!(A1, A2, A3, A4, A5, A6, A7);
aggregates_tuple!(A1, A2, A3, A4, A5, A6, A7, A8);

/// A pipeline: a tuple of [`App`] types, each following the one before
/// it (`(Orders, Reservations, Orders)`: `Reservations` follows `Orders`,
/// which follows `Reservations`).
pub trait Pipe {
    /// The names of its applications, in order.
    fn names() -> Vec<&'static str>;
}

macro_rules! pipe_tuple {
    ($($a:ident),+) => {
        impl<$($a: App),+> Pipe for ($($a,)+) {
            fn names() -> Vec<&'static str> {
                vec![$(<$a as App>::name()),+]
            }
        }
    };
}

pipe_tuple!(A1, A2);
pipe_tuple!(A1, A2, A3);
pipe_tuple!(A1, A2, A3, A4);
pipe_tuple!(A1, A2, A3, A4, A5);
pipe_tuple!(A1, A2, A3, A4, A5, A6);
pipe_tuple!(A1, A2, A3, A4, A5, A6, A7);
pipe_tuple!(A1, A2, A3, A4, A5, A6, A7, A8);

/// Makes `$app` an [`App`] that follows nothing (it takes commands only)
/// and records the aggregates listed: `source_app!(Feed: Trigger)`. Its
/// name in the system is the type's name. (An app that follows others
/// writes its handlers with `#[policy]` and implements [`App`] itself.)
#[macro_export]
macro_rules! source_app {
    ($app:ident: $($aggregate:ty),+ $(,)?) => {
        impl $crate::follower::Policy<$crate::follower::Processing> for $app {
            const NAME: &'static str = stringify!($app);

            fn topics() -> Option<Vec<&'static str>> {
                Some(Vec::new())
            }

            fn handle(
                &mut self,
                _: &mut $crate::follower::Processing,
                _: &$crate::follower::Envelope,
            ) -> Result<bool, $crate::follower::HandleError> {
                Ok(false)
            }
        }

        impl $crate::system::App for $app {
            type Aggregates = ($($aggregate,)+);
        }
    };
}
