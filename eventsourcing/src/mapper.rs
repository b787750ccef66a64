//! Mapping between recorded events and stored rows (FORMAT.md).
//!
//! A [`RecordedEvent`] already holds the bytes of the record body; the
//! [`Mapper`] frames them (`previous_hash ‖ timestamp ‖ data ‖ event_hash`),
//! optionally compresses the body with zlib and encrypts it with AES-256-GCM,
//! and prefixes the flags byte. Decoding undoes the same steps, in reverse,
//! following the flags of the record rather than the mapper's settings.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};
use uuid::Uuid;

use crate::cipher::{Cipher, NONCE_LEN, OVERHEAD};
use crate::domain::{Hash, RecordedEvent};
use crate::error::{Error, Result};

/// Flag bit: the payload went through zlib (RFC 1950).
const COMPRESSED: u8 = 0x01;
/// Flag bit: the payload is AES-256-GCM encrypted.
const ENCRYPTED: u8 = 0x02;
/// The flag bits of format version 1; a reader rejects any other bit.
const KNOWN_FLAGS: u8 = COMPRESSED | ENCRYPTED;

/// Length of `previous_hash` and of `event_hash`.
const HASH_LEN: usize = 32;
/// Length of the timestamp.
const TIMESTAMP_LEN: usize = 8;
/// Bytes of a body before its data: `previous_hash ‖ timestamp`.
const HEAD_LEN: usize = HASH_LEN + TIMESTAMP_LEN;
/// The shortest possible body: empty data.
const MIN_BODY_LEN: usize = HEAD_LEN + HASH_LEN;

/// The largest body decoding inflates: a guard against decompression bombs
/// (deflate expands up to about 1000 times). Encoding never compresses a
/// larger body, so everything the mapper writes it can read back.
const MAX_INFLATED_LEN: usize = 1 << 30;

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

/// How the mapper compresses record bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// zlib (RFC 1950), flag bit `0x01`.
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
/// let event = RecordedEvent::new(
///     Uuid::new_v4(), 1, "World.Created".into(), 0, Hash::ZERO, b"{}".to_vec(),
/// );
/// let stored = mapper.encode(&event)?;
/// assert_eq!(stored.state[0], 0x03); // compressed and encrypted
/// assert_eq!(mapper.decode_checked(stored)?, event);
/// # Ok::<(), eventsourcing::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Mapper {
    cipher: Option<Arc<Cipher>>,
    compression: Option<Compression>,
    allow_plaintext: bool,
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
        self.cipher = Some(Arc::new(cipher));
        self
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

    /// Turns a recorded event into its row: frames the body, compresses it
    /// and encrypts it as configured, and prefixes the flags byte.
    ///
    /// The event's data is stored as it is; it should be UTF-8 (JSON), since
    /// [`Mapper::decode`] refuses anything else. A body over 1 GiB is stored
    /// uncompressed (and flagged so) even when compression is configured.
    pub fn encode(&self, event: &RecordedEvent) -> Result<StoredEvent> {
        let id = event.originator_id;
        let version = event.originator_version;
        let body_len = MIN_BODY_LEN + event.data.len();
        let compress = self.compression.is_some() && body_len <= MAX_INFLATED_LEN;
        let payload_len = if compress {
            deflate_bound(body_len)
        } else {
            body_len
        };
        let cipher_len = if self.cipher.is_some() { OVERHEAD } else { 0 };

        let mut state = Vec::with_capacity(1 + cipher_len + payload_len);
        let mut flags = 0;
        if compress {
            flags |= COMPRESSED;
        }
        if self.cipher.is_some() {
            flags |= ENCRYPTED;
        }
        state.push(flags);
        if self.cipher.is_some() {
            // Room for the nonce; the body goes after it and is then
            // encrypted in place.
            state.extend_from_slice(&[0; NONCE_LEN]);
        }
        let body = [
            &event.previous_hash.0[..],
            &event.timestamp.to_be_bytes()[..],
            &event.data[..],
            &event.event_hash.0[..],
        ];
        if compress {
            deflate(&body, &mut state).map_err(|reason| Error::Corrupt {
                id,
                version,
                reason,
            })?;
        } else {
            for part in body {
                state.extend_from_slice(part);
            }
        }
        if let Some(cipher) = &self.cipher {
            cipher.seal_in_place(id, version, &mut state, 1)?;
        }
        Ok(StoredEvent {
            originator_id: id,
            originator_version: version,
            topic: event.topic.to_string(),
            state,
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
        let StoredEvent {
            originator_id: id,
            originator_version: version,
            topic,
            mut state,
        } = stored;
        let corrupt = |reason: String| Error::Corrupt {
            id,
            version,
            reason,
        };
        let decryption = |reason: &'static str| Error::Decryption {
            id,
            version,
            reason,
        };

        let Some(&flags) = state.first() else {
            return Err(corrupt("empty state: no flags byte".into()));
        };
        let unknown = flags & !KNOWN_FLAGS;
        if unknown != 0 {
            return Err(corrupt(format!(
                "unknown flag bits {unknown:#04x} in flags byte {flags:#04x} \
                 (format version 1 knows only 0x01 compressed and 0x02 encrypted)"
            )));
        }

        // The payload, as a range of `state`, is decrypted in place.
        let mut payload = 1..state.len();
        if flags & ENCRYPTED != 0 {
            let Some(cipher) = &self.cipher else {
                return Err(decryption(
                    "record is encrypted but no cipher key is configured",
                ));
            };
            let Some(encrypted) = state.get_mut(payload.clone()) else {
                return Err(corrupt("empty payload".into()));
            };
            let plaintext = cipher.open_in_place(id, version, encrypted)?;
            payload = payload.start + plaintext.start..payload.start + plaintext.end;
        } else if self.cipher.is_some() && !self.allow_plaintext {
            return Err(decryption(
                "record is not encrypted and plaintext records are not allowed",
            ));
        }

        let (body, range) = if flags & COMPRESSED == 0 {
            (state, payload)
        } else {
            let Some(compressed) = state.get(payload) else {
                return Err(corrupt("empty payload".into()));
            };
            let inflated = inflate(compressed).map_err(corrupt)?;
            let len = inflated.len();
            (inflated, 0..len)
        };
        let (previous_hash, timestamp, data, event_hash) =
            split_body(body, range).map_err(corrupt)?;

        Ok(RecordedEvent {
            originator_id: id,
            originator_version: version,
            topic: Cow::Owned(topic),
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
}

/// Splits `body[range]` into previous hash, timestamp, data and event hash,
/// reusing `body`'s allocation for the data.
fn split_body(
    mut body: Vec<u8>,
    range: std::ops::Range<usize>,
) -> std::result::Result<(Hash, i64, Vec<u8>, Hash), String> {
    let len = range.len();
    let Some(framed) = body.get(range.clone()) else {
        return Err("payload out of bounds".into());
    };
    let truncated = || {
        format!(
            "truncated: the body is {len} bytes, shorter than the {MIN_BODY_LEN} of \
             previous hash, timestamp and event hash"
        )
    };
    let (previous_hash, rest) = framed
        .split_first_chunk::<HASH_LEN>()
        .ok_or_else(truncated)?;
    let (timestamp, rest) = rest
        .split_first_chunk::<TIMESTAMP_LEN>()
        .ok_or_else(truncated)?;
    let (data, event_hash) = rest.split_last_chunk::<HASH_LEN>().ok_or_else(truncated)?;
    if let Err(e) = std::str::from_utf8(data) {
        return Err(format!(
            "data is not UTF-8: invalid byte at offset {}",
            e.valid_up_to()
        ));
    }
    let previous_hash = Hash(*previous_hash);
    let timestamp = i64::from_be_bytes(*timestamp);
    let event_hash = Hash(*event_hash);
    // Move the data to the front of its own buffer instead of copying it
    // into a new one.
    let data_start = range.start + HEAD_LEN;
    let data_end = range.end - HASH_LEN;
    body.truncate(data_end);
    body.drain(..data_start);
    Ok((previous_hash, timestamp, body, event_hash))
}

/// An upper bound of the zlib stream of `len` bytes (zlib's `compressBound`).
fn deflate_bound(len: usize) -> usize {
    len + (len >> 12) + (len >> 14) + (len >> 25) + 13
}

thread_local! {
    /// A compressor per thread: miniz keeps some 300 KB of tables, far more
    /// than a record, so making one per record would dominate the cost.
    static DEFLATER: Cell<Option<Compress>> = const { Cell::new(None) };
    /// A decompressor per thread, for the same reason (32 KB window).
    static INFLATER: Cell<Option<Decompress>> = const { Cell::new(None) };
}

/// Runs `f` with this thread's cached codec (or a fresh one while the cache
/// is in use or gone), then puts the codec back.
fn with_cached<T, R>(
    cache: &'static std::thread::LocalKey<Cell<Option<T>>>,
    make: impl FnOnce() -> T,
    reset: impl FnOnce(&mut T),
    f: impl FnOnce(&mut T) -> R,
) -> R {
    let cached = cache.try_with(Cell::take).ok().flatten();
    let mut codec = match cached {
        Some(mut codec) => {
            reset(&mut codec);
            codec
        }
        None => make(),
    };
    let result = f(&mut codec);
    // Fails only while the thread is exiting; the codec is then dropped.
    let _ = cache.try_with(|cell| cell.set(Some(codec)));
    result
}

/// Appends the zlib stream of the concatenated `parts` to `out`.
fn deflate(parts: &[&[u8]], out: &mut Vec<u8>) -> std::result::Result<(), String> {
    with_cached(
        &DEFLATER,
        || Compress::new(flate2::Compression::fast(), true),
        Compress::reset,
        |compress| deflate_with(compress, parts, out),
    )
}

fn deflate_with(
    compress: &mut Compress,
    parts: &[&[u8]],
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.iter().enumerate() {
        let flush = if i == last {
            FlushCompress::Finish
        } else {
            FlushCompress::None
        };
        let mut input = *part;
        let mut stalls = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(input.len() / 2 + 256);
            }
            let (in_before, out_before) = (compress.total_in(), compress.total_out());
            let status = compress
                .compress_vec(input, out, flush)
                .map_err(|e| format!("cannot compress the record: {e}"))?;
            let consumed = progress(compress.total_in(), in_before).min(input.len());
            input = &input[consumed..];
            if status == Status::StreamEnd {
                break;
            }
            if flush == FlushCompress::None && input.is_empty() {
                break;
            }
            if consumed == 0 && compress.total_out() == out_before {
                // No room was the only reason to stall; grow and retry a few
                // times before calling it a compressor fault.
                stalls += 1;
                if stalls > 8 {
                    return Err("cannot compress the record: the compressor stalled".into());
                }
                out.reserve(out.capacity().max(256));
            }
        }
    }
    Ok(())
}

/// The zlib stream `input`, inflated; refuses truncated streams, trailing
/// bytes and bodies over [`MAX_INFLATED_LEN`].
fn inflate(input: &[u8]) -> std::result::Result<Vec<u8>, String> {
    with_cached(
        &INFLATER,
        || Decompress::new(true),
        |decompress| decompress.reset(true),
        |decompress| inflate_with(decompress, input),
    )
}

fn inflate_with(decompress: &mut Decompress, input: &[u8]) -> std::result::Result<Vec<u8>, String> {
    // JSON usually compresses three to five times.
    let mut out = Vec::with_capacity(
        input
            .len()
            .saturating_mul(4)
            .saturating_add(MIN_BODY_LEN)
            .min(MAX_INFLATED_LEN + 1),
    );
    let mut rest = input;
    loop {
        if out.len() == out.capacity() {
            if out.len() > MAX_INFLATED_LEN {
                return Err(format!(
                    "compressed body inflates to more than {MAX_INFLATED_LEN} bytes"
                ));
            }
            let room = out.len().max(256).min(MAX_INFLATED_LEN + 1 - out.len());
            out.reserve_exact(room);
        }
        let (in_before, out_before) = (decompress.total_in(), decompress.total_out());
        // Not `Finish`: miniz then inflates in one shot and fails outright
        // when the output buffer is too small, instead of asking for more.
        let status = decompress
            .decompress_vec(rest, &mut out, FlushDecompress::None)
            .map_err(|e| format!("bad compressed stream: {e}"))?;
        let consumed = progress(decompress.total_in(), in_before).min(rest.len());
        rest = &rest[consumed..];
        if status == Status::StreamEnd {
            break;
        }
        let stalled = consumed == 0 && decompress.total_out() == out_before;
        if stalled && out.len() < out.capacity() {
            return Err("compressed stream is truncated".into());
        }
    }
    if out.len() > MAX_INFLATED_LEN {
        return Err(format!(
            "compressed body inflates to more than {MAX_INFLATED_LEN} bytes"
        ));
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} trailing bytes after the compressed stream",
            rest.len()
        ));
    }
    Ok(out)
}

/// How far a codec's byte counter moved.
fn progress(after: u64, before: u64) -> usize {
    usize::try_from(after.saturating_sub(before)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflate_then_inflate_is_identity_across_parts() {
        let sevens = vec![7; 100_000];
        let parts: [&[u8]; 3] = [b"abc", &sevens, b"xyz"];
        let mut out = vec![0xEE];
        deflate(&parts, &mut out).unwrap();
        assert_eq!(out[0], 0xEE);
        let inflated = inflate(&out[1..]).unwrap();
        assert_eq!(inflated, parts.concat());
    }

    #[test]
    fn deflate_grows_a_full_buffer() {
        // Incompressible-ish input, no spare room to start with.
        let input: Vec<u8> = (0..50_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
            .collect();
        let mut out = Vec::new();
        deflate(&[&input], &mut out).unwrap();
        assert_eq!(inflate(&out).unwrap(), input);
    }

    #[test]
    fn inflate_rejects_trailing_bytes_and_truncation() {
        let mut out = Vec::new();
        deflate(&[b"hello hello hello"], &mut out).unwrap();
        let mut trailing = out.clone();
        trailing.push(0);
        assert!(inflate(&trailing).unwrap_err().contains("trailing"));
        let truncated = &out[..out.len() - 1];
        assert!(inflate(truncated).is_err());
        // The cached inflater is usable again after a failure.
        assert_eq!(inflate(&out).unwrap(), b"hello hello hello");
    }

    #[test]
    fn inflate_grows_past_its_first_guess() {
        let big = vec![b'a'; 1_000_000];
        let mut out = Vec::new();
        deflate(&[&big], &mut out).unwrap();
        assert!(out.len() * 4 < big.len());
        assert_eq!(inflate(&out).unwrap(), big);
    }

    #[test]
    fn deflate_bound_covers_incompressible_data() {
        let input: Vec<u8> = (0..10_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes()[0])
            .collect();
        let mut out = Vec::new();
        deflate(&[&input], &mut out).unwrap();
        assert!(out.len() <= deflate_bound(input.len()));
    }
}
