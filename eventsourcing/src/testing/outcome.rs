//! What a command returns, as the scenario reads it: [`CommandOutcome`]
//! for `Scenario::when`, [`CreationOutcome`] for `Scenario::when_created`.

use std::convert::Infallible;

use crate::domain::Aggregate;
use crate::error::Result;

/// What a command closure passed to
/// [`Scenario::when`](super::Scenario::when) may return: nothing, or a
/// `Result`.
///
/// A command that returns `()` cannot fail; its error type is
/// [`Infallible`]. A command that returns `Result<T, E>` succeeded with `T`
/// or was refused with `E`.
///
/// ```
/// use eventsourcing::testing::CommandOutcome;
///
/// assert_eq!(().into_result(), Ok(()));
/// assert_eq!(Ok::<u8, String>(3).into_result(), Ok(3));
/// assert_eq!(Err::<u8, &str>("no").into_result(), Err("no"));
/// ```
pub trait CommandOutcome {
    /// What the command returns when it succeeds.
    type Value;
    /// What the command returns when it refuses.
    type Error;

    /// The outcome as a `Result`.
    ///
    /// ```
    /// use eventsourcing::testing::CommandOutcome;
    ///
    /// let outcome: Result<(), std::convert::Infallible> = ().into_result();
    /// assert!(outcome.is_ok());
    /// ```
    fn into_result(self) -> Result<Self::Value, Self::Error>;
}

impl CommandOutcome for () {
    type Value = ();
    type Error = Infallible;

    fn into_result(self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl<T, E> CommandOutcome for Result<T, E> {
    type Value = T;
    type Error = E;

    fn into_result(self) -> Result<T, E> {
        self
    }
}

/// What a creation closure passed to
/// [`Scenario::when_created`](super::Scenario::when_created) may return:
/// the new aggregate, or a `Result` holding it.
///
/// ```
/// use eventsourcing::prelude::*;
/// use eventsourcing::testing::CreationOutcome;
///
/// #[aggregate]
/// #[derive(Debug, Default)]
/// pub struct Account {
///     owner: String,
/// }
///
/// #[aggregate]
/// impl Account {
///     #[created(Opened)]
///     pub fn open(&mut self, owner: String) {
///         self.owner = owner;
///     }
/// }
///
/// let created: Result<Account, _> = Account::open("Alice".into()).into_created();
/// assert_eq!(created.map(|account| account.version()), Ok(1));
///
/// let refused: Result<Account, &str> = Err::<Account, _>("no name").into_created();
/// assert!(refused.is_err());
/// ```
pub trait CreationOutcome<A> {
    /// What the creation command returns when it refuses.
    type Error;

    /// The outcome as a `Result`.
    ///
    /// ```
    /// use eventsourcing::prelude::*;
    /// use eventsourcing::testing::CreationOutcome;
    ///
    /// #[aggregate]
    /// #[derive(Debug, Default)]
    /// pub struct Counter {}
    ///
    /// #[aggregate]
    /// impl Counter {
    ///     #[created(Started)]
    ///     pub fn start(&mut self) {}
    /// }
    ///
    /// assert!(Counter::start().into_created().is_ok());
    /// ```
    fn into_created(self) -> Result<A, Self::Error>;
}

impl<A: Aggregate> CreationOutcome<A> for A {
    type Error = Infallible;

    fn into_created(self) -> Result<A, Infallible> {
        Ok(self)
    }
}

impl<A: Aggregate, E> CreationOutcome<A> for Result<A, E> {
    type Error = E;

    fn into_created(self) -> Result<A, E> {
        self
    }
}
