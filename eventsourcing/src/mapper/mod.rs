//! Mapping between recorded events and stored rows (FORMAT.md).
//!
//! A [`RecordedEvent`] already holds the bytes of the record body; the
//! [`Mapper`] frames them (`previous_hash ‖ timestamp ‖ data ‖ event_hash`),
//! optionally compresses the body with zlib and encrypts it with AES-256-GCM,
//! and prefixes the flags byte. Decoding undoes the same steps, in reverse,
//! following the flags of the record rather than the mapper's settings.

use std::borrow::Cow;
use std::sync::Arc;

use uuid::Uuid;

use self::zlib::{MAX_INFLATED_LEN, deflate, deflate_bound};
use crate::cipher::{Cipher, NONCE_LEN, OVERHEAD};
use crate::domain::{RecordedEvent, Snapshot};
use crate::error::{Error, Result};
use crate::format::Hash;
use crate::keys::{DataKeys, Keyring, PublicTopics};
use crate::recorder::Recorder;

mod fixed_deflate;
mod open;
mod zlib;

pub(crate) use self::open::Scratch;

/// Flag bit: the payload went through zlib (RFC 1950).
const COMPRESSED: u8 = 0x01;
/// Flag bit: the payload is AES-256-GCM encrypted.
const ENCRYPTED: u8 = 0x02;
/// Flag bit: the key is the aggregate's own data key; only with
/// [`ENCRYPTED`].
const DATA_KEY: u8 = 0x04;
/// The flag bits this version writes and reads; a reader rejects any other
/// bit.
const KNOWN_FLAGS: u8 = COMPRESSED | ENCRYPTED | DATA_KEY;

/// Length of `previous_hash` and of `event_hash`.
const HASH_LEN: usize = 32;
/// Length of the timestamp.
const TIMESTAMP_LEN: usize = 8;
/// Bytes of a body before its data: `previous_hash ‖ timestamp`.
const HEAD_LEN: usize = HASH_LEN + TIMESTAMP_LEN;
/// The shortest possible body: empty data.
const MIN_BODY_LEN: usize = HEAD_LEN + HASH_LEN;

/// Event data shorter than this is not compressed even when compression
/// is configured: the hashes and the timestamp around it (72 bytes) do not
/// compress, and zlib's own framing (about 11 bytes) outweighs what so
/// little data could save, while deflating costs more than the write.
const MIN_COMPRESSED_DATA: usize = 64;

/// One row of `stored_events` (or `snapshots`), without the notification id
/// the database assigns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// The aggregate the event belongs to.
    pub originator_id: Uuid,
    /// The event's version within its aggregate.
    pub originator_version: u64,
    /// The event's stable type name.
    pub topic: String,
    /// The record: flags byte ‖ payload (FORMAT.md, "The stored `state`").
    pub state: Vec<u8>,
}

impl StoredEvent {
    /// The row lent, as a recorder hands rows to a callback.
    #[must_use]
    pub fn as_row(&self) -> StoredRow<'_> {
        StoredRow {
            originator_id: self.originator_id,
            originator_version: self.originator_version,
            topic: &self.topic,
            state: &self.state,
        }
    }
}

/// A row of `stored_events` lent by a recorder for the time of one call of
/// a callback ([`Recorder::select_events`]): its text and bytes are the
/// database's own, not copies. [`StoredRow::to_owned`] keeps one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredRow<'a> {
    /// The aggregate the event belongs to.
    pub originator_id: Uuid,
    /// The event's version within its aggregate.
    pub originator_version: u64,
    /// The event's stable type name.
    pub topic: &'a str,
    /// The record: flags byte ‖ payload (FORMAT.md, "The stored `state`").
    pub state: &'a [u8],
}

impl StoredRow<'_> {
    /// A copy of the row that outlives the call.
    #[must_use]
    pub fn to_owned(&self) -> StoredEvent {
        StoredEvent {
            originator_id: self.originator_id,
            originator_version: self.originator_version,
            topic: self.topic.to_owned(),
            state: self.state.to_vec(),
        }
    }
}

/// How the mapper compresses record bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// zlib (RFC 1950), flag bit `0x01`: bodies up to 4 KiB in one block
    /// of deflate's fixed codes (what zlib's fastest level writes at that
    /// size, without its per-stream setup), larger ones by zlib-rs at its
    /// fastest level. A body is stored uncompressed when its data is under
    /// 64 bytes or compressing does not make it smaller.
    Zlib,
}

/// Converts between [`RecordedEvent`]s and [`StoredEvent`] rows: framing,
/// compression and encryption (FORMAT.md).
///
/// Built plain with [`Mapper::new`], then configured with
/// [`Mapper::with_cipher`], [`Mapper::with_compression`] and
/// [`Mapper::allow_plaintext`]. Cloning is cheap (the cipher is shared), and
/// a mapper can be used from many threads at once.
///
/// ```
/// use eventsourcing::{Cipher, Compression, Hash, Mapper, RecordedEvent, Uuid};
///
/// let mapper = Mapper::new()
///     .with_cipher(Cipher::new([7; 32]))
///     .with_compression(Compression::Zlib);
/// let data = format!(r#"{{"what":"{}"}}"#, "dinosaurs ".repeat(10));
/// let event = RecordedEvent::new(
///     Uuid::new_v4(), 1, "World.Created".into(), 0, Hash::ZERO, data.into_bytes(),
/// );
/// let stored = mapper.encode(&event)?;
/// assert_eq!(stored.state[0], 0x03); // compressed and encrypted
/// assert_eq!(mapper.decode_checked(stored)?, event);
///
/// // Too little data to gain from zlib: encrypted only.
/// let small = RecordedEvent::new(
///     Uuid::new_v4(), 1, "World.Created".into(), 0, Hash::ZERO, b"{}".to_vec(),
/// );
/// assert_eq!(mapper.encode(&small)?.state[0], 0x02);
/// # Ok::<(), eventsourcing::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Mapper {
    ring: Option<Arc<Keyring>>,
    data_keys: Option<Arc<DataKeys>>,
    public: Arc<PublicTopics>,
    compression: Option<Compression>,
    allow_plaintext: bool,
}

/// Where decoding finds an aggregate's data key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DataKey<'a> {
    /// Asks the data keys (cache, then `aggregate_keys`).
    Ask,
    /// Already looked up: the key, or `None` when the aggregate has none
    /// (its records under a data key are then [`Error::Forgotten`]). For
    /// decoding inside a recorder's callback, which must not call the
    /// recorder again.
    Known(Option<&'a Cipher>),
}

/// Which key seals one record.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Seal<'a> {
    /// The application key, if one is configured (flags `0x02`), else
    /// none.
    Application,
    /// None: a public type's record (flags `0x00`, or `0x01` when
    /// compressed).
    Plain,
    /// Neither encrypted nor compressed (flags `0x00`): the `Forgotten`
    /// record.
    Bare,
    /// The aggregate's data key (flags `0x06`).
    DataKey(&'a Cipher),
}

impl Mapper {
    /// A mapper that neither compresses nor encrypts, and reads any record
    /// it has the means to (an encrypted one needs a cipher).
    #[must_use]
    pub fn new() -> Mapper {
        Mapper::default()
    }

    /// Encrypts every record it encodes with `cipher`, and, unless
    /// [`Mapper::allow_plaintext`] says otherwise, refuses to decode records
    /// that are not encrypted.
    #[must_use]
    pub fn with_cipher(mut self, cipher: Cipher) -> Mapper {
        let previous = self
            .ring
            .take()
            .map(|ring| ring.previous.clone())
            .unwrap_or_default();
        self.ring = Some(Arc::new(Keyring {
            current: cipher,
            previous,
        }));
        self
    }

    /// Also reads records encrypted under `cipher`, a previous application
    /// key, and unwraps data keys wrapped under it: what a key rotation
    /// needs (`CIPHER_KEY_PREVIOUS`). Only with [`Mapper::with_cipher`],
    /// which stays the key that encrypts and wraps.
    #[must_use]
    pub fn with_previous_cipher(mut self, cipher: Cipher) -> Mapper {
        if let Some(ring) = self.ring.take() {
            let mut previous = ring.previous.clone();
            previous.push(cipher);
            self.ring = Some(Arc::new(Keyring {
                current: ring.current.clone(),
                previous,
            }));
        }
        self
    }

    /// Reads and creates per-aggregate data keys in `recorder`'s
    /// `aggregate_keys`, keeping at most `cache` of them unwrapped in
    /// memory. Call after the ciphers are set; without a cipher there are
    /// no data keys.
    pub(crate) fn with_data_keys(mut self, recorder: Arc<dyn Recorder>, cache: usize) -> Mapper {
        self.data_keys = self
            .ring
            .as_ref()
            .map(|ring| Arc::new(DataKeys::new(recorder, Arc::clone(ring), cache)));
        self
    }

    /// The data keys, when the mapper has an application key and a
    /// recorder to keep them in.
    pub(crate) fn data_keys(&self) -> Option<&Arc<DataKeys>> {
        self.data_keys.as_ref()
    }

    /// The topics stored in plaintext under a key.
    pub(crate) fn public_topics(&self) -> &PublicTopics {
        &self.public
    }

    /// Whether the mapper encrypts.
    pub(crate) fn encrypts(&self) -> bool {
        self.ring.is_some()
    }

    /// Compresses every record body it encodes.
    #[must_use]
    pub fn with_compression(mut self, compression: Compression) -> Mapper {
        self.compression = Some(compression);
        self
    }

    /// Whether a mapper with a cipher decodes records that are not encrypted
    /// (default `false`: they are refused with [`Error::Decryption`]). Turn
    /// it on while encrypting a store that began without a key. Without a
    /// cipher, plaintext records are always read.
    #[must_use]
    pub fn allow_plaintext(mut self, allow: bool) -> Mapper {
        self.allow_plaintext = allow;
        self
    }

    /// Whether it has a cipher: whether it can open encrypted records.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn has_cipher(&self) -> bool {
        self.ring.is_some()
    }

    /// Turns a recorded event into its row: frames the body, compresses it
    /// and encrypts it as configured, and prefixes the flags byte.
    ///
    /// The event's data is stored as it is; it should be UTF-8 (JSON), since
    /// [`Mapper::decode`] refuses anything else. With compression
    /// configured, a body is still stored uncompressed (and flagged so,
    /// flag bit `0x01` clear) when its data is under 64 bytes, when
    /// compressing does not make it smaller, or when it is over 1 GiB.
    pub fn encode(&self, event: &RecordedEvent) -> Result<StoredEvent> {
        self.encode_with(event, Seal::Application)
    }

    /// [`Mapper::encode`] under the key `seal` names.
    pub(crate) fn encode_with(&self, event: &RecordedEvent, seal: Seal<'_>) -> Result<StoredEvent> {
        let body = Body {
            previous_hash: &event.previous_hash,
            timestamp: event.timestamp,
            data: &event.data,
            hash: &event.event_hash,
        };
        Ok(StoredEvent {
            originator_id: event.originator_id,
            originator_version: event.originator_version,
            topic: event.topic.to_string(),
            state: self.seal(event.originator_id, event.originator_version, &body, seal)?,
        })
    }

    /// Turns a snapshot into its row of `snapshots`, exactly as
    /// [`Mapper::encode`] does an event (the head takes the place of the
    /// previous hash).
    pub fn encode_snapshot(&self, snapshot: &Snapshot) -> Result<StoredEvent> {
        self.encode_snapshot_with(snapshot, Seal::Application)
    }

    /// [`Mapper::encode_snapshot`] under the key `seal` names.
    pub(crate) fn encode_snapshot_with(
        &self,
        snapshot: &Snapshot,
        seal: Seal<'_>,
    ) -> Result<StoredEvent> {
        let body = Body {
            previous_hash: &snapshot.head,
            timestamp: snapshot.timestamp,
            data: &snapshot.data,
            hash: &snapshot.hash,
        };
        Ok(StoredEvent {
            originator_id: snapshot.originator_id,
            originator_version: snapshot.originator_version,
            topic: snapshot.topic.clone(),
            state: self.seal(
                snapshot.originator_id,
                snapshot.originator_version,
                &body,
                seal,
            )?,
        })
    }

    /// Turns a row back into the recorded event: reads the flags, decrypts,
    /// decompresses and splits the body.
    ///
    /// The data must be UTF-8; whether it is the JSON its topic expects is
    /// left to the event's decoder. The event hash is **not** checked here:
    /// rebuilding an aggregate checks every hash and link, and checking twice
    /// would halve the speed of a replay. Use [`Mapper::decode_checked`]
    /// elsewhere.
    ///
    /// A malformed record is [`Error::Corrupt`]; one that cannot or may not
    /// be decrypted is [`Error::Decryption`]. Both name the row's id and
    /// version.
    pub fn decode(&self, stored: StoredEvent) -> Result<RecordedEvent> {
        self.decode_with(stored, DataKey::Ask)
    }

    /// [`Mapper::decode`], finding the data key as `data_key` says.
    pub(crate) fn decode_with(
        &self,
        mut stored: StoredEvent,
        data_key: DataKey<'_>,
    ) -> Result<RecordedEvent> {
        let (previous_hash, timestamp, data, event_hash) = self.open(&mut stored, data_key)?;
        Ok(RecordedEvent {
            originator_id: stored.originator_id,
            originator_version: stored.originator_version,
            topic: Cow::Owned(stored.topic),
            timestamp,
            previous_hash,
            data,
            event_hash,
        })
    }

    /// [`Mapper::decode`], then checks the event hash
    /// ([`RecordedEvent::check_hash`]): for readers that do not rebuild an
    /// aggregate, such as a notification log.
    pub fn decode_checked(&self, stored: StoredEvent) -> Result<RecordedEvent> {
        let event = self.decode(stored)?;
        event.check_hash()?;
        Ok(event)
    }

    /// Turns a row of `snapshots` back into the snapshot, as
    /// [`Mapper::decode`] does an event; the hash is not checked here
    /// either (loading from the snapshot checks it).
    pub fn decode_snapshot(&self, mut stored: StoredEvent) -> Result<Snapshot> {
        let (head, timestamp, data, hash) = self.open(&mut stored, DataKey::Ask)?;
        Ok(Snapshot {
            originator_id: stored.originator_id,
            originator_version: stored.originator_version,
            topic: stored.topic,
            timestamp,
            head,
            data,
            hash,
        })
    }

    /// The stored `state` of a record body: flags byte, then the body,
    /// compressed and encrypted as configured.
    fn seal(&self, id: Uuid, version: u64, body: &Body<'_>, seal: Seal<'_>) -> Result<Vec<u8>> {
        let body_len = MIN_BODY_LEN + body.data.len();
        let compress = self.compression.is_some()
            && body.data.len() >= MIN_COMPRESSED_DATA
            && body_len <= MAX_INFLATED_LEN
            && !matches!(seal, Seal::Bare);
        let payload_len = if compress {
            deflate_bound(body_len)
        } else {
            body_len
        };
        let (cipher, key_flags) = match seal {
            Seal::Application => (self.ring.as_ref().map(|ring| &ring.current), ENCRYPTED),
            Seal::Plain | Seal::Bare => (None, 0),
            Seal::DataKey(cipher) => (Some(cipher), ENCRYPTED | DATA_KEY),
        };
        let cipher_len = if cipher.is_some() { OVERHEAD } else { 0 };

        let mut state = Vec::with_capacity(1 + cipher_len + payload_len);
        let mut flags = 0;
        if compress {
            flags |= COMPRESSED;
        }
        if cipher.is_some() {
            flags |= key_flags;
        }
        state.push(flags);
        if cipher.is_some() {
            // Room for the nonce; the body goes after it and is then
            // encrypted in place.
            state.extend_from_slice(&[0; NONCE_LEN]);
        }
        let timestamp = body.timestamp.to_be_bytes();
        let parts = [
            &body.previous_hash.0[..],
            &timestamp[..],
            body.data,
            &body.hash.0[..],
        ];
        let start = state.len();
        if compress {
            deflate(&parts, &mut state).map_err(|reason| Error::Mapping {
                id,
                version,
                reason,
            })?;
            // Not smaller (data that does not compress): stored as it is,
            // and flagged so.
            if state.len() - start >= body_len {
                state.truncate(start);
                for part in parts {
                    state.extend_from_slice(part);
                }
                state[0] &= !COMPRESSED;
            }
        } else {
            for part in parts {
                state.extend_from_slice(part);
            }
        }
        if let Some(cipher) = cipher {
            cipher.seal_in_place(id, version, &mut state, 1)?;
        }
        Ok(state)
    }
}

/// The four parts of a record body (FORMAT.md), borrowed from an event or
/// a snapshot.
struct Body<'a> {
    previous_hash: &'a Hash,
    timestamp: i64,
    data: &'a [u8],
    hash: &'a Hash,
}
