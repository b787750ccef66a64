//! The mapper and cipher against FORMAT.md: round trips, exact bytes, and
//! every way a stored record can be wrong.

use std::borrow::Cow;

use eventsourcing::{
    Cipher, Compression, Error, Hash, Mapper, RecordedEvent, StoredEvent, Uuid, generate_cipher_key,
};
use proptest::prelude::*;

const KEY: [u8; 32] = [7; 32];
const OTHER_KEY: [u8; 32] = [8; 32];
const AUTH_FAILED: &str =
    "authentication failed: wrong key, tampered record or record moved from another row";

fn id() -> Uuid {
    Uuid::from_bytes([
        0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30,
        0xc8,
    ])
}

fn event_with(version: u64, data: &[u8]) -> RecordedEvent {
    RecordedEvent::new(
        id(),
        version,
        Cow::Borrowed("World.SomethingHappened"),
        1_700_000_000_123_456,
        Hash([0x5a; 32]),
        data.to_vec(),
    )
}

fn event() -> RecordedEvent {
    event_with(
        3,
        br#"{"what":"dinosaurs, dinosaurs, dinosaurs, dinosaurs, dinosaurs and trucks"}"#,
    )
}

/// The four configurations, each with the flags byte it must write.
fn configurations() -> Vec<(&'static str, Mapper, u8)> {
    vec![
        ("plain", Mapper::new(), 0x00),
        (
            "zlib",
            Mapper::new().with_compression(Compression::Zlib),
            0x01,
        ),
        ("cipher", Mapper::new().with_cipher(Cipher::new(KEY)), 0x02),
        (
            "cipher+zlib",
            Mapper::new()
                .with_cipher(Cipher::new(KEY))
                .with_compression(Compression::Zlib),
            0x03,
        ),
    ]
}

fn encrypted() -> Mapper {
    Mapper::new().with_cipher(Cipher::new(KEY))
}

fn with_state(stored: &StoredEvent, state: Vec<u8>) -> StoredEvent {
    StoredEvent {
        state,
        ..stored.clone()
    }
}

#[track_caller]
fn assert_corrupt(result: Result<RecordedEvent, Error>, version: u64, needle: &str) {
    match result {
        Err(Error::Corrupt {
            id: got_id,
            version: got_version,
            reason,
        }) => {
            assert_eq!(got_id, id());
            assert_eq!(got_version, version);
            assert!(
                reason.contains(needle),
                "reason {reason:?} does not mention {needle:?}"
            );
        }
        other => panic!("expected Error::Corrupt mentioning {needle:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_decryption(result: Result<RecordedEvent, Error>, row: (Uuid, u64), expected: &str) {
    match result {
        Err(Error::Decryption {
            id: got_id,
            version: got_version,
            reason,
        }) => {
            assert_eq!((got_id, got_version), row);
            assert_eq!(reason, expected);
        }
        other => panic!("expected Error::Decryption {expected:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_config(result: Result<Cipher, Error>, needle: &str) {
    match result {
        Err(error @ Error::Config { variable, .. }) => {
            assert_eq!(variable, "CIPHER_KEY");
            let message = error.to_string();
            assert!(
                message.contains("CIPHER_KEY") && message.contains(needle),
                "message {message:?} does not mention CIPHER_KEY and {needle:?}"
            );
        }
        other => panic!("expected Error::Config for CIPHER_KEY, got {other:?}"),
    }
}

// ---------------------------------------------------------------- round trips

#[test]
fn round_trip_in_all_four_configurations() {
    let event = event();
    for (name, mapper, flags) in configurations() {
        let stored = mapper.encode(&event).unwrap();
        assert_eq!(stored.state[0], flags, "{name}: flags byte");
        assert_eq!(stored.originator_id, event.originator_id, "{name}");
        assert_eq!(
            stored.originator_version, event.originator_version,
            "{name}"
        );
        assert_eq!(stored.topic, "World.SomethingHappened", "{name}");
        assert_eq!(mapper.decode(stored.clone()).unwrap(), event, "{name}");
        assert_eq!(mapper.decode_checked(stored).unwrap(), event, "{name}");
    }
}

#[test]
fn empty_data_round_trips() {
    let event = event_with(1, b"");
    for (name, mapper, _) in configurations() {
        let stored = mapper.encode(&event).unwrap();
        assert_eq!(mapper.decode_checked(stored).unwrap(), event, "{name}");
    }
}

#[test]
fn plain_state_is_flags_then_the_body_byte_for_byte() {
    let event = event();
    let stored = Mapper::new().encode(&event).unwrap();
    let mut expected = vec![0x00];
    expected.extend_from_slice(&[0x5a; 32]);
    expected.extend_from_slice(&1_700_000_000_123_456_i64.to_be_bytes());
    expected.extend_from_slice(
        br#"{"what":"dinosaurs, dinosaurs, dinosaurs, dinosaurs, dinosaurs and trucks"}"#,
    );
    expected.extend_from_slice(&event.event_hash.0);
    assert_eq!(stored.state, expected);
}

#[test]
fn negative_timestamps_are_signed_big_endian() {
    let mut event = event();
    event.timestamp = -2;
    event.event_hash = eventsourcing::format::event_hash(
        event.originator_id,
        event.originator_version,
        &event.topic,
        &event.previous_hash,
        event.timestamp,
        &event.data,
    );
    let stored = Mapper::new().encode(&event).unwrap();
    assert_eq!(
        &stored.state[33..41],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]
    );
    assert_eq!(Mapper::new().decode_checked(stored).unwrap(), event);
}

/// Reads every configuration with nothing but FORMAT.md and off-the-shelf
/// zlib and AES-GCM, as an independent program in another language would.
#[test]
fn an_independent_reader_following_format_md_reads_every_configuration() {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use std::io::Read;

    let event = event();
    let mut expected_body = Vec::new();
    expected_body.extend_from_slice(&event.previous_hash.0);
    expected_body.extend_from_slice(&event.timestamp.to_be_bytes());
    expected_body.extend_from_slice(&event.data);
    expected_body.extend_from_slice(&event.event_hash.0);

    for (name, mapper, flags) in configurations() {
        let stored = mapper.encode(&event).unwrap();
        let mut payload = stored.state[1..].to_vec();
        if flags & 0x02 != 0 {
            let mut aad = stored.originator_id.as_bytes().to_vec();
            aad.extend_from_slice(&stored.originator_version.to_be_bytes());
            let key = aes_gcm::Aes256Gcm::new(&KEY.into());
            let (nonce, ciphertext) = payload.split_at(12);
            payload = key
                .decrypt(
                    nonce.into(),
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .unwrap();
        }
        if flags & 0x01 != 0 {
            let mut inflated = Vec::new();
            flate2::read::ZlibDecoder::new(&payload[..])
                .read_to_end(&mut inflated)
                .unwrap();
            payload = inflated;
        }
        assert_eq!(payload, expected_body, "{name}");
    }
}

#[test]
fn decode_follows_the_record_flags_not_the_mapper_settings() {
    let event = event();
    let compressed = Mapper::new()
        .with_compression(Compression::Zlib)
        .encode(&event)
        .unwrap();
    assert_eq!(Mapper::new().decode(compressed).unwrap(), event);
    let encrypted_record = encrypted().encode(&event).unwrap();
    let reader = Mapper::new()
        .with_cipher(Cipher::new(KEY))
        .with_compression(Compression::Zlib);
    assert_eq!(reader.decode(encrypted_record).unwrap(), event);
}

#[test]
fn mapper_is_send_sync_and_clones_share_the_key() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Mapper>();
    assert_send_sync::<Cipher>();

    let mapper = encrypted();
    let clone = mapper.clone();
    let stored = mapper.encode(&event()).unwrap();
    let handle = std::thread::spawn(move || clone.decode(stored));
    assert_eq!(handle.join().unwrap().unwrap(), event());
}

// ------------------------------------------------------------ malformed rows

#[test]
fn empty_state_is_corrupt() {
    for (_, mapper, _) in configurations() {
        let stored = with_state(&mapper.encode(&event()).unwrap(), Vec::new());
        assert_corrupt(mapper.decode(stored), 3, "empty");
    }
}

#[test]
fn truncated_plain_body_is_corrupt() {
    let mapper = Mapper::new();
    let event = event_with(1, b"");
    let stored = mapper.encode(&event).unwrap();
    assert_eq!(stored.state.len(), 1 + 72);
    for len in 1..stored.state.len() {
        let truncated = with_state(&stored, stored.state[..len].to_vec());
        assert_corrupt(mapper.decode(truncated), 1, "truncated");
    }
    // The full 73 bytes are the shortest valid record.
    assert_eq!(mapper.decode_checked(stored).unwrap(), event);
}

#[test]
fn truncated_encrypted_payload_is_corrupt_or_fails_to_authenticate() {
    let mapper = encrypted();
    let stored = mapper.encode(&event()).unwrap();
    // flags + fewer than nonce (12) + tag (16) bytes
    for len in 1..=28 {
        let truncated = with_state(&stored, stored.state[..len].to_vec());
        assert_corrupt(mapper.decode(truncated), 3, "shorter than nonce and tag");
    }
    for cut in 1..=16 {
        let len = stored.state.len() - cut;
        let truncated = with_state(&stored, stored.state[..len].to_vec());
        assert_decryption(mapper.decode(truncated), (id(), 3), AUTH_FAILED);
    }
}

#[test]
fn truncated_or_extended_compressed_stream_is_corrupt() {
    let mapper = Mapper::new().with_compression(Compression::Zlib);
    let stored = mapper.encode(&event()).unwrap();
    for len in 1..stored.state.len() {
        let truncated = with_state(&stored, stored.state[..len].to_vec());
        assert!(
            matches!(mapper.decode(truncated), Err(Error::Corrupt { id: i, version: 3, .. }) if i == id()),
            "compressed state cut to {len} bytes was not refused as corrupt"
        );
    }
    let mut extended = stored.state.clone();
    extended.extend_from_slice(b"junk");
    assert_corrupt(
        mapper.decode(with_state(&stored, extended)),
        3,
        "4 trailing bytes",
    );
}

#[test]
fn compressed_flag_on_an_uncompressed_body_is_corrupt() {
    let mapper = Mapper::new();
    let mut state = mapper.encode(&event()).unwrap().state;
    state[0] = 0x01;
    let stored = with_state(&mapper.encode(&event()).unwrap(), state);
    assert_corrupt(mapper.decode(stored), 3, "compressed stream");
}

#[test]
fn unknown_flag_bits_are_corrupt_and_named() {
    let mapper = Mapper::new();
    let stored = mapper.encode(&event()).unwrap();
    // 0x04 (a data key, FORMAT.md version 2) is known, but never without
    // 0x02.
    for (flags, named) in [
        (0x04, "0x04"),
        (0x08, "0x08"),
        (0x80, "0x80"),
        (0xff, "0xf8"),
        (0x41, "0x40"),
    ] {
        let mut state = stored.state.clone();
        state[0] = flags;
        assert_corrupt(mapper.decode(with_state(&stored, state)), 3, named);
    }
}

#[test]
fn data_that_is_not_utf8_is_corrupt() {
    let mapper = Mapper::new();
    let event = event_with(2, b"{\"a\":\"\xff\"}");
    let stored = mapper.encode(&event).unwrap();
    assert_corrupt(mapper.decode(stored), 2, "not UTF-8");
}

#[test]
fn decode_leaves_the_hash_to_replay_and_decode_checked_checks_it() {
    let mapper = Mapper::new();
    let stored = mapper.encode(&event()).unwrap();
    let mut state = stored.state.clone();
    // Inside the data: `dinosaurs` becomes `dinosaura`, still valid UTF-8.
    let at = 1 + 40 + br#"{"what":"dinosaur"#.len();
    state[at] = b'a';
    let tampered = with_state(&stored, state);

    let decoded = mapper.decode(tampered.clone()).unwrap();
    assert_ne!(decoded.data, event().data);
    assert!(matches!(
        decoded.check_hash(),
        Err(Error::Integrity { version: 3, .. })
    ));
    assert!(matches!(
        mapper.decode_checked(tampered),
        Err(Error::Integrity { version: 3, .. })
    ));
}

// ---------------------------------------------------------------- encryption

#[test]
fn wrong_key_fails_to_decrypt() {
    let stored = encrypted().encode(&event()).unwrap();
    let other = Mapper::new().with_cipher(Cipher::new(OTHER_KEY));
    assert_decryption(other.decode(stored), (id(), 3), AUTH_FAILED);
}

#[test]
fn ciphertext_moved_to_another_row_fails_to_decrypt() {
    let mapper = encrypted();
    let stored = mapper.encode(&event()).unwrap();

    let other_id = Uuid::from_bytes([1; 16]);
    let moved = StoredEvent {
        originator_id: other_id,
        ..stored.clone()
    };
    assert_decryption(mapper.decode(moved), (other_id, 3), AUTH_FAILED);

    let moved = StoredEvent {
        originator_version: 4,
        ..stored.clone()
    };
    assert_decryption(mapper.decode(moved), (id(), 4), AUTH_FAILED);

    // The topic is not bound by the AAD: the event hash covers it instead.
    let moved = StoredEvent {
        topic: "World.Other".into(),
        ..stored
    };
    assert!(matches!(
        mapper.decode_checked(moved),
        Err(Error::Integrity { version: 3, .. })
    ));
}

#[test]
fn plaintext_records_are_refused_with_a_key_unless_allowed() {
    let event = event();
    for plain_writer in [
        Mapper::new(),
        Mapper::new().with_compression(Compression::Zlib),
    ] {
        let stored = plain_writer.encode(&event).unwrap();
        assert_decryption(
            encrypted().decode(stored.clone()),
            (id(), 3),
            "record is not encrypted and plaintext records are not allowed",
        );
        assert_decryption(
            encrypted().allow_plaintext(false).decode(stored.clone()),
            (id(), 3),
            "record is not encrypted and plaintext records are not allowed",
        );
        let lenient = encrypted().allow_plaintext(true);
        assert_eq!(lenient.decode(stored).unwrap(), event);
        // Allowing plaintext changes nothing for what is written.
        assert_eq!(lenient.encode(&event).unwrap().state[0], 0x02);
    }
}

#[test]
fn encrypted_record_without_a_key_is_refused() {
    for writer in [encrypted(), encrypted().with_compression(Compression::Zlib)] {
        let stored = writer.encode(&event()).unwrap();
        for reader in [
            Mapper::new(),
            Mapper::new().allow_plaintext(true),
            Mapper::new().with_compression(Compression::Zlib),
        ] {
            assert_decryption(
                reader.decode(stored.clone()),
                (id(), 3),
                "record is encrypted but no cipher key is configured",
            );
        }
    }
}

#[test]
fn encrypted_state_does_not_contain_the_plaintext() {
    let data = br#"{"secret":"the quick brown fox jumps over the lazy dog"}"#;
    let event = event_with(5, data);
    for mapper in [encrypted(), encrypted().with_compression(Compression::Zlib)] {
        let state = mapper.encode(&event).unwrap().state;
        for window in [
            &data[..],
            b"secret",
            b"quick brown",
            &event.event_hash.0[..],
        ] {
            assert!(
                !state.windows(window.len()).any(|w| w == window),
                "encrypted state contains {:?}",
                String::from_utf8_lossy(window)
            );
        }
        assert!(!state.windows(32).any(|w| w == [0x5a; 32]));
    }
}

#[test]
fn every_encryption_uses_a_fresh_nonce() {
    let mapper = encrypted();
    let event = event();
    let first = mapper.encode(&event).unwrap().state;
    let second = mapper.encode(&event).unwrap().state;
    assert_eq!(first.len(), second.len());
    assert_ne!(first[1..13], second[1..13], "nonces repeat");
    assert_ne!(first[13..], second[13..], "ciphertexts repeat");
    let nonces: std::collections::HashSet<Vec<u8>> = (0..100)
        .map(|_| mapper.encode(&event).unwrap().state[1..13].to_vec())
        .collect();
    assert_eq!(nonces.len(), 100);
}

#[test]
fn encrypted_layout_is_flags_nonce_ciphertext_tag() {
    let event = event();
    let stored = encrypted().encode(&event).unwrap();
    // flags + nonce + body (72 + data) + tag
    assert_eq!(stored.state.len(), 1 + 12 + 72 + event.data.len() + 16);
}

#[test]
fn cipher_encrypts_and_decrypts_payloads_bound_to_their_row() {
    let cipher = Cipher::new(KEY);
    let mut out = b"prefix".to_vec();
    cipher.encrypt(id(), 9, b"hello world", &mut out).unwrap();
    assert_eq!(&out[..6], b"prefix", "encrypt appends");
    let payload = &out[6..];
    assert_eq!(payload.len(), 12 + 11 + 16);
    assert_eq!(cipher.decrypt(id(), 9, payload).unwrap(), b"hello world");
    assert!(matches!(
        cipher.decrypt(id(), 10, payload),
        Err(Error::Decryption {
            version: 10,
            reason: AUTH_FAILED,
            ..
        })
    ));
    assert!(matches!(
        Cipher::new(OTHER_KEY).decrypt(id(), 9, payload),
        Err(Error::Decryption { version: 9, .. })
    ));
    assert!(matches!(
        cipher.decrypt(id(), 9, &payload[..27]),
        Err(Error::Corrupt { version: 9, .. })
    ));
    // An empty plaintext is nonce and tag alone.
    let mut empty = Vec::new();
    cipher.encrypt(id(), 1, b"", &mut empty).unwrap();
    assert_eq!(empty.len(), 28);
    assert_eq!(cipher.decrypt(id(), 1, &empty).unwrap(), b"");
}

#[test]
fn debug_never_shows_the_key() {
    let cipher = Cipher::new([0xab; 32]);
    assert_eq!(format!("{cipher:?}"), "Cipher { .. }");
    let shown = format!("{:?}", Mapper::new().with_cipher(cipher));
    assert!(shown.contains("Cipher { .. }"), "{shown}");
    assert!(
        !shown.contains("171") && !shown.to_lowercase().contains("ab, "),
        "{shown}"
    );
}

// ---------------------------------------------------------------------- keys

#[test]
fn cipher_key_must_be_padded_standard_base64_of_32_bytes() {
    let good = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let from_good = Mapper::new().with_cipher(Cipher::from_base64(good).unwrap());
    let stored = encrypted().encode(&event()).unwrap();
    assert_eq!(
        from_good.decode(stored).unwrap(),
        event(),
        "same key as KEY"
    );

    assert_config(
        Cipher::from_base64("not base64 at all!"),
        "not standard base64",
    );
    assert_config(Cipher::from_base64(""), "0 bytes");
    // 31 and 33 bytes.
    assert_config(
        Cipher::from_base64("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBw=="),
        "31 bytes",
    );
    assert_config(
        Cipher::from_base64("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH"),
        "33 bytes",
    );
    // Unpadded, URL-safe alphabet, surrounding whitespace.
    assert_config(
        Cipher::from_base64("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc"),
        "not standard base64",
    );
    assert_config(
        Cipher::from_base64("-wcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="),
        "not standard base64",
    );
    assert_config(Cipher::from_base64(&format!("{good}\n")), "whitespace");
    assert_config(Cipher::from_base64(&format!(" {good}")), "whitespace");
}

#[test]
fn generated_keys_round_trip_and_differ() {
    let key = generate_cipher_key().unwrap();
    assert_eq!(key.len(), 44);
    assert!(key.ends_with('='));
    let writer = Mapper::new().with_cipher(Cipher::from_base64(&key).unwrap());
    let reader = Mapper::new().with_cipher(Cipher::from_base64(&key).unwrap());
    let stored = writer.encode(&event()).unwrap();
    assert_eq!(reader.decode_checked(stored.clone()).unwrap(), event());

    let other = generate_cipher_key().unwrap();
    assert_ne!(key, other);
    let stranger = Mapper::new().with_cipher(Cipher::from_base64(&other).unwrap());
    assert_decryption(stranger.decode(stored), (id(), 3), AUTH_FAILED);
}

// ---------------------------------------------------------------- properties

prop_compose! {
    fn any_event()(
        id in any::<[u8; 16]>(),
        version in any::<u64>(),
        topic in ".*",
        timestamp in any::<i64>(),
        previous_hash in any::<[u8; 32]>(),
        data in ".*",
    ) -> RecordedEvent {
        RecordedEvent::new(
            Uuid::from_bytes(id),
            version,
            Cow::Owned(topic),
            timestamp,
            Hash(previous_hash),
            data.into_bytes(),
        )
    }
}

proptest! {
    #[test]
    fn encode_then_decode_is_the_identity(event in any_event()) {
        for (name, mapper, flags) in configurations() {
            let stored = mapper.encode(&event).unwrap();
            // Compression is used only where it makes the record smaller.
            prop_assert_eq!(stored.state[0] & !0x01, flags & !0x01, "{}", name);
            prop_assert!(stored.state[0] & 0x01 <= flags & 0x01, "{}", name);
            if event.data.len() < 64 {
                prop_assert_eq!(stored.state[0] & 0x01, 0, "{}: too little to compress", name);
            }
            // Never larger than the same record uncompressed.
            let uncompressed = if flags & 0x02 == 0 { Mapper::new() } else { encrypted() };
            prop_assert!(
                stored.state.len() <= uncompressed.encode(&event).unwrap().state.len(),
                "{}", name
            );
            prop_assert_eq!(&mapper.decode_checked(stored).unwrap(), &event, "{}", name);
        }
    }

    #[test]
    fn any_flipped_byte_of_an_encrypted_record_is_refused(
        event in any_event(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        for mapper in [encrypted(), encrypted().with_compression(Compression::Zlib)] {
            let stored = mapper.encode(&event).unwrap();
            let mut state = stored.state.clone();
            let i = at.index(state.len());
            state[i] ^= mask;
            let result = mapper.decode(with_state(&stored, state));
            // Setting the flags' 0x04 bit says the record is under the
            // aggregate's own data key, which this mapper has no store of:
            // refused as a data key error.
            prop_assert!(
                matches!(
                    result,
                    Err(Error::Decryption { .. } | Error::Corrupt { .. } | Error::DataKey { .. })
                ),
                "flipping byte {} with {:#04x} gave {:?}", i, mask, result
            );
            if matches!(result, Err(Error::DataKey { .. })) {
                prop_assert!(i == 0 && mask & 0x04 != 0, "byte {} with {:#04x}", i, mask);
            }
        }
    }

    #[test]
    fn any_flipped_byte_of_a_plain_record_is_detected(
        event in any_event(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let mapper = Mapper::new();
        let stored = mapper.encode(&event).unwrap();
        let mut state = stored.state.clone();
        let i = at.index(state.len());
        state[i] ^= mask;
        let result = mapper.decode(with_state(&stored, state));
        prop_assert!(
            result.as_ref().map_or(true, |decoded| decoded.check_hash().is_err()),
            "flipping byte {} with {:#04x} went unnoticed", i, mask
        );
    }

    /// Deflate has bits that carry nothing (the padding after a stored
    /// block's header, or after the last block), so a flip there leaves the
    /// event as it was; any flip that changes the event is detected.
    #[test]
    fn any_flipped_byte_of_a_compressed_plain_record_is_detected_or_harmless(
        event in any_event(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let mapper = Mapper::new().with_compression(Compression::Zlib);
        let stored = mapper.encode(&event).unwrap();
        let mut state = stored.state.clone();
        let i = at.index(state.len());
        state[i] ^= mask;
        match mapper.decode(with_state(&stored, state)) {
            Err(_) => {}
            Ok(decoded) => prop_assert!(
                decoded.check_hash().is_err() || decoded == event,
                "flipping byte {} with {:#04x} changed the event unnoticed", i, mask
            ),
        }
    }
}
