//! Keys: the application key ring (the current `CIPHER_KEY` and previous
//! keys still accepted), each aggregate's data key (FORMAT.md,
//! "Per-aggregate keys") with a bounded cache of unwrapped keys, how each
//! aggregate type and event is encrypted, and the rotation that re-wraps
//! every data key under the current application key.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use uuid::Uuid;

use crate::cipher::Cipher;
use crate::domain::{Aggregate, Event};
use crate::error::{Error, Result};
use crate::format::{FORGOTTEN_SUFFIX, now_micros, split_topic, versioned_topic};
use crate::recorder::{DataKeyRow, EventQuery, Recorder, Rewrap};

/// How the records of an aggregate type are encrypted, as declared with
/// `#[aggregate(...)]` on its struct.
///
/// Only matters when the application has a key (`CIPHER_KEY`); without
/// one, every record is stored in plaintext.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encryption {
    /// Under the application key (flags `0x02`): the default.
    #[default]
    Application,
    /// Under a data key of the aggregate's own, wrapped under the
    /// application key (flags `0x06`): `#[aggregate(key = per_aggregate)]`.
    /// Such an aggregate can be forgotten
    /// ([`Application::forget`](crate::Application::forget)).
    PerAggregate,
    /// Not at all, even with a key configured (flags `0x00`):
    /// `#[aggregate(public)]`. Its records are read in plaintext too.
    Public,
}

impl Encryption {
    /// The name the schema file shows.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Encryption::Application => "application_key",
            Encryption::PerAggregate => "per_aggregate",
            Encryption::Public => "public",
        }
    }
}

/// The application keys: the current one, which encrypts and wraps, and
/// the previous ones, still accepted for reading and unwrapping while a
/// rotation runs (`CIPHER_KEY_PREVIOUS`).
#[derive(Debug)]
pub(crate) struct Keyring {
    pub(crate) current: Cipher,
    pub(crate) previous: Vec<Cipher>,
}

impl Keyring {
    /// The key whose fingerprint is `fingerprint`, current or previous.
    fn by_fingerprint(&self, fingerprint: &str) -> Option<&Cipher> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|cipher| cipher.fingerprint() == *fingerprint)
    }
}

/// How many unwrapped data keys are cached unless
/// [`ApplicationBuilder::data_key_cache`](crate::ApplicationBuilder::data_key_cache)
/// says otherwise.
pub(crate) const DEFAULT_CACHE: usize = 10_000;

/// Unwrapped data keys, at most `capacity`: two generations, the newer
/// filled until it holds half the capacity, when it becomes the older and
/// the older is dropped. A key found in the older is moved to the newer.
#[derive(Debug, Default)]
struct Cache {
    newer: HashMap<Uuid, Arc<Cipher>>,
    older: HashMap<Uuid, Arc<Cipher>>,
    capacity: usize,
}

impl Cache {
    fn get(&mut self, id: Uuid) -> Option<Arc<Cipher>> {
        if let Some(key) = self.newer.get(&id) {
            return Some(Arc::clone(key));
        }
        let key = self.older.remove(&id)?;
        self.put(id, Arc::clone(&key));
        Some(key)
    }

    fn put(&mut self, id: Uuid, key: Arc<Cipher>) {
        if self.capacity == 0 {
            return;
        }
        if self.newer.len() >= self.capacity.div_ceil(2) {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(id, key);
    }

    fn remove(&mut self, id: Uuid) {
        self.newer.remove(&id);
        self.older.remove(&id);
    }
}

/// The data keys of one application's aggregates: created with an
/// aggregate's first event, read from `aggregate_keys` and unwrapped once,
/// then cached.
pub(crate) struct DataKeys {
    recorder: Arc<dyn Recorder>,
    ring: Arc<Keyring>,
    cache: Mutex<Cache>,
}

impl fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeys")
            .field("current", &self.ring.current.fingerprint())
            .finish_non_exhaustive()
    }
}

impl DataKeys {
    pub(crate) fn new(recorder: Arc<dyn Recorder>, ring: Arc<Keyring>, capacity: usize) -> Self {
        DataKeys {
            recorder,
            ring,
            cache: Mutex::new(Cache {
                capacity,
                ..Cache::default()
            }),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new data key for aggregate `id`, and the row that stores it
    /// wrapped under the current application key. Not cached until its
    /// row is committed ([`DataKeys::remember`]).
    pub(crate) fn create(&self, id: Uuid) -> Result<(Arc<Cipher>, DataKeyRow)> {
        let (key, wrapped) = self.ring.current.new_data_key(id)?;
        let row = DataKeyRow {
            originator_id: id,
            wrapped_key: wrapped,
            key_fingerprint: self.ring.current.fingerprint().to_string(),
            created_at: now_micros(),
        };
        Ok((Arc::new(key), row))
    }

    /// Caches the key of `id`, once its row is committed.
    pub(crate) fn remember(&self, id: Uuid, key: Arc<Cipher>) {
        self.cache().put(id, key);
    }

    /// Drops the key of `id` from the cache (the aggregate was forgotten).
    pub(crate) fn evict(&self, id: Uuid) {
        self.cache().remove(id);
    }

    /// The data key of aggregate `id`, or `None` when it has none (it was
    /// recorded under the application key, or forgotten).
    pub(crate) fn find(&self, id: Uuid) -> Result<Option<Arc<Cipher>>> {
        if let Some(key) = self.cache().get(id) {
            return Ok(Some(key));
        }
        let Some(row) = self.recorder.select_data_key(id)? else {
            return Ok(None);
        };
        let key = Arc::new(self.unwrap(&row)?);
        self.remember(id, Arc::clone(&key));
        Ok(Some(key))
    }

    /// The data key of aggregate `id`, for a record encrypted under it;
    /// [`Error::Forgotten`] when it has none any more.
    pub(crate) fn get(&self, id: Uuid) -> Result<Arc<Cipher>> {
        match self.find(id)? {
            Some(key) => Ok(key),
            None => Err(self.missing(id)?),
        }
    }

    /// Why aggregate `id` has no data key for a record under one: it was
    /// forgotten (its last record is `<Aggregate>.Forgotten`), or else the
    /// record's flags or the key table were tampered with.
    pub(crate) fn missing(&self, id: Uuid) -> Result<Error> {
        let mut forgotten = false;
        self.recorder.select_events(
            &EventQuery::new(id).descending(true).limit(1),
            &mut |row| {
                forgotten = row.topic.ends_with(FORGOTTEN_SUFFIX);
                Ok(ControlFlow::Break(()))
            },
        )?;
        Ok(if forgotten {
            Error::Forgotten { id }
        } else {
            Error::DataKey {
                id,
                reason: "a record is under a data key, but the aggregate has none and was not \
                         forgotten: its flags or the aggregate_keys table were tampered with"
                    .to_owned(),
            }
        })
    }

    /// Unwraps a stored row with the application key its fingerprint
    /// names.
    fn unwrap(&self, row: &DataKeyRow) -> Result<Cipher> {
        let id = row.originator_id;
        let Some(wrapping) = self.ring.by_fingerprint(&row.key_fingerprint) else {
            return Err(Error::DataKey {
                id,
                reason: format!(
                    "it was wrapped under the application key with fingerprint `{}`, which is \
                     neither CIPHER_KEY ({}) nor a previous key (CIPHER_KEY_PREVIOUS)",
                    row.key_fingerprint.escape_debug(),
                    self.ring.current.fingerprint()
                ),
            });
        };
        wrapping.unwrap_data_key(id, &row.wrapped_key)
    }

    /// Re-wraps every data key that is not under the current application
    /// key, `batch` rows at a time (each batch in one transaction), along
    /// the primary key: one pass, however many rows are done already.
    pub(crate) fn rotate(&self, batch: usize) -> Result<Rotation> {
        let current = self.ring.current.fingerprint();
        let mut rotation = Rotation {
            fingerprint: current.to_string(),
            rewrapped: 0,
        };
        let mut after = None;
        loop {
            let rows = self
                .recorder
                .select_data_keys(current.as_str(), after, batch.max(1))?;
            let Some(last) = rows.last() else {
                return Ok(rotation);
            };
            after = Some(last.originator_id);
            let mut rewraps = Vec::with_capacity(rows.len());
            for row in rows {
                let id = row.originator_id;
                let Some(old) = self.ring.by_fingerprint(&row.key_fingerprint) else {
                    return Err(self.unwrap(&row).err().unwrap_or(Error::DataKey {
                        id,
                        reason: "no configured key wrapped it".to_owned(),
                    }));
                };
                let wrapped = self.ring.current.rewrap(old, id, &row.wrapped_key)?;
                rewraps.push(Rewrap {
                    expected: row.key_fingerprint.clone(),
                    row: DataKeyRow {
                        wrapped_key: wrapped,
                        key_fingerprint: current.to_string(),
                        ..row
                    },
                });
            }
            // A row that another process changed meanwhile is left as it
            // is: a later run finds it if it still needs re-wrapping.
            rotation.rewrapped += self.recorder.rewrap_data_keys(&rewraps)?;
            crate::crash::point("after_rewrap_batch");
        }
    }
}

/// What a key rotation did ([`Application::rotate_keys`]).
///
/// [`Application::rotate_keys`]: crate::Application::rotate_keys
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotation {
    /// The fingerprint of the application key every data key is now
    /// wrapped under.
    pub fingerprint: String,
    /// How many data keys this run re-wrapped (0 when an earlier run had
    /// done them all).
    pub rewrapped: usize,
}

/// The topics recorded in plaintext even when the application has a key
/// (crate-internal, though reachable from a sealed trait):
/// those of public aggregate types and public events, learnt from the
/// types the application saves, loads or is told about. A plaintext record
/// with another topic is refused.
#[derive(Debug, Default)]
pub struct PublicTopics {
    types: RwLock<HashSet<&'static str>>,
    topics: RwLock<HashSet<String>>,
}

impl PublicTopics {
    /// Learns the public topics of aggregate type `A`, once.
    pub fn learn<A: Aggregate>(&self) {
        if self
            .types
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(A::NAME)
        {
            return;
        }
        let mut public = Vec::new();
        if A::ENCRYPTION == Encryption::Public {
            public.extend(A::Event::TOPICS.iter().map(|t| (*t).to_owned()));
            public.push(A::DISCARDED_TOPIC.to_owned());
            public.extend((1..=A::STATE_VERSION).map(|v| versioned_topic(A::NAME, v)));
        } else {
            for schema in A::Event::SCHEMA.iter().filter(|schema| schema.public) {
                let base = base_topic(schema.topic);
                public.extend(
                    A::Event::TOPICS
                        .iter()
                        .filter(|topic| base_topic(topic) == base)
                        .map(|t| (*t).to_owned()),
                );
            }
        }
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(public);
        self.types
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(A::NAME);
    }

    /// Whether `topic` may be stored in plaintext.
    pub(crate) fn contains(&self, topic: &str) -> bool {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(topic)
    }
}

/// A topic without its schema version.
fn base_topic(topic: &str) -> &str {
    split_topic(topic).map_or(topic, |(base, _)| base)
}

/// Whether a record of aggregate type `A` with `topic` is stored in
/// plaintext: every record of a public type, and the records of its
/// public events.
pub(crate) fn is_public<A: Aggregate>(topic: &str) -> bool {
    A::ENCRYPTION == Encryption::Public
        || A::Event::SCHEMA
            .iter()
            .any(|schema| schema.public && base_topic(schema.topic) == base_topic(topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_holds_at_most_its_capacity() {
        let mut cache = Cache {
            capacity: 4,
            ..Cache::default()
        };
        let key = Arc::new(Cipher::new([1; 32]));
        for n in 0..100 {
            cache.put(Uuid::from_u128(n), Arc::clone(&key));
            assert!(cache.newer.len() + cache.older.len() <= 4);
        }
        assert!(cache.get(Uuid::from_u128(99)).is_some());
        assert!(cache.get(Uuid::from_u128(0)).is_none());
        cache.remove(Uuid::from_u128(99));
        assert!(cache.get(Uuid::from_u128(99)).is_none());
    }
}
