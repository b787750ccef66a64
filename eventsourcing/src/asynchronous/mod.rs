//! The async facade (feature `tokio`): an [`Application`] whose saves,
//! loads, snapshots and follower waits are futures, for programs on a
//! tokio runtime.
//!
//! The library's work is blocking (SQLite calls, PostgreSQL round trips,
//! waits for locks). Each call here moves it to tokio's blocking threads
//! ([`tokio::task::spawn_blocking`]) and awaits it there, so the runtime's
//! worker threads go on serving other tasks while a save waits for the
//! database. Aggregates move into a save by value and come back with its
//! notification ids; loads return them by value. Metadata scoped to a task
//! with [`with_metadata_async`] goes with each call to the thread that does
//! its work.
//!
//! ```
//! # use eventsourcing::prelude::*;
//! # #[aggregate] #[derive(Default)] struct Cat { lives: u8 }
//! # #[aggregate] impl Cat {
//! #     #[created(Born)] fn born(&mut self) { self.lives = 9 }
//! #     #[event(LostOne)] fn lose_one(&mut self) { self.lives -= 1 }
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let app = Application::builder().build()?.into_async();
//! let (mut cat, ids) = app.save(Cat::born()).await?;
//! assert_eq!(ids, [1]);
//! cat.lose_one();
//! let (cat, _) = app.save(cat).await?;
//! let copy: Cat = app.repository().get(cat.id()).await?;
//! assert_eq!((copy.lives, copy.version()), (8, 2));
//! # Ok::<(), eventsourcing::Error>(())
//! # }).unwrap();
//! ```
//!
//! Dropping one of these futures before it is done does not cancel the
//! blocking work once it has started: a save still commits (or fails), and
//! its aggregates are then dropped with the future.

mod follower;
mod metadata;
mod owned;

use uuid::Uuid;

pub use self::follower::AsyncRunning;
pub use self::metadata::with_metadata_async;
use self::owned::ByValue;
pub use self::owned::Owned;
use crate::application::Application;
use crate::domain::{Aggregate, Metadata, Recorded, with_metadata};
use crate::error::{Error, Result};

/// An [`Application`] for async code: every method that reads or writes
/// the database returns a future, and does its blocking work on tokio's
/// blocking threads. Made with [`Application::into_async`] or
/// [`AsyncApplication::new`].
///
/// Cloning is cheap (clones share the application), and it is
/// `Send + Sync + 'static`: keep one in a web framework's state and clone
/// it into handlers. Methods that only read memory
/// ([`Application::name`], [`Application::on_commit`],
/// [`Application::take_snapshot_error`]...) are on the wrapped
/// [`application`](AsyncApplication::application).
///
/// Each method must be awaited on a tokio runtime; elsewhere it is
/// [`Error::Runtime`].
#[derive(Clone, Debug)]
pub struct AsyncApplication {
    app: Application,
}

impl Application {
    /// This application behind the async facade.
    #[must_use]
    pub fn into_async(self) -> AsyncApplication {
        AsyncApplication::new(self)
    }
}

impl From<Application> for AsyncApplication {
    fn from(app: Application) -> Self {
        AsyncApplication::new(app)
    }
}

impl AsyncApplication {
    /// `app` behind the async facade.
    #[must_use]
    pub fn new(app: Application) -> AsyncApplication {
        AsyncApplication { app }
    }

    /// The application itself, for what does not block (and for blocking
    /// calls made on a thread that may block).
    #[must_use]
    pub fn application(&self) -> &Application {
        &self.app
    }

    /// The application itself.
    #[must_use]
    pub fn into_inner(self) -> Application {
        self.app
    }

    /// Runs `work` with the application on a blocking thread, inside the
    /// task's metadata scope, and returns what it returns: any blocking
    /// call the facade has no method for (checking a chain, reading the
    /// notification log, starting a follower).
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # #[aggregate] #[derive(Default)] struct Cat {}
    /// # #[aggregate] impl Cat { #[created(Born)] fn born(&mut self) {} }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let app = Application::builder().build()?.into_async();
    /// let (cat, _) = app.save(Cat::born()).await?;
    /// let id = cat.id();
    /// let head = app.blocking(move |app| app.event_store().verify(id)).await?;
    /// assert_eq!(head, cat.head());
    /// # Ok::<(), eventsourcing::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// A panic in `work` is resumed in the awaiting task.
    pub async fn blocking<R, F>(&self, work: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Application) -> Result<R> + Send + 'static,
    {
        let app = self.app.clone();
        run_blocking(move || work(&app)).await?
    }

    /// [`Application::save`] for async code: saves the pending events of
    /// `aggregates` (one aggregate, a `Vec` or array of one type, or a
    /// tuple of these: see [`Owned`]) in one transaction, and gives the
    /// aggregates back, saved, with their notification ids in order.
    ///
    /// On an error the aggregates are dropped with their pending events
    /// (after [`Error::Concurrency`], load them again and run the command
    /// again); the save wrote nothing.
    pub async fn save<U: Owned>(&self, aggregates: U) -> Result<(U, Vec<u64>)> {
        self.save_with(Metadata::new(), aggregates).await
    }

    /// [`Application::save_with`] for async code: [`AsyncApplication::save`]
    /// with `metadata` stamped on every event of the save (over the
    /// application's and the task's).
    pub async fn save_with<U: Owned>(
        &self,
        metadata: Metadata,
        mut aggregates: U,
    ) -> Result<(U, Vec<u64>)> {
        let app = self.app.clone();
        run_blocking(move || {
            let ids = app.save_with(&metadata, ByValue(&mut aggregates))?;
            Ok((aggregates, ids))
        })
        .await?
    }

    /// [`Application::save_snapshot`] for async code: stores a snapshot of
    /// aggregate `id` at its latest version, and returns that version.
    pub async fn save_snapshot<A: Aggregate>(&self, id: A::Id) -> Result<u64> {
        self.blocking(move |app| app.save_snapshot::<A>(id)).await
    }

    /// [`Application::save_snapshot_at`] for async code.
    pub async fn save_snapshot_at<A: Aggregate>(&self, id: A::Id, version: u64) -> Result<u64> {
        self.blocking(move |app| app.save_snapshot_at::<A>(id, version))
            .await
    }

    /// The repository for async code: aggregates rebuilt from their events.
    #[must_use]
    pub fn repository(&self) -> AsyncRepository {
        AsyncRepository { app: self.clone() }
    }
}

/// [`Repository`](crate::Repository) for async code, from
/// [`AsyncApplication::repository`]: each method loads on a blocking
/// thread and returns the aggregate by value.
#[derive(Clone, Debug)]
pub struct AsyncRepository {
    app: AsyncApplication,
}

impl AsyncRepository {
    /// [`Repository::get`](crate::Repository::get): the aggregate rebuilt
    /// from its latest snapshot and the events after it.
    pub async fn get<A: Aggregate>(&self, id: A::Id) -> Result<A> {
        self.app.blocking(move |app| app.repository().get(id)).await
    }

    /// [`Repository::find`](crate::Repository::find): the aggregate, or
    /// `None` when it has no events or was discarded.
    pub async fn find<A: Aggregate>(&self, id: A::Id) -> Result<Option<A>> {
        self.app
            .blocking(move |app| app.repository().find(id))
            .await
    }

    /// [`Repository::get_at`](crate::Repository::get_at): the aggregate as
    /// it was at `version`.
    pub async fn get_at<A: Aggregate>(&self, id: A::Id, version: u64) -> Result<A> {
        self.app
            .blocking(move |app| app.repository().get_at(id, version))
            .await
    }

    /// [`Repository::get_as_of`](crate::Repository::get_as_of): the
    /// aggregate as it was at a moment.
    pub async fn get_as_of<A: Aggregate>(&self, id: A::Id, timestamp_micros: i64) -> Result<A> {
        self.app
            .blocking(move |app| app.repository().get_as_of(id, timestamp_micros))
            .await
    }

    /// [`Repository::contains`](crate::Repository::contains): whether the
    /// aggregate has events and was not discarded.
    pub async fn contains(&self, id: impl Into<Uuid>) -> Result<bool> {
        let id = id.into();
        self.app
            .blocking(move |app| app.repository().contains(id))
            .await
    }

    /// [`Repository::events`](crate::Repository::events): the aggregate's
    /// history as its own event type, after checking its chain.
    pub async fn events<A: Aggregate>(&self, id: A::Id) -> Result<Vec<Recorded<A::Event>>> {
        self.app
            .blocking(move |app| app.repository().events::<A>(id))
            .await
    }
}

/// Runs `work` on tokio's blocking threads in the calling task's metadata
/// scope, and awaits it.
async fn run_blocking<R, F>(work: F) -> Result<R>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let handle = tokio::runtime::Handle::try_current().map_err(|error| Error::Runtime {
        reason: error.to_string(),
    })?;
    let scope = metadata::current();
    let joined = handle
        .spawn_blocking(move || match scope {
            Some(metadata) => with_metadata(metadata, work),
            None => work(),
        })
        .await;
    match joined {
        Ok(value) => Ok(value),
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => Err(Error::Runtime {
                reason: format!("the blocking work did not run: {error}"),
            }),
        },
    }
}
