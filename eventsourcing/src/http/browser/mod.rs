//! The event browser: a small read-only web page over an event store,
//! served with the notification log by [`NotificationServer`].
//!
//! [`NotificationServer`]: super::NotificationServer

mod html;
mod read;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use uuid::Uuid;

use crate::application::Application;
use crate::error::{Error, Result};
use crate::store::EventStore;

/// How many rows a page shows unless [`Browser::page_size`] says otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The most rows a page may show.
const MAX_PAGE_SIZE: usize = 1000;

/// Headers of every page: HTML that loads nothing (no script runs, no
/// image, font or frame is fetched; its style is inline), sends no
/// referrer, and is never cached.
const PAGE_HEADERS: [(header::HeaderName, &str); 5] = [
    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
    (header::CACHE_CONTROL, "no-store"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
         base-uri 'none'; frame-ancestors 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// A read-only web page over an application's events, for people: the
/// notification log page by page, an aggregate's history with its events
/// decoded (when the store's mapper has the key) and the state of its
/// hash chain, and a search by aggregate id. Served by
/// [`NotificationServer::browser`](super::NotificationServer::browser),
/// beside the log's JSON routes and behind the same token.
///
/// Routes (HTML; every refusal is a page saying why):
///
/// - `GET /?after=N`: the notifications after id `N`, a page of them
///   (without `after`: the newest page), with links to older and newer
///   pages. Each row shows its id, aggregate (a link to its history),
///   version, topic, size and whether it is encrypted or compressed.
/// - `GET /aggregates/{id}?after=V`: the aggregate's events after version
///   `V`, a page of them, each with its time, hash and fields; and above
///   them the whole chain's status, checked as
///   [`EventStore::verify`] checks it: verified with its head, or the first
///   broken version and why. `404` when the aggregate has no event, `400`
///   when `id` is not a UUID.
/// - `GET /search?id=`: a `303` redirect to the aggregate's history; `400`
///   for an id that is not a UUID, `404` for one without events.
///
/// Without a key, encrypted records show as "encrypted": their topic,
/// version and size, never their bytes; the chain is then checked only as
/// far as records are plaintext. Every value from the store or the
/// request is HTML-escaped, and pages run no script
/// (`Content-Security-Policy: default-src 'none'`).
///
/// ```no_run
/// use eventsourcing::Application;
/// use eventsourcing::http::{Browser, NotificationServer};
///
/// let app = Application::from_env()?; // decodes with CIPHER_KEY, if set
/// let server = NotificationServer::new(&app)
///     .browser(Browser::new(&app))
///     .bind("127.0.0.1:8080")?;
/// println!("browse http://{}/", server.local_addr());
/// # Ok::<(), eventsourcing::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Browser {
    store: EventStore,
    name: String,
    page_size: usize,
}

impl Browser {
    /// Browses `app`'s events, decoding with its key if it has one; the
    /// pages are titled with its name.
    #[must_use]
    pub fn new(app: &Application) -> Browser {
        Browser::for_store(app.event_store().clone()).name(app.name())
    }

    /// Browses the events of `store` (its recorder, decoded by its
    /// mapper): for a store opened without an application.
    #[must_use]
    pub fn for_store(store: EventStore) -> Browser {
        Browser {
            store,
            name: "events".to_owned(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// The name the pages carry in their title and header.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Browser {
        self.name = name.into();
        self
    }

    /// How many rows a page of the log or of a history shows (1 to 1,000;
    /// [`DEFAULT_PAGE_SIZE`] unless set).
    #[must_use]
    pub fn page_size(mut self, size: usize) -> Browser {
        self.page_size = size.clamp(1, MAX_PAGE_SIZE);
        self
    }

    /// The store it reads.
    pub(crate) fn store(&self) -> &EventStore {
        &self.store
    }

    /// The browser's routes with their state, before authentication.
    pub(crate) fn router(&self) -> Router {
        let state = BrowserState {
            store: self.store.clone(),
            name: Arc::from(self.name.as_str()),
            page_size: self.page_size,
        };
        Router::new()
            .route("/", get(log))
            .route("/aggregates/{id}", get(aggregate))
            .route("/search", get(search))
            .with_state(state)
    }
}

/// What every page handler reads.
#[derive(Clone, Debug)]
struct BrowserState {
    store: EventStore,
    name: Arc<str>,
    page_size: usize,
}

impl BrowserState {
    /// A page saying why a request was refused.
    fn refusal(&self, status: StatusCode, message: &str, searched: &str) -> Response {
        let title = status.canonical_reason().unwrap_or("Error");
        page_response(status, view::message(&self.name, title, message, searched))
    }

    /// The page for a failed read: `503` when the database could not be
    /// read (worth trying again), `500` otherwise; the details stay in the
    /// server.
    fn failure(&self, error: &Error) -> Response {
        match error {
            Error::Database(_) => self.refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "The store could not be read. Try again.",
                "",
            ),
            _ => self.refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The store could not be read.",
                "",
            ),
        }
    }

    /// Runs `read` on the store, on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&EventStore) -> Result<T> + Send + 'static,
    ) -> Result<T, Response> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || read(&store)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.failure(&error)),
            Err(_) => Err(self.refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The store could not be read.",
                "",
            )),
        }
    }
}

/// `body` as an HTML page with `status`.
fn page_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    for (name, value) in PAGE_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The one parameter a page takes, `name`, from the query's `pairs`: its
/// last value, if given. Any other parameter is refused, naming it.
fn only_param<'a>(
    pairs: &'a [(String, String)],
    name: &str,
) -> std::result::Result<Option<&'a str>, String> {
    let mut value = None;
    for (key, given) in pairs {
        if key != name {
            return Err(format!(
                "Unknown parameter `{key}`: this page takes only `{name}`."
            ));
        }
        value = Some(given.as_str());
    }
    Ok(value)
}

/// The `after` parameter: a number of at most 2^63 - 1.
fn parse_after(pairs: &[(String, String)]) -> std::result::Result<Option<u64>, String> {
    match only_param(pairs, "after")? {
        None => Ok(None),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|after| i64::try_from(*after).is_ok())
            .map(Some)
            .ok_or_else(|| format!("`after` must be a whole number from 0, not `{text}`.")),
    }
}

/// `GET /?after=`.
async fn log(
    State(state): State<BrowserState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let after = match query
        .map_err(|r| r.body_text())
        .and_then(|Query(pairs)| parse_after(&pairs))
    {
        Ok(after) => after,
        Err(reason) => return state.refusal(StatusCode::BAD_REQUEST, &reason, ""),
    };
    let size = state.page_size;
    let read = state
        .read(move |store| {
            let after = match after {
                Some(after) => after,
                None => store.recorder().max_notification_id()?.saturating_sub(
                    // A page size is at most MAX_PAGE_SIZE.
                    u64::try_from(size).unwrap_or(u64::MAX),
                ),
            };
            read::log_page(store, after, size).map(|page| (after, page))
        })
        .await;
    match read {
        Ok((after, page)) => page_response(
            StatusCode::OK,
            view::log(&state.name, after, state.page_size, &page),
        ),
        Err(response) => response,
    }
}

/// `GET /aggregates/{id}?after=`.
async fn aggregate(
    State(state): State<BrowserState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let text = match id {
        Ok(Path(text)) => text,
        Err(rejection) => {
            return state.refusal(StatusCode::BAD_REQUEST, &rejection.body_text(), "");
        }
    };
    let Some(id) = parse_id(&text) else {
        return state.refusal(StatusCode::BAD_REQUEST, &not_an_id(&text), &text);
    };
    let after = match query
        .map_err(|r| r.body_text())
        .and_then(|Query(pairs)| parse_after(&pairs))
    {
        Ok(after) => after.unwrap_or(0),
        Err(reason) => return state.refusal(StatusCode::BAD_REQUEST, &reason, &text),
    };
    let size = state.page_size;
    match state
        .read(move |store| read::history(store, id, after, size))
        .await
    {
        Ok(Some(history)) => page_response(
            StatusCode::OK,
            view::history(&state.name, id, after, state.page_size, &history),
        ),
        Ok(None) => state.refusal(StatusCode::NOT_FOUND, &no_events(id), &text),
        Err(response) => response,
    }
}

/// `GET /search?id=`.
async fn search(
    State(state): State<BrowserState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let pairs = match query {
        Ok(Query(pairs)) => pairs,
        Err(rejection) => {
            return state.refusal(StatusCode::BAD_REQUEST, &rejection.body_text(), "");
        }
    };
    let text = match only_param(&pairs, "id") {
        Ok(text) => text.unwrap_or("").trim().to_owned(),
        Err(reason) => return state.refusal(StatusCode::BAD_REQUEST, &reason, ""),
    };
    if text.is_empty() {
        return state.refusal(
            StatusCode::BAD_REQUEST,
            "Enter an aggregate id (a UUID) to find its history.",
            "",
        );
    }
    let Some(id) = parse_id(&text) else {
        return state.refusal(StatusCode::BAD_REQUEST, &not_an_id(&text), &text);
    };
    match state.read(move |store| read::exists(store, id)).await {
        Ok(true) => {
            let location = format!("/aggregates/{}", id.hyphenated());
            match HeaderValue::from_str(&location) {
                Ok(location) => {
                    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
                }
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        Ok(false) => state.refusal(StatusCode::NOT_FOUND, &no_events(id), &text),
        Err(response) => response,
    }
}

/// An aggregate id in any of the forms a UUID is written in.
fn parse_id(text: &str) -> Option<Uuid> {
    Uuid::try_parse(text.trim()).ok()
}

fn not_an_id(text: &str) -> String {
    format!(
        "`{text}` is not an aggregate id: an id is a UUID, such as 67e55044-10b1-426f-9247-bb680e5fe0c8."
    )
}

fn no_events(id: Uuid) -> String {
    format!("Aggregate {id} has no events in this store.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn after_is_a_number_and_the_only_parameter() {
        assert_eq!(parse_after(&pairs(&[])), Ok(None));
        assert_eq!(parse_after(&pairs(&[("after", "7")])), Ok(Some(7)));
        assert!(parse_after(&pairs(&[("after", "-1")])).is_err());
        assert!(parse_after(&pairs(&[("after", "x")])).is_err());
        assert!(parse_after(&pairs(&[("after", "9223372036854775808")])).is_err());
        assert!(parse_after(&pairs(&[("limit", "7")])).is_err());
    }
}
