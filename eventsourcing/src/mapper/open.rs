//! Opening stored records: the flags byte read, the payload decrypted and
//! inflated as the flags say, the body split into its four parts.
//!
//! Two ways in. A row the recorder lends ([`StoredRow`]) is opened without
//! a copy when it is plaintext; an encrypted or compressed one goes through
//! the reader's [`Scratch`] buffers, reused from row to row, so that a
//! replay allocates nothing per event. An owned row ([`StoredEvent`]) is
//! decrypted in its own buffer and its data moved to the front of it.

use std::ops::Range;

use uuid::Uuid;

use super::zlib::inflate_into;
use super::{
    COMPRESSED, DATA_KEY, DataKey, ENCRYPTED, HASH_LEN, HEAD_LEN, KNOWN_FLAGS, MIN_BODY_LEN,
    Mapper, StoredEvent, StoredRow,
};
use crate::cipher::Cipher;
use crate::domain::EventView;
use crate::error::{Error, Result};
use crate::format::{FORGOTTEN_SUFFIX, Hash};
use crate::keys::Keyring;

/// Buffers a reader keeps across records: the copy of an encrypted payload
/// that is decrypted in place, and the inflated body of a compressed one.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    sealed: Vec<u8>,
    inflated: Vec<u8>,
}

/// A record body's parts, the data as a range of the body.
struct Parts {
    previous_hash: Hash,
    timestamp: i64,
    data: Range<usize>,
    hash: Hash,
}

impl Mapper {
    /// Opens a lent row into a view of the recorded event, borrowing the
    /// row's bytes, or `scratch`'s when the record is encrypted or
    /// compressed. The hash is not checked (as with [`Mapper::decode`]).
    pub(crate) fn open_row<'a>(
        &self,
        row: StoredRow<'a>,
        data_key: DataKey<'_>,
        scratch: &'a mut Scratch,
    ) -> Result<EventView<'a>> {
        let (id, version) = (row.originator_id, row.originator_version);
        let flags = self.check_flags(id, version, row.topic, row.state)?;
        let Scratch { sealed, inflated } = scratch;
        let mut body: &'a [u8] = row.state.get(1..).unwrap_or_default();
        if flags & ENCRYPTED != 0 {
            sealed.clear();
            sealed.extend_from_slice(body);
            let plaintext = self.decrypt(id, version, flags, sealed, data_key)?;
            let sealed: &'a Vec<u8> = sealed;
            body = &sealed[plaintext];
        }
        if flags & COMPRESSED != 0 {
            inflate_into(body, inflated).map_err(|reason| corrupt(id, version, reason))?;
            let inflated: &'a Vec<u8> = inflated;
            body = inflated;
        }
        let parts = split_body(body).map_err(|reason| corrupt(id, version, reason))?;
        Ok(EventView {
            originator_id: id,
            originator_version: version,
            topic: row.topic,
            timestamp: parts.timestamp,
            previous_hash: parts.previous_hash,
            data: &body[parts.data],
            event_hash: parts.hash,
        })
    }

    /// The record body in an owned row: decrypted in the row's own buffer,
    /// then split into previous hash (or head), timestamp, data and hash;
    /// the data is moved to the front of the buffer rather than copied.
    pub(super) fn open(
        &self,
        stored: &mut StoredEvent,
        data_key: DataKey<'_>,
    ) -> Result<(Hash, i64, Vec<u8>, Hash)> {
        let (id, version) = (stored.originator_id, stored.originator_version);
        let flags = self.check_flags(id, version, &stored.topic, &stored.state)?;
        let mut state = std::mem::take(&mut stored.state);
        let mut payload = 1..state.len();
        if flags & ENCRYPTED != 0 {
            let Some(encrypted) = state.get_mut(payload.clone()) else {
                return Err(corrupt(id, version, "empty payload".into()));
            };
            let plaintext = self.decrypt(id, version, flags, encrypted, data_key)?;
            payload = payload.start + plaintext.start..payload.start + plaintext.end;
        }
        let (mut body, range) = if flags & COMPRESSED == 0 {
            (state, payload)
        } else {
            let mut inflated = Vec::new();
            let compressed = state.get(payload).unwrap_or_default();
            inflate_into(compressed, &mut inflated)
                .map_err(|reason| corrupt(id, version, reason))?;
            let len = inflated.len();
            (inflated, 0..len)
        };
        let framed = body.get(range.clone()).unwrap_or_default();
        let parts = split_body(framed).map_err(|reason| corrupt(id, version, reason))?;
        body.truncate(range.start + parts.data.end);
        body.drain(..range.start + parts.data.start);
        Ok((parts.previous_hash, parts.timestamp, body, parts.hash))
    }

    /// The flags byte of `state`, checked: known bits only, the data key
    /// bit only with the encrypted bit, and a plaintext record only where
    /// plaintext is allowed.
    fn check_flags(&self, id: Uuid, version: u64, topic: &str, state: &[u8]) -> Result<u8> {
        let Some(&flags) = state.first() else {
            return Err(corrupt(id, version, "empty state: no flags byte".into()));
        };
        let unknown = flags & !KNOWN_FLAGS;
        if unknown != 0 {
            return Err(corrupt(
                id,
                version,
                format!(
                    "unknown flag bits {unknown:#04x} in flags byte {flags:#04x} (this version \
                     knows only 0x01 compressed, 0x02 encrypted and 0x04 data key)"
                ),
            ));
        }
        if flags & (DATA_KEY | ENCRYPTED) == DATA_KEY {
            return Err(corrupt(
                id,
                version,
                format!(
                    "flags byte {flags:#04x} has the data key bit 0x04 without the encrypted \
                     bit 0x02"
                ),
            ));
        }
        if flags & ENCRYPTED == 0
            && self.ring.is_some()
            && !self.allow_plaintext
            && !topic.ends_with(FORGOTTEN_SUFFIX)
            && !self.public.contains(topic)
        {
            return Err(Error::Decryption {
                id,
                version,
                reason: "record is not encrypted and plaintext records are not allowed",
            });
        }
        Ok(flags)
    }

    /// Decrypts `encrypted` in place with the key `flags` and `data_key`
    /// name; the plaintext's range within it.
    fn decrypt(
        &self,
        id: Uuid,
        version: u64,
        flags: u8,
        encrypted: &mut [u8],
        data_key: DataKey<'_>,
    ) -> Result<Range<usize>> {
        let decryption = |reason: &'static str| Error::Decryption {
            id,
            version,
            reason,
        };
        let Some(ring) = &self.ring else {
            return Err(decryption(
                "record is encrypted but no cipher key is configured",
            ));
        };
        if flags & DATA_KEY == 0 {
            return if ring.previous.is_empty() {
                ring.current.open_in_place(id, version, encrypted)
            } else {
                open_with_ring(ring, id, version, encrypted)
            };
        }
        let asked;
        let cipher: &Cipher = match data_key {
            DataKey::Known(Some(key)) => key,
            DataKey::Known(None) => return Err(Error::Forgotten { id }),
            DataKey::Ask => {
                let Some(keys) = &self.data_keys else {
                    return Err(Error::DataKey {
                        id,
                        reason: "the record is under a data key, and this mapper reads no \
                                 aggregate_keys"
                            .to_owned(),
                    });
                };
                asked = keys.get(id)?;
                &asked
            }
        };
        cipher.open_in_place(id, version, encrypted)
    }
}

fn corrupt(id: Uuid, version: u64, reason: String) -> Error {
    Error::Corrupt {
        id,
        version,
        reason,
    }
}

/// Decrypts in place a record under the application key: the current one,
/// else each previous one in turn (records written before a rotation).
/// The payload is only changed by a decryption that succeeds.
fn open_with_ring(
    ring: &Keyring,
    id: Uuid,
    version: u64,
    encrypted: &mut [u8],
) -> Result<Range<usize>> {
    let mut error = None;
    for cipher in std::iter::once(&ring.current).chain(&ring.previous) {
        match cipher.open_in_place(id, version, encrypted) {
            Ok(range) => return Ok(range),
            Err(e @ Error::Decryption { .. }) => error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(error.unwrap_or(Error::Decryption {
        id,
        version,
        reason: "no application key opens the record",
    }))
}

/// Splits a record body (`previous_hash ‖ timestamp ‖ data ‖ hash`),
/// checking that the data is UTF-8.
fn split_body(body: &[u8]) -> std::result::Result<Parts, String> {
    let len = body.len();
    let truncated = || {
        format!(
            "truncated: the body is {len} bytes, shorter than the {MIN_BODY_LEN} of \
             previous hash, timestamp and event hash"
        )
    };
    let (previous_hash, rest) = body.split_first_chunk::<HASH_LEN>().ok_or_else(truncated)?;
    let (timestamp, rest) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
    let (data, hash) = rest.split_last_chunk::<HASH_LEN>().ok_or_else(truncated)?;
    if let Err(e) = std::str::from_utf8(data) {
        return Err(format!(
            "data is not UTF-8: invalid byte at offset {}",
            e.valid_up_to()
        ));
    }
    Ok(Parts {
        previous_hash: Hash(*previous_hash),
        timestamp: i64::from_be_bytes(*timestamp),
        data: HEAD_LEN..len - HASH_LEN,
        hash: Hash(*hash),
    })
}
