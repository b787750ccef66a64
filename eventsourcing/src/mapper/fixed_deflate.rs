//! A zlib stream (RFC 1950) of a small record body: one deflate block with
//! the fixed Huffman codes (RFC 1951, 3.2.6), matches found through a
//! small table that is never cleared.
//!
//! Why not the general deflater for these: it keeps a hash table of 64 Ki
//! entries and clears it at the start of every stream, and for a body of a
//! couple of hundred bytes the clearing is most of the work (callgrind,
//! sealing records with 85 bytes of data under cipher and zlib: 198,000
//! instructions each with the general deflater, 9,400 with this one). The
//! general deflater at the fastest
//! level, which the mapper asks for, writes fixed codes as well, so the
//! streams are the same size (within 2% on JSON from 100 bytes to 2 KiB).
//! Every zlib reader inflates what this writes; `open` reads it with the
//! same inflater as any other body.

use std::cell::Cell;

/// The largest input written here; larger ones go to the general
/// deflater, whose reset is then a small part of the work.
pub(super) const MAX_LEN: usize = 4096;

/// Matches start at four equal bytes (deflate allows three; four hash in
/// one load and lose little on JSON).
const MIN_MATCH: usize = 4;
const MAX_MATCH: usize = 258;
const HASH_BITS: u32 = 10;
/// Matches up to this long have the positions they cover indexed.
const MAX_INDEXED: usize = 16;

// Casts to narrower integers below are of values bounded by construction:
// symbols below 288, extra values below 32, positions and distances below
// `MAX_LEN` (the caller's guarantee, checked in debug builds).

/// Lengths 3..=258 by length code (257 + index): base and extra bits.
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];

/// The fixed literal/length code of each symbol 0..=287, bit-reversed so
/// that it can be written least significant bit first, and its length.
#[allow(clippy::cast_possible_truncation)]
const LITLEN: [(u16, u8); 288] = {
    let mut table = [(0u16, 0u8); 288];
    let mut symbol = 0;
    while symbol < 288 {
        let (code, len) = match symbol {
            0..=143 => (0x30 + symbol, 8),
            144..=255 => (0x190 + symbol - 144, 9),
            256..=279 => (symbol - 256, 7),
            _ => (0xC0 + symbol - 280, 8),
        };
        table[symbol] = (reverse(code as u16, len), len);
        symbol += 1;
    }
    table
};

/// For each match length 0..=258 (0..=2 unused): the bit-reversed code of
/// its symbol, the code's length, the number of extra bits, and the extra
/// bits' value.
#[allow(clippy::cast_possible_truncation)]
const LENGTHS: [(u16, u8, u8, u8); MAX_MATCH + 1] = {
    let mut table = [(0u16, 0u8, 0u8, 0u8); MAX_MATCH + 1];
    let mut index = 0;
    while index < 29 {
        let base = LEN_BASE[index] as usize;
        let span = if index == 28 {
            1
        } else {
            1 << LEN_EXTRA[index]
        };
        let (code, len) = LITLEN[257 + index];
        let mut length = base;
        while length < base + span {
            table[length] = (code, len, LEN_EXTRA[index], (length - base) as u8);
            length += 1;
        }
        index += 1;
    }
    table
};

/// `code`'s low `len` bits in reverse order.
const fn reverse(code: u16, len: u8) -> u16 {
    code.reverse_bits() >> (16 - len as u32)
}

/// Bits gathered least significant first, flushed by whole bytes.
struct Bits<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    count: u32,
}

impl Bits<'_> {
    /// Appends the low `count` bits of `value` (`count` ≤ 32).
    #[inline]
    fn put(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.count;
        self.count += count;
        if self.count >= 32 {
            self.out.extend_from_slice(&self.acc.to_le_bytes()[..4]);
            self.acc >>= 32;
            self.count -= 32;
        }
    }

    /// Writes what is left, padded with zero bits to a byte.
    fn finish(self) {
        let bytes = self.count.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
    }
}

/// Positions by hash of the four bytes there. Kept from record to record
/// and never cleared: an entry at or past the current position is ignored,
/// and any other is compared byte for byte before it is used.
type Table = [u16; 1 << HASH_BITS];

/// A thread's buffers: the parts of a body joined, and the match table.
struct Scratch {
    joined: Vec<u8>,
    table: Box<Table>,
}

thread_local! {
    static SCRATCH: Cell<Option<Scratch>> = const { Cell::new(None) };
}

/// Appends the zlib stream of the concatenated `parts` (at most
/// [`MAX_LEN`] bytes in all) to `out`.
pub(super) fn deflate(parts: &[&[u8]], out: &mut Vec<u8>) {
    let mut scratch = SCRATCH
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_else(|| Scratch {
            joined: Vec::with_capacity(MAX_LEN),
            table: Box::new([u16::MAX; 1 << HASH_BITS]),
        });
    scratch.joined.clear();
    for part in parts {
        scratch.joined.extend_from_slice(part);
    }
    deflate_joined(&scratch.joined, &mut scratch.table, out);
    // Fails only while the thread is exiting; the buffers are then dropped.
    let _ = SCRATCH.try_with(|cell| cell.set(Some(scratch)));
}

#[allow(clippy::cast_possible_truncation)]
fn deflate_joined(input: &[u8], table: &mut Table, out: &mut Vec<u8>) {
    debug_assert!(input.len() <= MAX_LEN);
    // Fixed codes spend at most 9 bits a byte; header, block marks and
    // checksum fit in 16 bytes.
    out.reserve(input.len() + input.len() / 8 + 16);
    // CMF 0x78: deflate with a 32 KiB window; FLG 0x01: fastest level, no
    // dictionary, and CMF·256 + FLG divisible by 31.
    out.extend_from_slice(&[0x78, 0x01]);
    let mut bits = Bits {
        out,
        acc: 0,
        count: 0,
    };
    // The last block (1), compressed with fixed codes (01).
    bits.put(0b011, 3);

    let n = input.len();
    let mut literal_from = 0;
    let mut at = 0;
    while at + MIN_MATCH <= n {
        let here = four(input, at);
        let slot = hash(here);
        let from = usize::from(table[slot]);
        table[slot] = at as u16;
        // Most candidates are stale or collide: four bytes settle it.
        let length = if from < at && four(input, from) == here {
            match_length(input, from, at)
        } else {
            0
        };
        if length < MIN_MATCH {
            at += 1;
            continue;
        }
        put_literals(&mut bits, &input[literal_from..at]);
        put_match(&mut bits, length, at - from);
        // Index the positions a short match covers, so later data can
        // refer to them; a long one is a run, and indexing it all would cost
        // more than the matches it could add.
        let end = at + length;
        let mut inside = at + 1;
        while inside < end && length <= MAX_INDEXED && inside + MIN_MATCH <= n {
            table[hash(four(input, inside))] = inside as u16;
            inside += 1;
        }
        at = end;
        literal_from = end;
    }
    put_literals(&mut bits, &input[literal_from..]);
    let (end_code, end_len) = LITLEN[256];
    bits.put(u32::from(end_code), u32::from(end_len));
    bits.finish();
    out.extend_from_slice(&adler2::adler32_slice(input).to_be_bytes());
}

/// The four bytes at `at`, as one number.
#[inline]
fn four(input: &[u8], at: usize) -> u32 {
    let mut bytes = [0; 4];
    bytes.copy_from_slice(&input[at..at + 4]);
    u32::from_le_bytes(bytes)
}

#[inline]
fn hash(four: u32) -> usize {
    (four.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

/// How many bytes from `at` equal those from `from` (< `at`), up to
/// [`MAX_MATCH`]: eight at a time, then the first that differs.
#[inline]
fn match_length(input: &[u8], from: usize, at: usize) -> usize {
    let limit = (input.len() - at).min(MAX_MATCH);
    let mut length = 0;
    while length + 8 <= limit {
        let a = word(input, from + length);
        let b = word(input, at + length);
        if a != b {
            return length + ((a ^ b).trailing_zeros() / 8) as usize;
        }
        length += 8;
    }
    while length < limit && input[from + length] == input[at + length] {
        length += 1;
    }
    length
}

#[inline]
fn word(input: &[u8], at: usize) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&input[at..at + 8]);
    u64::from_le_bytes(bytes)
}

fn put_literals(bits: &mut Bits<'_>, literals: &[u8]) {
    for &byte in literals {
        let (code, len) = LITLEN[usize::from(byte)];
        bits.put(u32::from(code), u32::from(len));
    }
}

#[allow(clippy::cast_possible_truncation)]
fn put_match(bits: &mut Bits<'_>, length: usize, distance: usize) {
    let (code, len, extra_bits, extra_value) = LENGTHS[length];
    bits.put(u32::from(code), u32::from(len));
    if extra_bits > 0 {
        bits.put(u32::from(extra_value), u32::from(extra_bits));
    }
    // Distance codes: 0..=3 for 1..=4, then two codes per power of two.
    let x = (distance - 1) as u32;
    let (symbol, extra_bits, extra_value) = if x < 4 {
        (x, 0, 0)
    } else {
        let top = x.ilog2();
        let extra_bits = top - 1;
        (
            2 * top + ((x >> extra_bits) & 1),
            extra_bits,
            x & ((1 << extra_bits) - 1),
        )
    };
    bits.put(u32::from(reverse(symbol as u16, 5)), 5);
    if extra_bits > 0 {
        bits.put(extra_value, extra_bits);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use proptest::prelude::*;

    use super::*;
    use crate::mapper::zlib::inflate;

    fn packed(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        deflate(&[input], &mut out);
        out
    }

    /// The general deflater's stream of `input`, at the fastest level.
    fn general(input: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(input).unwrap();
        encoder.finish().unwrap()
    }

    /// Bytes that look like no others: a stand-in for hashes.
    fn noise(len: usize, seed: u32) -> Vec<u8> {
        (0..u32::try_from(len).unwrap())
            .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
            .collect()
    }

    /// A record body as the mapper writes one: previous hash, timestamp,
    /// JSON, hash.
    fn body(json: &str, seed: u32) -> Vec<u8> {
        let mut body = noise(32, seed);
        body.extend_from_slice(&1_764_460_800_000_000_i64.to_be_bytes());
        body.extend_from_slice(json.as_bytes());
        body.extend_from_slice(&noise(32, seed.wrapping_add(7)));
        body
    }

    #[test]
    fn every_length_and_distance_class_inflates_back() {
        let lengths = (MIN_MATCH..=MAX_MATCH).collect::<Vec<_>>();
        let distances = [
            1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 17, 24, 25, 32, 33, 48, 49,
        ]
        .into_iter()
        .chain([
            64, 65, 96, 97, 128, 129, 192, 193, 256, 257, 384, 385, 512, 513, 766,
        ])
        .chain([
            767, 768, 769, 1024, 1025, 1536, 1537, 2048, 2049, 3072, 3073, 3800,
        ]);
        for distance in distances {
            for &length in &lengths {
                // `distance` unrepeated bytes, then `length` bytes copied
                // from `distance` back (overlapping when it is shorter).
                let mut input = noise(distance, u32::try_from(distance).unwrap());
                for i in 0..length {
                    input.push(input[i]);
                }
                if input.len() > MAX_LEN {
                    continue;
                }
                assert_eq!(
                    inflate(&packed(&input)).unwrap(),
                    input,
                    "distance {distance}, length {length}"
                );
            }
        }
    }

    #[test]
    fn repeats_are_found_and_shrink_the_stream() {
        let input = b"{\"sku\":\"A-1\",\"qty\":1}".repeat(40);
        let out = packed(&input[..MAX_LEN.min(input.len())]);
        assert!(out.len() * 8 < input.len(), "{} bytes", out.len());
        assert_eq!(inflate(&out).unwrap(), &input[..]);
    }

    #[test]
    fn a_table_left_by_a_longer_record_does_not_mislead_the_next() {
        // The table keeps the first record's positions, some past the end
        // of the second, some pointing at bytes that differ.
        let long = b"0123456789abcdef".repeat(200);
        let short = b"89ab89ab-01234567-cdef";
        assert_eq!(inflate(&packed(&long)).unwrap(), long);
        assert_eq!(inflate(&packed(short)).unwrap(), short);
        assert_eq!(inflate(&packed(&long[..7])).unwrap(), &long[..7]);
    }

    #[test]
    fn empty_and_tiny_inputs_make_valid_streams() {
        for input in [&b""[..], b"a", b"ab", b"abc", b"abcd", b"aaaaa"] {
            assert_eq!(inflate(&packed(input)).unwrap(), input);
        }
        // All byte values, the 9-bit literal codes included.
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(inflate(&packed(&all)).unwrap(), all);
    }

    #[test]
    fn record_bodies_come_out_no_larger_than_the_general_deflater_makes_them() {
        let jsons = [
            r#"{"name":"Alice","email":"alice@example.com","created":true}"#,
            r#"{"order_id":"0195b0a8-3c1e-7a2b-9f00-6b1d2c3e4f50","sku":"widget-42","quantity":3,"price_cents":1999}"#,
            r#"{"lines":[{"sku":"a","qty":1},{"sku":"b","qty":2},{"sku":"c","qty":3},{"sku":"d","qty":4}],"note":"leave at the door, leave at the door"}"#,
        ];
        for (seed, json) in (0..).zip(jsons) {
            let input = body(json, seed);
            let (ours, theirs) = (packed(&input), general(&input));
            assert_eq!(inflate(&ours).unwrap(), input);
            assert!(
                ours.len() <= theirs.len() + 2,
                "{} bytes here, {} by the general deflater, for {json}",
                ours.len(),
                theirs.len()
            );
        }
    }

    proptest! {
        #[test]
        fn any_bytes_inflate_back(input in proptest::collection::vec(any::<u8>(), 0..=MAX_LEN)) {
            prop_assert_eq!(inflate(&packed(&input)).unwrap(), input);
        }

        #[test]
        fn text_of_few_letters_inflates_back(
            input in proptest::collection::vec(prop::sample::select(b"ab{}\":,".to_vec()), 0..=MAX_LEN)
        ) {
            prop_assert_eq!(inflate(&packed(&input)).unwrap(), input);
        }
    }
}
