//! The remote reader: a read-only [`Recorder`] whose notifications come
//! from a [`NotificationServer`](super::NotificationServer) over HTTP, so
//! that a follower follows a remote log as it follows a local one.

use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::wire::{WireError, WirePage, WireSection};
use crate::application::Application;
use crate::error::{Error, Result};
use crate::mapper::{Mapper, StoredEvent, StoredRow};
use crate::notification::Section;
use crate::recorder::{
    Batch, EventQuery, Notification, Parked, Position, Recorder, Registration, TrackingKey,
};

/// The greatest notification id any backend can hold (SQL `BIGINT`).
const MAX_ID: u64 = i64::MAX.unsigned_abs();
/// The most a response body may hold.
const MAX_BODY: u64 = 256 * 1024 * 1024;

/// A notification log read over HTTP: a read-only [`Recorder`] with the
/// rows a [`NotificationServer`](super::NotificationServer) serves, for a
/// follower to follow.
///
/// Each request has a timeout; a request that fails on the way (no
/// connection, a timeout, a cut response) or that the server answers
/// with a `5xx` or `429` is tried again after a pause that doubles each
/// time, up to [`retries`](Self::retries) attempts. A refusal (`400`,
/// `401`, ...) is not tried again: it is [`Error::Remote`] with the
/// server's reason, as is a request that failed every attempt.
///
/// The rows arrive as stored: the follower decrypts them with its own
/// key, and checks their hashes, as it does a local log's. Followed, the
/// follower keeps its position in its own database, so a server that
/// restarts costs a retry, never a skipped or repeated event.
///
/// Everything but reading notifications (writing, loading an aggregate,
/// tracking, snapshots) is [`Error::InvalidArgument`]: the log is another
/// application's.
///
/// ```no_run
/// use eventsourcing::follower::{Envelope, Follower, Processing};
/// use eventsourcing::http::RemoteRecorder;
/// use eventsourcing::prelude::*;
/// # #[aggregate]
/// # #[derive(Debug, Default)]
/// # pub struct Order { placed: bool }
/// # #[aggregate]
/// # impl Order {
/// #     #[created(Placed)]
/// #     pub fn place(&mut self) { self.placed = true; }
/// # }
/// # #[aggregate]
/// # #[derive(Debug, Default)]
/// # pub struct Receipt { order: Uuid }
/// # fn receipt_id(order: Uuid) -> Uuid { Uuid::new_v5(&Uuid::NAMESPACE_OID, order.as_bytes()) }
/// # #[aggregate]
/// # impl Receipt {
/// #     #[created(Issued, id = receipt_id(order))]
/// #     pub fn issue(&mut self, order: Uuid) { self.order = order; }
/// # }
///
/// struct Receipts;
///
/// #[policy]
/// impl Receipts {
///     #[on(OrderEvent::Placed)]
///     fn placed(&self, cx: &mut Processing, envelope: &Envelope) -> Result<()> {
///         cx.collect(Receipt::issue(envelope.originator_id()))?;
///         Ok(())
///     }
/// }
///
/// // The process application decrypts with its own application's key.
/// let receipts = Application::builder().cipher_key("...").build()?;
/// let remote = RemoteRecorder::new("http://orders.internal:8080")?.token("secret");
/// let mut follower = Follower::process(Receipts, &receipts)
///     .follow_remote("Orders", remote)
///     .start()?;
/// follower.run_until_caught_up()?;
/// # Ok::<(), eventsourcing::Error>(())
/// ```
#[derive(Clone)]
pub struct RemoteRecorder {
    base: Arc<str>,
    agent: ureq::Agent,
    token: Option<Arc<str>>,
    timeout: Duration,
    attempts: u32,
    first_pause: Duration,
    max_pause: Duration,
    page_limit: usize,
}

impl fmt::Debug for RemoteRecorder {
    // The token is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteRecorder")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .field("first_pause", &self.first_pause)
            .field("max_pause", &self.max_pause)
            .field("page_limit", &self.page_limit)
            .finish_non_exhaustive()
    }
}

/// Why one attempt failed.
enum Failure {
    /// Worth another attempt.
    Transient(String),
    /// The server refused, or answered what cannot be read.
    Final(String),
}

impl RemoteRecorder {
    /// A reader of the server at `url` (`http://host:port`, optionally with
    /// a path prefix), with a 10-second timeout per request, 8 attempts
    /// pausing from 50 ms up to 2 s, and pages of at most 1,000 rows
    /// ([`DEFAULT_MAX_LIMIT`](super::DEFAULT_MAX_LIMIT), what a server allows
    /// unless told otherwise).
    ///
    /// [`Error::InvalidArgument`] for a URL that is not `http://`: this
    /// client speaks plain HTTP; reach a server across an untrusted
    /// network through a TLS tunnel or proxy.
    pub fn new(url: impl Into<String>) -> Result<RemoteRecorder> {
        let url = url.into();
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| Error::InvalidArgument {
                name: "url",
                reason: format!("`{url}` is not an `http://` URL"),
            })?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(Error::InvalidArgument {
                name: "url",
                reason: format!("`{url}` names no host"),
            });
        }
        let mut remote = RemoteRecorder {
            base: Arc::from(url.trim_end_matches('/')),
            agent: ureq::Agent::new_with_defaults(),
            token: None,
            timeout: Duration::from_secs(10),
            attempts: 8,
            first_pause: Duration::from_millis(50),
            max_pause: Duration::from_secs(2),
            page_limit: 1000,
        };
        remote.agent = remote.make_agent();
        Ok(remote)
    }

    fn make_agent(&self) -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            .build()
            .into()
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> RemoteRecorder {
        self.token = Some(Arc::from(token.into()));
        self
    }

    /// How long one request may take, from connecting to the end of its
    /// response (at least 1 ms).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> RemoteRecorder {
        self.timeout = timeout.max(Duration::from_millis(1));
        self.agent = self.make_agent();
        self
    }

    /// Tries a failing request up to `attempts` times (at least once),
    /// pausing `first_pause` after the first failure, then twice as long
    /// each time, up to `max_pause`.
    #[must_use]
    pub fn retries(
        mut self,
        attempts: u32,
        first_pause: Duration,
        max_pause: Duration,
    ) -> RemoteRecorder {
        self.attempts = attempts.max(1);
        self.first_pause = first_pause;
        self.max_pause = max_pause.max(first_pause);
        self
    }

    /// Asks for at most this many rows per request (at least 1): no more
    /// than the server's [`max_limit`](super::NotificationServer::max_limit).
    /// A follower that wants more rows gets them in several requests.
    #[must_use]
    pub fn page_limit(mut self, limit: usize) -> RemoteRecorder {
        self.page_limit = limit.max(1);
        self
    }

    /// The server's URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The section `"first,last"` of the remote log, as
    /// [`NotificationLog::section`](crate::NotificationLog::section) shapes
    /// it.
    pub fn section(&self, section_id: &str) -> Result<Section> {
        let path = format!("/notifications/{}", escape(section_id));
        self.get::<WireSection>(&path, &[])?.into_section()
    }

    /// An upstream application on this log, named `name`, decoding with
    /// `mapper` (its cipher is the follower's key): what a follower
    /// follows ([`FollowerBuilder::follow`](crate::follower::FollowerBuilder::follow)).
    /// It reads notifications only.
    #[must_use]
    pub fn application(self, name: &str, mapper: Mapper) -> Application {
        Application::new(
            name.to_owned(),
            crate::store::EventStore::new(mapper, Arc::new(self)),
            crate::application::DEFAULT_SECTION_SIZE,
            crate::snapshot::SnapshotPolicy::default(),
            crate::domain::Metadata::default(),
        )
    }

    /// One page of at most `limit` rows (no more than a request's worth)
    /// after `after`.
    fn page(&self, after: u64, limit: usize, topics: &[&str]) -> Result<(u64, Vec<Notification>)> {
        if limit == 0 {
            return Ok((self.page(MAX_ID, 1, &[])?.0, Vec::new()));
        }
        let after = after.to_string();
        let limit = limit.min(self.page_limit).to_string();
        let joined = topics.join(",");
        let mut query = vec![("after", after.as_str()), ("limit", limit.as_str())];
        if !topics.is_empty() {
            query.push(("topics", joined.as_str()));
        }
        let page: WirePage = self.get("/notifications", &query)?;
        let items = page
            .items
            .into_iter()
            .map(super::wire::WireNotification::into_notification)
            .collect::<Result<Vec<_>>>()?;
        Ok((page.head, items))
    }

    /// `GET path?query`, tried again as configured.
    fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let mut pause = self.first_pause;
        let mut attempt = 1;
        loop {
            let reason = match self.get_once(&url, query) {
                Ok(value) => return Ok(value),
                Err(Failure::Final(reason)) => reason,
                Err(Failure::Transient(_)) if attempt < self.attempts => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(self.max_pause);
                    attempt += 1;
                    continue;
                }
                Err(Failure::Transient(reason)) => {
                    format!("{reason} (after {attempt} attempts)")
                }
            };
            return Err(Error::Remote { url, reason });
        }
    }

    fn get_once<T: DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, &str)],
    ) -> Result<T, Failure> {
        let mut request = self.agent.get(url).query_pairs(query.iter().copied());
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request
            .call()
            .map_err(|e| Failure::Transient(e.to_string()))?;
        let status = response.status();
        let body = response.body_mut().with_config().limit(MAX_BODY);
        if status.is_success() {
            return body.read_json::<T>().map_err(|e| match e {
                ureq::Error::Json(e) => Failure::Final(format!("unreadable response: {e}")),
                other => Failure::Transient(other.to_string()),
            });
        }
        let reason = body
            .read_json::<WireError>()
            .map_or_else(|_| String::new(), |refusal| format!(": {}", refusal.error));
        let reason = format!("the server answered {status}{reason}");
        if status.is_server_error() || status.as_u16() == 429 {
            Err(Failure::Transient(reason))
        } else {
            Err(Failure::Final(reason))
        }
    }

    fn read_only(&self, what: &str) -> Error {
        Error::InvalidArgument {
            name: "recorder",
            reason: format!(
                "the notification log at {} is read over HTTP: it cannot {what}",
                self.base
            ),
        }
    }
}

/// `text` as one path segment: every byte but ASCII letters, digits and
/// `,` percent-encoded (a section id is digits and a comma; anything else
/// reaches the server as written, to be refused there).
fn escape(text: &str) -> String {
    use std::fmt::Write as _;
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b',' {
            escaped.push(char::from(byte));
        } else {
            let _ = write!(escaped, "%{byte:02X}");
        }
    }
    escaped
}

impl Recorder for RemoteRecorder {
    fn insert(&self, _batch: &Batch<'_>) -> Result<Vec<u64>> {
        Err(self.read_only("record events"))
    }

    fn select_events(
        &self,
        _query: &EventQuery,
        _each: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        Err(self.read_only("load an aggregate"))
    }

    fn select_notifications(
        &self,
        start: u64,
        limit: usize,
        topics: &[&str],
    ) -> Result<Vec<Notification>> {
        Ok(self.select_page(start.saturating_sub(1), limit, topics)?.1)
    }

    fn max_notification_id(&self) -> Result<u64> {
        // A page after the greatest possible id holds no rows, only the head.
        Ok(self.page(MAX_ID, 1, &[])?.0)
    }

    /// As many requests as `limit` needs: every row up to `limit` that the
    /// log holds after `after` is returned (a short list means the log
    /// holds no more), as a local recorder does.
    fn select_page(
        &self,
        after: u64,
        limit: usize,
        topics: &[&str],
    ) -> Result<(u64, Vec<Notification>)> {
        let (head, mut rows) = self.page(after, limit, topics)?;
        let asked = limit.min(self.page_limit);
        let mut short = rows.len() < asked;
        while !short && rows.len() < limit && rows.last().is_some_and(|row| row.id < head) {
            let from = rows.last().map_or(after, |row| row.id);
            let (_, more) = self.page(from, limit - rows.len(), topics)?;
            short = more.len() < (limit - rows.len()).min(self.page_limit);
            rows.extend(more);
        }
        Ok((head, rows))
    }

    fn select_notification_of(
        &self,
        _originator_id: Uuid,
        _originator_version: u64,
    ) -> Result<Option<Notification>> {
        Err(self.read_only("look an event up by aggregate"))
    }

    fn insert_snapshot(&self, _snapshot: &StoredEvent) -> Result<bool> {
        Err(self.read_only("record snapshots"))
    }

    fn select_snapshot(
        &self,
        _originator_id: Uuid,
        _to_version: Option<u64>,
    ) -> Result<Option<StoredEvent>> {
        Err(self.read_only("read snapshots"))
    }

    fn select_tracking(&self, _key: &TrackingKey) -> Result<Option<Position>> {
        Err(self.read_only("keep a follower's position"))
    }

    fn raise_epoch(&self, _key: &TrackingKey) -> Result<Position> {
        Err(self.read_only("keep a follower's position"))
    }

    fn register_follower(&self, _registration: &Registration) -> Result<Registration> {
        Err(self.read_only("register followers"))
    }

    fn update_follower(&self, _registration: &Registration) -> Result<()> {
        Err(self.read_only("register followers"))
    }

    fn select_parked(&self, _follower: &str) -> Result<Vec<Parked>> {
        Err(self.read_only("park notifications"))
    }
}
