//! The stored format of FORMAT.md in code: the hash of a record, the
//! topic of an event with its schema version, and the clock records are
//! stamped with.
//!
//! Everything here is a fact of the format that a program in any language
//! could recompute from the stored bytes alone; the mapper and the domain
//! build on it, and so can tools that check a database without loading
//! aggregates.
//!
//! ```
//! use eventsourcing::format::{event_hash, split_topic, versioned_topic};
//! use eventsourcing::{Hash, Uuid};
//!
//! let hash = event_hash(Uuid::nil(), 1, "World.Created", &Hash::ZERO, 0, b"{}");
//! assert_eq!(hash.to_hex().len(), 64);
//! assert_eq!(split_topic("World.Moved@3"), Some(("World.Moved", 3)));
//! assert_eq!(versioned_topic("World.Moved", 1), "World.Moved");
//! ```

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A SHA-256 digest: an event's hash, or an aggregate's head.
///
/// Shown (with `Display`) as 64 lowercase hex digits.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The 32 zero bytes that stand as `previous_hash` of an aggregate's
    /// first event.
    pub const ZERO: Hash = Hash([0; 32]);

    /// The 64 lowercase hex digits of the hash.
    #[must_use]
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// Parses 64 hex digits (either case).
    #[must_use]
    pub fn from_hex(hex: &str) -> Option<Hash> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            out[i] = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Hash(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl PartialEq<str> for Hash {
    fn eq(&self, other: &str) -> bool {
        Hash::from_hex(other).is_some_and(|h| h == *self)
    }
}

impl PartialEq<&str> for Hash {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

/// The `event_hash` of FORMAT.md: SHA-256 over the originator id, version,
/// length-prefixed topic, previous hash, timestamp and data. A snapshot's
/// hash is the same function of its own fields.
#[must_use]
pub fn event_hash(
    originator_id: Uuid,
    originator_version: u64,
    topic: &str,
    previous_hash: &Hash,
    timestamp: i64,
    data: &[u8],
) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(originator_id.as_bytes());
    hasher.update(originator_version.to_be_bytes());
    // A topic longer than 4 GiB cannot be stored; saturating keeps the
    // function total, and such a topic fails on the way into any database.
    let topic_len = u32::try_from(topic.len()).unwrap_or(u32::MAX);
    hasher.update(topic_len.to_be_bytes());
    hasher.update(topic.as_bytes());
    hasher.update(previous_hash.0);
    hasher.update(timestamp.to_be_bytes());
    hasher.update(data);
    Hash(hasher.finalize().into())
}

/// Microseconds since 1970-01-01T00:00:00Z, now: the unit of every stored
/// timestamp.
#[must_use]
pub fn now_micros() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The end of the topic of the event that `discard()` records: the
/// aggregate's name followed by this. Reserved by the macros, so a topic
/// that ends with it always marks a discarded aggregate.
pub(crate) const DISCARDED_SUFFIX: &str = ".Discarded";

/// The end of the topic of the event that forgetting an aggregate records
/// (FORMAT.md, "Per-aggregate keys"): the aggregate's name followed by
/// this, stored in plaintext with data `{}`. Reserved by the macros.
pub const FORGOTTEN_SUFFIX: &str = ".Forgotten";

/// Splits a stored topic into its unversioned part and its schema version:
/// `World.Moved@3` is `("World.Moved", 3)`, `World.Moved` is version 1.
/// `None` when the part after `@` is not a version above 1.
#[must_use]
pub fn split_topic(topic: &str) -> Option<(&str, u32)> {
    match topic.rsplit_once('@') {
        None => Some((topic, 1)),
        Some((base, version)) => match version.parse::<u32>() {
            Ok(v) if v > 1 && !version.starts_with('0') && !version.starts_with('+') => {
                Some((base, v))
            }
            _ => None,
        },
    }
}

/// The stored topic of `base` at schema `version`: unchanged at version 1
/// (so version 1 records are exactly FORMAT.md's), `base@version` above.
#[must_use]
pub fn versioned_topic(base: &str, version: u32) -> String {
    if version <= 1 {
        base.to_owned()
    } else {
        format!("{base}@{version}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_other_lengths() {
        let hash = event_hash(Uuid::from_u128(1), 2, "T", &Hash::ZERO, 3, b"{}");
        assert_eq!(Hash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(Hash::from_hex(&hash.to_hex().to_uppercase()), Some(hash));
        assert_eq!(Hash::from_hex("abc"), None);
        assert_eq!(Hash::from_hex(&"g".repeat(64)), None);
        assert!(hash == hash.to_hex().as_str());
    }

    #[test]
    fn topics_split_only_at_versions_above_one() {
        assert_eq!(split_topic("A.B"), Some(("A.B", 1)));
        assert_eq!(split_topic("A.B@2"), Some(("A.B", 2)));
        for bad in ["A.B@1", "A.B@0", "A.B@02", "A.B@+2", "A.B@x", "A.B@"] {
            assert_eq!(split_topic(bad), None, "{bad}");
        }
        assert_eq!(versioned_topic("A.B", 3), "A.B@3");
    }
}
