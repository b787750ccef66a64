//! AES-256-GCM encryption of stored records (FORMAT.md, "The stored `state`").
//!
//! An encrypted payload is `nonce (12) ‖ ciphertext ‖ tag (16)`. The nonce is
//! drawn from the operating system's CSPRNG for every record (for the
//! records of one save, in one draw: `nonces.rs`), and the
//! associated data binds the ciphertext to its row: `originator_id` (16 raw
//! bytes) ‖ `originator_version` (u64, big-endian).

use std::fmt;
use std::ops::Range;

use aes_gcm::aead::{AeadInPlace, KeyInit, Nonce, Tag};
use aes_gcm::{Aes256Gcm, Key};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::CIPHER_KEY;
use crate::error::{Error, Result};

/// Length of the nonce that starts an encrypted payload.
pub(crate) const NONCE_LEN: usize = 12;
/// Length of the authentication tag that ends an encrypted payload.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes an encrypted payload adds to its plaintext.
pub(crate) const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Length of a key in bytes.
const KEY_LEN: usize = 32;

/// Why an encrypted record failed to open.
const AUTH_FAILED: &str =
    "authentication failed: wrong key, tampered record or record moved from another row";

/// An AES-256-GCM key, ready to encrypt and decrypt records.
///
/// Build one from the `CIPHER_KEY` setting with [`Cipher::from_base64`], or
/// from raw bytes with [`Cipher::new`]. `Debug` never shows the key.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
    fingerprint: Fingerprint,
}

/// The fingerprint of an application key (FORMAT.md, "Per-aggregate
/// keys"): the first 16 lowercase hex digits of the SHA-256 of the key.
/// Safe to store and show: it names the key without revealing it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

/// Hex digits in a fingerprint.
const FINGERPRINT_LEN: usize = 16;

impl Fingerprint {
    fn of(key: &[u8; KEY_LEN]) -> Fingerprint {
        let digest = Sha256::digest(key);
        let mut hex = [0u8; FINGERPRINT_LEN];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(digest.iter()) {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        Fingerprint(hex)
    }

    /// The 16 hex digits.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Built from ASCII hex digits only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl PartialEq<str> for Fingerprint {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl Cipher {
    /// A cipher with the given 32-byte key.
    #[must_use]
    pub fn new(key: [u8; KEY_LEN]) -> Cipher {
        Cipher {
            aead: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)),
            fingerprint: Fingerprint::of(&key),
        }
    }

    /// The key's fingerprint, as stored beside the data keys it wraps.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// A fresh data key for aggregate `id`: 32 bytes from the operating
    /// system's CSPRNG, as a cipher, and wrapped under this (application)
    /// key as FORMAT.md's `aggregate_keys.wrapped_key` stores it:
    /// `nonce ‖ ciphertext ‖ tag`, with the associated data
    /// `eventsourcing-data-key ‖ id`.
    pub(crate) fn new_data_key(&self, id: Uuid) -> Result<(Cipher, Vec<u8>)> {
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(|e| Error::Random {
            reason: format!("cannot draw a data key: {e}"),
        })?;
        let wrapped = self.wrap(id, &key)?;
        Ok((Cipher::new(key), wrapped))
    }

    /// Wraps the data key `key` of aggregate `id` under this key.
    fn wrap(&self, id: Uuid, key: &[u8; KEY_LEN]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::Random {
            reason: format!("cannot draw a nonce: {e}"),
        })?;
        let mut out = Vec::with_capacity(OVERHEAD + KEY_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(key);
        let region = out.get_mut(NONCE_LEN..).unwrap_or_default();
        let tag = self
            .aead
            .encrypt_in_place_detached(&Nonce::<Aes256Gcm>::from(nonce), &data_key_aad(id), region)
            .map_err(|_| Error::DataKey {
                id,
                reason: "cannot wrap the data key".to_owned(),
            })?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Unwraps the data key of aggregate `id` (a `wrapped_key` this key
    /// wrapped) into a cipher; [`Error::DataKey`] when it is malformed,
    /// was wrapped under another key, belongs to another aggregate's row
    /// or was tampered with.
    pub(crate) fn unwrap_data_key(&self, id: Uuid, wrapped: &[u8]) -> Result<Cipher> {
        let key = self.unwrap_key_bytes(id, wrapped)?;
        Ok(Cipher::new(key))
    }

    /// Re-wraps a data key wrapped under `old` under this key.
    pub(crate) fn rewrap(&self, old: &Cipher, id: Uuid, wrapped: &[u8]) -> Result<Vec<u8>> {
        let key = old.unwrap_key_bytes(id, wrapped)?;
        self.wrap(id, &key)
    }

    fn unwrap_key_bytes(&self, id: Uuid, wrapped: &[u8]) -> Result<[u8; KEY_LEN]> {
        let bad = |reason: &str| Error::DataKey {
            id,
            reason: reason.to_owned(),
        };
        if wrapped.len() != OVERHEAD + KEY_LEN {
            return Err(bad("the wrapped key is not 60 bytes (nonce, key, tag)"));
        }
        let (nonce, rest) = wrapped
            .split_first_chunk::<NONCE_LEN>()
            .ok_or_else(|| bad("the wrapped key is truncated"))?;
        let (body, tag) = rest
            .split_last_chunk::<TAG_LEN>()
            .ok_or_else(|| bad("the wrapped key is truncated"))?;
        let mut key: [u8; KEY_LEN] = body
            .try_into()
            .map_err(|_| bad("the wrapped key is truncated"))?;
        self.aead
            .decrypt_in_place_detached(
                &Nonce::<Aes256Gcm>::from(*nonce),
                &data_key_aad(id),
                &mut key,
                &Tag::<Aes256Gcm>::from(*tag),
            )
            .map_err(|_| {
                bad("the wrapped key does not open: wrong application key, a key moved from another aggregate's row, or tampering")
            })?;
        Ok(key)
    }

    /// A cipher from a `CIPHER_KEY` value: the standard base64 encoding, with
    /// padding, of exactly 32 bytes (as made by [`generate_cipher_key`]).
    ///
    /// Anything else, including surrounding whitespace, is refused with
    /// [`Error::Config`] naming `CIPHER_KEY`. The message never repeats the
    /// key or any part of it.
    pub fn from_base64(key: &str) -> Result<Cipher> {
        let bytes = STANDARD
            .decode(key)
            .map_err(|e| config(describe_base64(&e)))?;
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            config(format!(
                "decodes to {} bytes; expected exactly {KEY_LEN} (a 256-bit AES key), \
                 generate one with `generate_cipher_key()`",
                bytes.len()
            ))
        })?;
        Ok(Cipher::new(key))
    }

    /// Encrypts `plaintext` for the row `(id, version)` and appends
    /// `nonce ‖ ciphertext ‖ tag` to `out`.
    pub fn encrypt(
        &self,
        id: Uuid,
        version: u64,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        out.reserve(OVERHEAD + plaintext.len());
        let start = out.len();
        out.extend_from_slice(&[0; NONCE_LEN]);
        out.extend_from_slice(plaintext);
        self.seal_in_place(id, version, out, start)
    }

    /// Decrypts a payload written by [`Cipher::encrypt`] for the row
    /// `(id, version)`.
    ///
    /// A payload shorter than nonce and tag is [`Error::Corrupt`]; a wrong
    /// key, a tampered payload or one that belongs to another row is
    /// [`Error::Decryption`].
    pub fn decrypt(&self, id: Uuid, version: u64, payload: &[u8]) -> Result<Vec<u8>> {
        let (nonce, body, tag) = split_payload(id, version, payload)?;
        let mut plaintext = body.to_vec();
        self.open(id, version, &nonce, &mut plaintext, &tag)?;
        Ok(plaintext)
    }

    /// Encrypts in place: `out[start..start + 12]` is the room left for the
    /// nonce, and everything after it is the plaintext. Fills in the nonce,
    /// encrypts the plaintext and appends the tag.
    pub(crate) fn seal_in_place(
        &self,
        id: Uuid,
        version: u64,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<()> {
        let nonce = crate::nonces::nonce()?;
        let no_room = || Error::Mapping {
            id,
            version,
            reason: "no room for the nonce".into(),
        };
        let region = out.get_mut(start..).ok_or_else(no_room)?;
        let (nonce_slot, plaintext) = region
            .split_first_chunk_mut::<NONCE_LEN>()
            .ok_or_else(no_room)?;
        *nonce_slot = nonce;
        let tag = self
            .aead
            .encrypt_in_place_detached(
                &Nonce::<Aes256Gcm>::from(nonce),
                &aad(id, version),
                plaintext,
            )
            .map_err(|_| Error::Mapping {
                id,
                version,
                reason: "the record is too long to encrypt".into(),
            })?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Decrypts in place a payload `nonce ‖ ciphertext ‖ tag`; returns the
    /// range of `payload` that then holds the plaintext.
    pub(crate) fn open_in_place(
        &self,
        id: Uuid,
        version: u64,
        payload: &mut [u8],
    ) -> Result<Range<usize>> {
        let (nonce, body, tag) = split_payload(id, version, payload)?;
        let plaintext = NONCE_LEN..NONCE_LEN + body.len();
        // `split_payload` returned sub-slices of `payload`, so this range is
        // inside it; `get_mut` keeps that a checked fact rather than a panic.
        let Some(body) = payload.get_mut(plaintext.clone()) else {
            return Err(corrupt(
                id,
                version,
                "encrypted payload is truncated".into(),
            ));
        };
        self.open(id, version, &nonce, body, &tag)?;
        Ok(plaintext)
    }

    fn open(
        &self,
        id: Uuid,
        version: u64,
        nonce: &[u8; NONCE_LEN],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<()> {
        self.aead
            .decrypt_in_place_detached(
                &Nonce::<Aes256Gcm>::from(*nonce),
                &aad(id, version),
                buffer,
                &Tag::<Aes256Gcm>::from(*tag),
            )
            .map_err(|_| Error::Decryption {
                id,
                version,
                reason: AUTH_FAILED,
            })
    }
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher").finish_non_exhaustive()
    }
}

/// A fresh random key for `CIPHER_KEY`: 32 bytes from the operating
/// system's CSPRNG, in standard base64 with padding (44 characters).
pub fn generate_cipher_key() -> Result<String> {
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| Error::Random {
        reason: format!("cannot draw a key: {e}"),
    })?;
    Ok(STANDARD.encode(key))
}

/// The start of the associated data of a wrapped data key.
const DATA_KEY_AAD: &[u8] = b"eventsourcing-data-key";

/// The associated data that binds a wrapped data key to its aggregate.
fn data_key_aad(id: Uuid) -> [u8; 38] {
    let mut aad = [0u8; 38];
    aad[..22].copy_from_slice(DATA_KEY_AAD);
    aad[22..].copy_from_slice(id.as_bytes());
    aad
}

/// The associated data that binds a ciphertext to its row.
fn aad(id: Uuid, version: u64) -> [u8; 24] {
    let mut aad = [0u8; 24];
    aad[..16].copy_from_slice(id.as_bytes());
    aad[16..].copy_from_slice(&version.to_be_bytes());
    aad
}

/// Splits `nonce ‖ ciphertext ‖ tag`.
fn split_payload(
    id: Uuid,
    version: u64,
    payload: &[u8],
) -> Result<([u8; NONCE_LEN], &[u8], [u8; TAG_LEN])> {
    let too_short = || {
        corrupt(
            id,
            version,
            format!(
                "encrypted payload is {} bytes, shorter than nonce and tag ({OVERHEAD} bytes)",
                payload.len()
            ),
        )
    };
    let (nonce, rest) = payload
        .split_first_chunk::<NONCE_LEN>()
        .ok_or_else(too_short)?;
    let (body, tag) = rest.split_last_chunk::<TAG_LEN>().ok_or_else(too_short)?;
    Ok((*nonce, body, *tag))
}

fn corrupt(id: Uuid, version: u64, reason: String) -> Error {
    Error::Corrupt {
        id,
        version,
        reason,
    }
}

fn config(reason: String) -> Error {
    Error::Config {
        variable: CIPHER_KEY,
        reason,
    }
}

/// Says what is wrong with a base64 key without quoting any of it.
fn describe_base64(error: &base64::DecodeError) -> String {
    use base64::DecodeError as E;
    let what = match error {
        E::InvalidByte(offset, byte) if byte.is_ascii_whitespace() => {
            format!("whitespace at offset {offset}")
        }
        E::InvalidByte(offset, _) => {
            format!("a character outside the base64 alphabet at offset {offset}")
        }
        E::InvalidLength(len) => format!("a length of {len} symbols, which no base64 text has"),
        E::InvalidLastSymbol(offset, _) => {
            format!("a last symbol at offset {offset} with bits that are not zero")
        }
        E::InvalidPadding => "missing or wrong `=` padding".to_owned(),
    };
    format!(
        "not standard base64 with padding: {what}; expected the 44-character encoding of \
         {KEY_LEN} random bytes, such as `generate_cipher_key()` makes"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_is_id_then_big_endian_version() {
        let id = Uuid::from_bytes([9; 16]);
        let aad = aad(id, 0x0102_0304_0506_0708);
        assert_eq!(&aad[..16], &[9; 16]);
        assert_eq!(&aad[16..], &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn open_in_place_returns_the_plaintext_range() {
        let cipher = Cipher::new([3; 32]);
        let id = Uuid::from_bytes([1; 16]);
        let mut out = vec![0xAA];
        cipher.encrypt(id, 5, b"hello", &mut out).unwrap();
        assert_eq!(out.len(), 1 + OVERHEAD + 5);
        let range = cipher.open_in_place(id, 5, &mut out[1..]).unwrap();
        assert_eq!(range, NONCE_LEN..NONCE_LEN + 5);
        assert_eq!(&out[1..][range], b"hello");
    }

    #[test]
    fn seal_in_place_refuses_a_start_past_the_end() {
        let cipher = Cipher::new([3; 32]);
        let mut out = vec![0; 4];
        let err = cipher
            .seal_in_place(Uuid::nil(), 1, &mut out, 10)
            .unwrap_err();
        assert!(matches!(err, Error::Mapping { .. }), "{err:?}");
    }

    #[test]
    fn data_keys_round_trip_and_stay_with_their_aggregate() {
        let app = Cipher::new([5; 32]);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (key, wrapped) = app.new_data_key(a).unwrap();
        assert_eq!(wrapped.len(), 60);
        let unwrapped = app.unwrap_data_key(a, &wrapped).unwrap();
        let mut out = Vec::new();
        key.encrypt(a, 1, b"data", &mut out).unwrap();
        assert_eq!(unwrapped.decrypt(a, 1, &out).unwrap(), b"data");
        assert!(matches!(
            app.unwrap_data_key(b, &wrapped),
            Err(Error::DataKey { .. })
        ));
        assert!(matches!(
            Cipher::new([6; 32]).unwrap_data_key(a, &wrapped),
            Err(Error::DataKey { .. })
        ));
        assert!(matches!(
            app.unwrap_data_key(a, &wrapped[..59]),
            Err(Error::DataKey { .. })
        ));
    }

    #[test]
    fn fingerprint_is_sixteen_hex_digits_of_the_sha256() {
        let fingerprint = Cipher::new([0; 32]).fingerprint();
        // SHA-256 of 32 zero bytes begins 66687aadf862bd77.
        assert_eq!(fingerprint.as_str(), "66687aadf862bd77");
    }

    #[test]
    fn base64_messages_do_not_quote_the_key() {
        let err = Cipher::from_base64("Zm9v!mFy").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("CIPHER_KEY"), "{message}");
        assert!(!message.contains("Zm9v"), "{message}");
        assert!(!message.contains('!'), "{message}");
    }
}
