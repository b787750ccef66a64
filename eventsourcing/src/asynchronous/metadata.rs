//! Metadata scoped to a tokio task: what [`with_metadata`](crate::with_metadata)
//! is to a thread, [`with_metadata_async`] is to the futures of one task,
//! whichever worker thread polls them.

use std::future::Future;

use crate::domain::Metadata;

tokio::task_local! {
    /// The metadata of the task's open scopes, merged (inner over outer).
    static SCOPE: Metadata;
}

/// Runs `future` with `metadata` stamped on every event that the
/// [`AsyncApplication`](super::AsyncApplication) calls made while it runs
/// save (nested scopes merge, the inner one winning a key). Each call
/// carries the scope to the thread that does its blocking work, so tasks
/// on the same worker threads never see each other's metadata.
///
/// ```
/// # use eventsourcing::prelude::*;
/// # #[aggregate] #[derive(Default)] struct Cat {}
/// # #[aggregate] impl Cat { #[created(Born)] fn born(&mut self) {} }
/// use eventsourcing::{Metadata, with_metadata_async};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let app = Application::builder().build()?.into_async();
/// let (cat, _) = with_metadata_async(Metadata::new().with_user("alice"), async {
///     app.save(Cat::born()).await
/// })
/// .await?;
/// let events = app.application().event_store().recorded_events(cat.id())?;
/// assert_eq!(events[0].metadata()?.user(), Some("alice"));
/// # Ok::<(), eventsourcing::Error>(())
/// # }).unwrap();
/// ```
pub async fn with_metadata_async<F: Future>(metadata: Metadata, future: F) -> F::Output {
    let merged = match current() {
        Some(mut outer) => {
            outer.merge(&metadata);
            outer
        }
        None => metadata,
    };
    SCOPE.scope(merged, future).await
}

/// The metadata of the current task's open scopes, merged; `None` outside
/// any scope (or outside a task).
pub(crate) fn current() -> Option<Metadata> {
    SCOPE.try_with(Clone::clone).ok()
}
