//! Projections into SQL tables: the handlers get the driver's own
//! transaction (`rusqlite::Transaction`, `postgres::Transaction`) and write
//! plain SQL; the follower adds its tracking compare-and-set (and any
//! parked notifications) to the same transaction and commits. The read
//! model and the position move together, or not at all.

use std::cell::Cell;
use std::sync::Arc;

use super::policy::{Envelope, Policy};
use super::target::sealed::Sink;
use super::target::{Commit, Failure};
use crate::error::{Error, Result};
use crate::follower::{Follower, FollowerBuilder};
use crate::recorder::{Batch, Recorder, Registration, TrackingKey};

/// The batch a commit writes besides the handlers' own statements.
fn batch<'a>(commit: &Commit<'a>) -> Batch<'a> {
    let batch = Batch::default().with_parked(commit.parked);
    match commit.tracking {
        Some(update) => batch.with_tracking(update),
        None => batch,
    }
}

/// The error that aborts a transaction whose handler failed; the failure
/// itself is kept aside and reported instead.
fn aborted() -> Error {
    Error::InvalidArgument {
        name: "handler",
        reason: "a handler failed; its transaction was rolled back".to_owned(),
    }
}

/// Runs `policy` on each event of `batch` inside a transaction; a
/// handler's failure is kept in `failed` and aborts the transaction.
fn handle_all<C, P: Policy<C>>(
    policy: &mut P,
    cx: &mut C,
    batch: &[Envelope],
    failed: &Cell<Option<Failure>>,
) -> Result<()> {
    for (index, envelope) in batch.iter().enumerate() {
        if let Err(error) = policy.handle(cx, envelope) {
            failed.set(Some(Failure::Handler {
                index,
                error: Box::new(error),
            }));
            return Err(aborted());
        }
        crate::crash::point("after_handler");
    }
    Ok(())
}

/// Resets then sets up, or sets up: a failure is kept in `failed`.
fn prepare<C, P: Policy<C>>(
    policy: &mut P,
    cx: &mut C,
    reset: bool,
    failed: &Cell<Option<Failure>>,
) -> Result<()> {
    let result = if reset { policy.reset(cx) } else { Ok(()) }.and_then(|()| policy.setup(cx));
    result.map_err(|error| {
        failed.set(Some(Failure::Setup(error)));
        aborted()
    })
}

/// The outcome of a transaction whose handlers may have failed.
fn outcome<T>(result: Result<T>, failed: Cell<Option<Failure>>) -> Result<T, Failure> {
    match (result, failed.into_inner()) {
        (_, Some(failure)) => Err(failure),
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(Failure::Store(error)),
    }
}

/// A projection target over one backend: the struct, its `Follower`
/// constructor, and its `Sink` impl. The backends differ only in their
/// recorder and transaction types; the transaction is the driver's own.
macro_rules! sql_target {
    (
        $(#[$target_doc:meta])*
        $target:ident($recorder:ty, $tx:ident::Transaction),
        $(#[$constructor_doc:meta])*
        fn $constructor:ident
    ) => {
        $(#[$target_doc])*
        #[derive(Debug)]
        pub struct $target {
            recorder: Arc<$recorder>,
        }

        impl<P> Follower<P, $target>
        where
            P: for<'t> Policy<$tx::Transaction<'t>>,
        {
            $(#[$constructor_doc])*
            pub fn $constructor(policy: P, recorder: Arc<$recorder>) -> FollowerBuilder<P, $target> {
                FollowerBuilder::new(policy, $target { recorder })
            }
        }

        impl<P> Sink<P> for $target
        where
            P: for<'t> Policy<$tx::Transaction<'t>>,
        {
            const TRANSACTIONAL: bool = true;

            fn policy_name() -> &'static str {
                <P as Policy<$tx::Transaction<'static>>>::NAME
            }

            fn policy_version() -> u32 {
                <P as Policy<$tx::Transaction<'static>>>::VERSION
            }

            fn policy_topics() -> Option<Vec<&'static str>> {
                <P as Policy<$tx::Transaction<'static>>>::topics()
            }

            fn recorder(&self) -> &dyn Recorder {
                &*self.recorder
            }

            fn process(
                &mut self,
                policy: &mut P,
                events: &[Envelope],
                commit: Commit<'_>,
            ) -> Result<Vec<u64>, Failure> {
                let failed = Cell::new(None);
                let result = self.recorder.transact(&batch(&commit), |tx| {
                    handle_all(policy, tx, events, &failed)
                });
                let ids = outcome(result, failed).map(|((), ids)| ids)?;
                crate::crash::point("after_commit");
                Ok(ids)
            }

            fn setup(&mut self, policy: &mut P) -> Result<(), Failure> {
                let failed = Cell::new(None);
                let result = self
                    .recorder
                    .transact(&Batch::default(), |tx| prepare(policy, tx, false, &failed));
                outcome(result, failed).map(drop)
            }

            fn rebuild(
                &mut self,
                policy: &mut P,
                rewind: &[(TrackingKey, u64)],
                registration: &Registration,
            ) -> Result<bool, Failure> {
                let failed = Cell::new(None);
                let result = self.recorder.rebuild(rewind, registration, |tx| {
                    prepare(policy, tx, true, &failed)
                });
                outcome(result, failed).map(|()| true)
            }
        }
    };
}

#[cfg(feature = "sqlite")]
sql_target! {
    /// A projection's target in a SQLite database: its handlers take a
    /// `&rusqlite::Transaction` (or `&mut`) and write SQL; its tracking
    /// rows, registration and parked notifications live in the same
    /// database ([`Follower::sqlite`]).
    SqliteProjection(crate::recorder::SqliteRecorder, rusqlite::Transaction),
    /// A projection into the SQLite database of `recorder`: each batch of
    /// upstream events is handled in one transaction of it, with the
    /// follower's new position. The upstream may live anywhere (the same
    /// database, another file, PostgreSQL, memory).
    ///
    /// For the database of an application:
    /// `app.event_store().recorder_as::<SqliteRecorder>()`.
    fn sqlite
}

#[cfg(feature = "postgres")]
sql_target! {
    /// A projection's target in a PostgreSQL database: its handlers take a
    /// `&mut postgres::Transaction` and write SQL; its tracking rows,
    /// registration and parked notifications live in the same database
    /// ([`Follower::postgres`]).
    PostgresProjection(crate::recorder::PostgresRecorder, postgres::Transaction),
    /// A projection into the PostgreSQL database of `recorder` (its schema
    /// and table prefix): each batch of upstream events is handled in one
    /// transaction of it, with the follower's new position. The upstream
    /// may live anywhere.
    ///
    /// For the database of an application:
    /// `app.event_store().recorder_as::<PostgresRecorder>()`.
    fn postgres
}
