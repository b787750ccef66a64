//! Event metadata (FORMAT.md, "Event metadata"): facts about an event
//! rather than the domain fact itself, such as who acted and the request
//! or upstream notification that caused it. Stored as the reserved member
//! `"$meta"` of the event's data, so the event's hash covers it.
//!
//! Metadata is stamped when events are saved, from three places merged in
//! this order (a later one wins a key): the application's
//! ([`ApplicationBuilder::metadata`](crate::ApplicationBuilder::metadata)),
//! the thread's ([`with_metadata`]), and the save's own
//! ([`Application::save_with`](crate::Application::save_with)). Through the
//! async facade (feature `tokio`), the task's scope
//! (`with_metadata_async`) is opened as the thread's on the thread that
//! saves.

use std::cell::RefCell;

use serde_json::Value;
use uuid::Uuid;

use crate::domain::{JsonObject, RecordedEvent};
use crate::error::{Error, Result};

/// The reserved member of an event's data that holds its metadata.
pub(crate) const META_KEY: &str = "$meta";

/// The bytes that open data whose first member is the metadata.
const META_PREFIX: &[u8] = b"{\"$meta\":";

/// Metadata of an event: a JSON object, with accessors for the keys
/// FORMAT.md names (`user`, `correlation_id`, `causation_id`, `causation`).
/// A reader ignores keys it does not know.
///
/// ```
/// use eventsourcing::{Metadata, Uuid};
///
/// let request = Uuid::new_v4();
/// let metadata = Metadata::new()
///     .with_user("alice")
///     .with_correlation_id(request)
///     .with("tenant", "acme");
/// assert_eq!(metadata.user(), Some("alice"));
/// assert_eq!(metadata.correlation_id(), Some(request));
/// assert_eq!(metadata.get("tenant").and_then(|v| v.as_str()), Some("acme"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata(JsonObject);

impl Metadata {
    /// No metadata.
    #[must_use]
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Metadata holding `object`'s members.
    #[must_use]
    pub fn from_object(object: JsonObject) -> Metadata {
        Metadata(object)
    }

    /// Sets `key` to `value`.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Metadata {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Sets who acted (`user`).
    #[must_use]
    pub fn with_user(self, user: impl Into<String>) -> Metadata {
        self.with("user", user.into())
    }

    /// Sets the id of the request or conversation the event belongs to
    /// (`correlation_id`).
    #[must_use]
    pub fn with_correlation_id(self, id: Uuid) -> Metadata {
        self.with("correlation_id", id.to_string())
    }

    /// Sets the id of the message that caused the event (`causation_id`).
    #[must_use]
    pub fn with_causation_id(self, id: Uuid) -> Metadata {
        self.with("causation_id", id.to_string())
    }

    /// Sets the upstream notification that caused the event (`causation`),
    /// as a process application records it.
    #[must_use]
    pub fn with_causation(self, upstream: impl Into<String>, notification_id: u64) -> Metadata {
        let mut causation = JsonObject::new();
        causation.insert("upstream".to_owned(), Value::String(upstream.into()));
        causation.insert("notification_id".to_owned(), Value::from(notification_id));
        self.with("causation", Value::Object(causation))
    }

    /// The value of `key`, if set.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Who acted, if recorded.
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        self.get("user").and_then(Value::as_str)
    }

    /// The correlation id, if recorded and a UUID.
    #[must_use]
    pub fn correlation_id(&self) -> Option<Uuid> {
        self.uuid("correlation_id")
    }

    /// The causation id, if recorded and a UUID.
    #[must_use]
    pub fn causation_id(&self) -> Option<Uuid> {
        self.uuid("causation_id")
    }

    /// The upstream application and notification id that caused the
    /// event, if recorded.
    #[must_use]
    pub fn causation(&self) -> Option<(&str, u64)> {
        let causation = self.get("causation")?.as_object()?;
        Some((
            causation.get("upstream")?.as_str()?,
            causation.get("notification_id")?.as_u64()?,
        ))
    }

    /// Whether there is no metadata.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The metadata as a JSON object.
    #[must_use]
    pub fn as_object(&self) -> &JsonObject {
        &self.0
    }

    /// Sets every key of `other` here (its values win).
    pub fn merge(&mut self, other: &Metadata) {
        for (key, value) in &other.0 {
            self.0.insert(key.clone(), value.clone());
        }
    }

    fn uuid(&self, key: &str) -> Option<Uuid> {
        Uuid::try_parse(self.get(key)?.as_str()?).ok()
    }
}

thread_local! {
    /// The metadata scopes open on this thread, outermost first.
    static SCOPES: RefCell<Vec<Metadata>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `metadata` stamped on every event this thread saves
/// meanwhile (nested scopes merge, the inner one winning a key). The scope
/// ends when `f` returns, or unwinds.
///
/// ```
/// # use eventsourcing::prelude::*;
/// # #[aggregate] #[derive(Default)] struct Cat {}
/// # #[aggregate] impl Cat { #[created(Born)] fn born(&mut self) {} }
/// use eventsourcing::{Metadata, with_metadata};
///
/// let app = Application::builder().build()?;
/// let mut cat = Cat::born();
/// with_metadata(Metadata::new().with_user("alice"), || app.save(&mut cat))?;
/// let events = app.event_store().recorded_events(cat.id())?;
/// assert_eq!(events[0].metadata()?.user(), Some("alice"));
/// # Ok::<(), eventsourcing::Error>(())
/// ```
pub fn with_metadata<R>(metadata: Metadata, f: impl FnOnce() -> R) -> R {
    struct Scope;
    impl Drop for Scope {
        fn drop(&mut self) {
            let _ = SCOPES.try_with(|scopes| scopes.borrow_mut().pop());
        }
    }
    SCOPES.with(|scopes| scopes.borrow_mut().push(metadata));
    let _scope = Scope;
    f()
}

/// The metadata of this thread's open scopes, merged.
pub(crate) fn scoped() -> Option<Metadata> {
    SCOPES
        .try_with(|scopes| {
            let scopes = scopes.borrow();
            if scopes.is_empty() {
                return None;
            }
            let mut merged = Metadata::new();
            for scope in scopes.iter() {
                merged.merge(scope);
            }
            Some(merged)
        })
        .ok()
        .flatten()
}

impl RecordedEvent {
    /// The event's metadata (empty when it has none). [`Error::Decode`]
    /// when the data's `"$meta"` member is not a JSON object.
    pub fn metadata(&self) -> Result<Metadata> {
        read(&self.data).map_err(|source| Error::Decode {
            topic: self.topic.to_string(),
            id: self.originator_id,
            version: self.originator_version,
            source,
        })
    }

    /// This event with `metadata` stamped into its data (merged over any it
    /// had), re-linked to `previous_hash` and hashed again.
    pub(crate) fn stamped(&self, metadata: &Metadata, previous_hash: crate::Hash) -> Result<Self> {
        let data = stamp(&self.data, metadata).map_err(|source| Error::Encode {
            topic: "event metadata",
            id: self.originator_id,
            source,
        })?;
        Ok(RecordedEvent::new(
            self.originator_id,
            self.originator_version,
            self.topic.clone(),
            self.timestamp,
            previous_hash,
            data,
        ))
    }
}

/// The metadata in an event's data: the first member when this library
/// wrote it (read without parsing the rest), else anywhere.
fn read(data: &[u8]) -> std::result::Result<Metadata, serde_json::Error> {
    if let Some(rest) = data.strip_prefix(META_PREFIX) {
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<JsonObject>();
        return match values.next() {
            Some(object) => object.map(Metadata),
            None => Ok(Metadata::new()),
        };
    }
    if !data.windows(META_KEY.len() + 2).any(|w| w == b"\"$meta\"") {
        return Ok(Metadata::new());
    }
    let mut object: JsonObject = serde_json::from_slice(data)?;
    match object.remove(META_KEY) {
        None => Ok(Metadata::new()),
        Some(Value::Object(meta)) => Ok(Metadata(meta)),
        Some(_) => Err(<serde_json::Error as serde::de::Error>::custom(
            "`$meta` is not a JSON object",
        )),
    }
}

/// `data` with `metadata` as its first member, merged over any metadata it
/// already had (from a save that failed and is tried again, say).
fn stamp(data: &[u8], metadata: &Metadata) -> std::result::Result<Vec<u8>, serde_json::Error> {
    let mut merged = read(data)?;
    if merged.is_empty() {
        return prepend(data, metadata);
    }
    merged.merge(metadata);
    let mut object: JsonObject = serde_json::from_slice(data)?;
    object.remove(META_KEY);
    prepend(&serde_json::to_vec(&object)?, &merged)
}

/// `data`, a JSON object without metadata, with `metadata` as its first
/// member.
fn prepend(data: &[u8], metadata: &Metadata) -> std::result::Result<Vec<u8>, serde_json::Error> {
    let Some(members) = data.strip_prefix(b"{") else {
        return Err(<serde_json::Error as serde::de::Error>::custom(
            "event data is not a JSON object",
        ));
    };
    let meta = serde_json::to_vec(&metadata.0)?;
    let mut out = Vec::with_capacity(data.len() + meta.len() + META_PREFIX.len() + 1);
    out.extend_from_slice(META_PREFIX);
    out.extend_from_slice(&meta);
    if members.first() != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(members);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamping_puts_the_metadata_first_and_reading_finds_it() {
        let meta = Metadata::new().with_user("ann");
        let stamped = stamp(br#"{"amount":5}"#, &meta).unwrap();
        assert_eq!(stamped, br#"{"$meta":{"user":"ann"},"amount":5}"#);
        assert_eq!(read(&stamped).unwrap(), meta);
        let empty = stamp(b"{}", &meta).unwrap();
        assert_eq!(empty, br#"{"$meta":{"user":"ann"}}"#);
        assert_eq!(read(&empty).unwrap(), meta);
        assert_eq!(read(br#"{"amount":5}"#).unwrap(), Metadata::new());
    }

    #[test]
    fn stamping_again_merges_and_keeps_one_member() {
        let first = stamp(
            br#"{"a":1}"#,
            &Metadata::new().with_user("ann").with("x", 1),
        )
        .unwrap();
        let second = stamp(&first, &Metadata::new().with_user("bob")).unwrap();
        let object: JsonObject = serde_json::from_slice(&second).unwrap();
        assert_eq!(object.len(), 2);
        let meta = read(&second).unwrap();
        assert_eq!(meta.user(), Some("bob"));
        assert_eq!(meta.get("x"), Some(&Value::from(1)));
    }

    #[test]
    fn metadata_written_elsewhere_in_the_object_is_read() {
        let meta = read(br#"{"a":1,"$meta":{"user":"cy"}}"#).unwrap();
        assert_eq!(meta.user(), Some("cy"));
        assert!(read(br#"{"a":1,"$meta":3}"#).is_err());
        assert!(stamp(b"[1]", &Metadata::new().with_user("x")).is_err());
    }

    #[test]
    fn scopes_nest_and_end() {
        assert_eq!(scoped(), None);
        with_metadata(Metadata::new().with_user("a").with("k", 1), || {
            with_metadata(Metadata::new().with_user("b"), || {
                let merged = scoped().unwrap();
                assert_eq!(merged.user(), Some("b"));
                assert_eq!(merged.get("k"), Some(&Value::from(1)));
            });
            assert_eq!(scoped().unwrap().user(), Some("a"));
        });
        assert_eq!(scoped(), None);
    }

    #[test]
    fn well_known_keys() {
        let id = Uuid::from_u128(7);
        let meta = Metadata::new()
            .with_causation_id(id)
            .with_causation("Orders", 12);
        assert_eq!(meta.causation_id(), Some(id));
        assert_eq!(meta.causation(), Some(("Orders", 12)));
        assert_eq!(meta.correlation_id(), None);
    }
}
