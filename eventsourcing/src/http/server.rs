//! The notification log server: the routes, their handlers, and a server
//! that runs on a tokio runtime of its own until it is stopped.

use std::future::Future;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::thread::JoinHandle;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::auth::{Token, require_token};
use super::browser::Browser;
use super::query::parse_page_query;
use super::wire::{WireError, WireNotification, WirePage, WireSection};
use crate::application::Application;
use crate::error::{Error, Result};
use crate::notification::NotificationLog;
use crate::store::EventStore;

/// How many notifications one page request may ask for unless
/// [`NotificationServer::max_limit`] says otherwise.
pub const DEFAULT_MAX_LIMIT: usize = 1000;

/// `Cache-Control` of a full section: it never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The same behind a token: only the client's own cache may keep it.
const IMMUTABLE_PRIVATE: &str = "private, max-age=31536000, immutable";
/// `Cache-Control` of what still grows: the open section and pages.
const NOT_CACHED: &str = "no-store";

/// Serves an application's notification log over HTTP, as stored.
///
/// Routes (JSON; every refusal is `{"error": "<reason>"}`):
///
/// - `GET /notifications/{first},{last}`: a section, shaped as
///   [`NotificationLog::section`] shapes it: `{"id", "items",
///   "previous_id", "next_id"}`. A full section (one with a `next_id`)
///   never changes: it carries an `ETag`, a year-long `Cache-Control`,
///   and `If-None-Match` with its tag gets `304 Not Modified`. The open
///   section is `no-store`.
/// - `GET /notifications?after=&limit=&topics=`: at most `limit` rows
///   after notification `after` (default 0), only of the `topics` named
///   (separated by commas) if any, with the greatest notification id when
///   they were read: `{"head", "items"}`. `limit` defaults to the section
///   size and may not exceed [`max_limit`](Self::max_limit).
///
/// Each item is a row of `stored_events` (FORMAT.md): `id`,
/// `originator_id`, `originator_version`, `topic` and `state`, the stored
/// record's bytes in standard base64. An encrypted application's records
/// stay ciphertext: the server holds no key, and whatever relays its
/// responses learns nothing of the events; a reader rebuilds the exact
/// stored row and checks its hash.
///
/// With a [`browser`](Self::browser), the server also serves the
/// [`Browser`]'s HTML pages (`/`, `/aggregates/{id}`, `/search`).
///
/// With a [`token`](Self::token), every route asks for `Authorization:
/// Bearer <token>` and refuses other requests with `401` and no data.
/// Malformed section ids, inverted ranges, bad limits and topics get
/// `400` with the reason. The recorder is read on tokio's blocking
/// threads, never on its workers.
///
/// ```no_run
/// use eventsourcing::Application;
/// use eventsourcing::http::NotificationServer;
///
/// let app = Application::builder().name("orders").build()?;
/// let server = NotificationServer::new(&app)
///     .token("a long random secret")
///     .bind("127.0.0.1:8080")?;
/// println!("serving on http://{}", server.local_addr());
/// server.stop()?; // lets requests in flight finish
/// # Ok::<(), eventsourcing::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct NotificationServer {
    log: NotificationLog,
    token: Option<Token>,
    max_limit: usize,
    browser: Option<Browser>,
}

/// What every handler reads.
#[derive(Clone, Debug)]
struct LogState {
    log: NotificationLog,
    max_limit: usize,
    /// Whether responses are for the token holder only (not for shared
    /// caches).
    private: bool,
}

impl NotificationServer {
    /// Serves `app`'s notification log.
    #[must_use]
    pub fn new(app: &Application) -> NotificationServer {
        NotificationServer::for_log(app.notification_log())
    }

    /// Serves `log`.
    #[must_use]
    pub fn for_log(log: NotificationLog) -> NotificationServer {
        NotificationServer {
            log,
            token: None,
            max_limit: DEFAULT_MAX_LIMIT,
            browser: None,
        }
    }

    /// Asks every request for `Authorization: Bearer <token>`; others get
    /// `401` and no data.
    #[must_use]
    pub fn token(mut self, token: impl AsRef<str>) -> NotificationServer {
        self.token = Some(Token::new(token.as_ref()));
        self
    }

    /// The greatest `limit` a page request may ask for (at least 1;
    /// [`DEFAULT_MAX_LIMIT`] unless set); more is refused with `400`.
    #[must_use]
    pub fn max_limit(mut self, limit: usize) -> NotificationServer {
        self.max_limit = limit.max(1);
        self
    }

    /// Also serves `browser`'s web pages (`/`, `/aggregates/{id}`,
    /// `/search`) beside the log's routes, behind the same
    /// [`token`](Self::token). The log's routes still serve records as
    /// stored; only the pages decode, with the browser's store's mapper.
    #[must_use]
    pub fn browser(mut self, browser: Browser) -> NotificationServer {
        self.browser = Some(browser);
        self
    }

    /// The routes, with authentication, as an axum [`Router`]: to serve
    /// them on a runtime of your own, or to merge with other routes.
    pub fn router(&self) -> Router {
        let state = LogState {
            log: self.log.clone(),
            max_limit: self.max_limit,
            private: self.token.is_some(),
        };
        let mut router = routes().with_state(state);
        if let Some(browser) = &self.browser {
            router = router.merge(browser.router());
        }
        let router = router.route_layer(middleware::from_fn_with_state(
            self.token.clone(),
            require_token,
        ));
        // Outermost: refusals and unknown paths have their span too.
        #[cfg(feature = "tracing")]
        let router = router.layer(middleware::from_fn(super::traced::trace_request));
        router
    }

    /// Serves on `listener` until `shutdown` completes, then lets the
    /// requests in flight finish; for an application that runs tokio
    /// itself.
    ///
    /// Keep a clone of the application (or of its log) outside the runtime
    /// until the runtime is shut down: the PostgreSQL recorder's
    /// synchronous client must not close its connections on a tokio
    /// thread, which the server's last reference to it would do.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Server)
    }

    /// Binds `addr` and serves there on a runtime of its own (see
    /// [`start`](Self::start)).
    pub fn bind(self, addr: impl ToSocketAddrs) -> Result<RunningServer> {
        let listener = TcpListener::bind(addr).map_err(Error::Server)?;
        self.start(listener)
    }

    /// Serves on `listener` on a tokio runtime of its own (two worker
    /// threads, and blocking threads for the recorder), on a thread of its
    /// own, until [`RunningServer::stop`].
    pub fn start(self, listener: TcpListener) -> Result<RunningServer> {
        listener.set_nonblocking(true).map_err(Error::Server)?;
        let addr = listener.local_addr().map_err(Error::Server)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(32)
            .thread_name("es-http")
            .enable_all()
            .build()
            .map_err(Error::Server)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let keep = self.log.clone();
        let keep_store = self.browser.as_ref().map(|b| b.store().clone());
        let thread = std::thread::Builder::new()
            .name("es-http-server".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).map_err(Error::Server)?;
                    self.serve(listener, async {
                        // A dropped sender stops the server as well.
                        let _ = stopped.await;
                    })
                    .await
                })
            })
            .map_err(Error::Server)?;
        Ok(RunningServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            _log: keep,
            _store: keep_store,
        })
    }
}

/// Every route of the log, before state and authentication: new routes
/// are added here and get both. The browser's routes
/// ([`NotificationServer::browser`]) are merged in before authentication
/// too.
fn routes() -> Router<LogState> {
    Router::new()
        .route("/notifications", get(page))
        .route("/notifications/{section}", get(section))
}

/// A server started by [`NotificationServer::start`] or
/// [`bind`](NotificationServer::bind). Dropping it stops it too, as
/// [`stop`](Self::stop) does.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
    /// The log, released only once the runtime is gone: a recorder's last
    /// reference must not be dropped on a tokio thread (the synchronous
    /// PostgreSQL client closes its connections with a runtime of its
    /// own).
    _log: NotificationLog,
    /// The browser's store, kept for the same reason.
    _store: Option<EventStore>,
}

impl RunningServer {
    /// Where it listens.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<address>`, for a [`RemoteRecorder`](super::RemoteRecorder)
    /// on the same network.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, waits for the requests in flight, and
    /// returns how serving ended.
    pub fn stop(mut self) -> Result<()> {
        self.stop.take();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Server(std::io::Error::other(
                "the server's thread panicked",
            ))),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A refusal: `status` with `{"error": reason}`.
pub(crate) fn refusal(status: StatusCode, reason: &str) -> Response {
    let body = WireError {
        error: reason.to_owned(),
    };
    json_response(status, NOT_CACHED, &body)
}

/// `body` as JSON with `status` and `Cache-Control: cache`.
fn json_response(
    status: StatusCode,
    cache: &'static str,
    body: &impl serde::Serialize,
) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, cache),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The response to a failed read: `400` for what the request got wrong,
/// `503` when the database could not be read (a client may try again),
/// `500` otherwise. Only the request's own mistakes are explained: the
/// others' details stay in the server.
fn failure(error: &Error) -> Response {
    match error {
        Error::InvalidArgument { .. } => refusal(StatusCode::BAD_REQUEST, &error.to_string()),
        Error::Database(_) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the notification log could not be read; try again",
        ),
        _ => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the notification log could not be read",
        ),
    }
}

/// Runs `read` on a blocking thread.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(failure(&error)),
        Err(_) => Err(refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the notification log could not be read",
        )),
    }
}

/// `GET /notifications/{first},{last}`.
async fn section(
    State(state): State<LogState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let id = match id {
        Ok(Path(id)) => id,
        Err(rejection) => return refusal(StatusCode::BAD_REQUEST, &rejection.body_text()),
    };
    let log = state.log.clone();
    let section = match blocking(move || log.section(&id)).await {
        Ok(section) => section,
        Err(response) => return response,
    };
    let wire = WireSection::from_section(&section);
    if section.next_id.is_none() {
        return json_response(StatusCode::OK, NOT_CACHED, &wire);
    }
    let Ok(body) = serde_json::to_vec(&wire) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let tag = format!("\"{:x}\"", Sha256::digest(&body));
    let Ok(etag) = HeaderValue::from_str(&tag) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let cache = if state.private {
        IMMUTABLE_PRIVATE
    } else {
        IMMUTABLE
    };
    let cached = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| matches_tag(value, &tag));
    if cached {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            ],
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [
            (header::ETAG, etag),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        Bytes::from(body),
    )
        .into_response()
}

/// Whether an `If-None-Match` value names `tag` (weakly, as the header is
/// compared), or is `*`.
fn matches_tag(value: &str, tag: &str) -> bool {
    value.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
    })
}

/// `GET /notifications?after=&limit=&topics=`.
async fn page(
    State(state): State<LogState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let pairs = match query {
        Ok(Query(pairs)) => pairs,
        Err(rejection) => return refusal(StatusCode::BAD_REQUEST, &rejection.body_text()),
    };
    let query = match parse_page_query(&pairs, state.log.section_size(), state.max_limit) {
        Ok(query) => query,
        Err(reason) => return refusal(StatusCode::BAD_REQUEST, &reason),
    };
    let log = state.log.clone();
    let read = blocking(move || {
        let topics: Vec<&str> = query.topics.iter().map(String::as_str).collect();
        log.page(query.after, query.limit, &topics)
    })
    .await;
    match read {
        Ok((head, items)) => json_response(
            StatusCode::OK,
            NOT_CACHED,
            &WirePage {
                head,
                items: items
                    .iter()
                    .map(WireNotification::from_notification)
                    .collect(),
            },
        ),
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::matches_tag;

    #[test]
    fn if_none_match_compares_weakly() {
        assert!(matches_tag("\"a\"", "\"a\""));
        assert!(matches_tag("W/\"a\"", "\"a\""));
        assert!(matches_tag("\"b\", \"a\"", "\"a\""));
        assert!(matches_tag("*", "\"a\""));
        assert!(!matches_tag("\"b\"", "\"a\""));
    }
}
