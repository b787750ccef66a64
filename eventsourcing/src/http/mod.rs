//! The notification log over HTTP: a server that serves an application's
//! log as stored (feature `http`), and a reader that followers follow as
//! they follow a local log (feature `http-client`).
//!
//! - [`NotificationServer`] (`http`): axum on tokio; sections with `ETag`
//!   and long caching once full, pages by `?after=&limit=&topics=`,
//!   bearer-token authentication. It serves the stored bytes (base64):
//!   ciphertext stays ciphertext, so the server holds no key.
//! - [`Browser`] (`http`): a read-only web page for people, served by the
//!   same server: the log paged, an aggregate's history decoded (when the
//!   store's mapper has the key) with the state of its hash chain, and a
//!   search by aggregate id.
//! - [`RemoteRecorder`] (`http-client`): a blocking client with timeouts,
//!   retries and backoff, a read-only [`Recorder`](crate::recorder::Recorder)
//!   for [`FollowerBuilder::follow_remote`](crate::follower::FollowerBuilder::follow_remote)
//!   or [`RemoteRecorder::application`]. The follower decrypts and checks
//!   each record with its own key, and keeps its position in its own
//!   database.
//!
//! With the feature `tracing`, each request is an `http_request` span at
//! `DEBUG` (method, path, status, `elapsed_us`).
//!
//! An application that wants neither compiles neither: both features are
//! off by default.

#[cfg(feature = "http")]
mod auth;
#[cfg(feature = "http")]
mod browser;
#[cfg(feature = "http-client")]
mod client;
#[cfg(feature = "http")]
mod query;
#[cfg(feature = "http")]
mod server;
#[cfg(all(feature = "http", feature = "tracing"))]
mod traced;
mod wire;

#[cfg(feature = "http")]
pub use self::browser::{Browser, DEFAULT_PAGE_SIZE};
#[cfg(feature = "http-client")]
pub use self::client::RemoteRecorder;
#[cfg(feature = "http")]
pub use self::server::{DEFAULT_MAX_LIMIT, NotificationServer, RunningServer};
