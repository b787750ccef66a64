//! zlib (RFC 1950) for record bodies: one compressor and one decompressor
//! cached per thread, and a guard against decompression bombs.

use std::cell::Cell;

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

use super::{MIN_BODY_LEN, fixed_deflate};

/// The largest body decoding inflates: a guard against decompression bombs
/// (deflate expands up to about 1000 times). Encoding never compresses a
/// larger body, so everything the mapper writes it can read back.
pub(super) const MAX_INFLATED_LEN: usize = 1 << 30;

/// An upper bound of the zlib stream of `len` bytes (zlib's `compressBound`).
pub(super) fn deflate_bound(len: usize) -> usize {
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

/// Appends the zlib stream of the concatenated `parts` to `out`: up to
/// [`fixed_deflate::MAX_LEN`] bytes with fixed codes and no tables to
/// reset, more with the general deflater.
pub(super) fn deflate(parts: &[&[u8]], out: &mut Vec<u8>) -> std::result::Result<(), String> {
    if parts.iter().map(|part| part.len()).sum::<usize>() <= fixed_deflate::MAX_LEN {
        fixed_deflate::deflate(parts, out);
        return Ok(());
    }
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
#[cfg(test)]
pub(super) fn inflate(input: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    inflate_into(input, &mut out)?;
    Ok(out)
}

/// [`inflate`] into `out` (emptied first), so that a reader of many
/// records reuses one buffer.
pub(super) fn inflate_into(input: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
    with_cached(
        &INFLATER,
        || Decompress::new(true),
        |decompress| decompress.reset(true),
        |decompress| inflate_with(decompress, input, out),
    )
}

fn inflate_with(
    decompress: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    out.clear();
    // JSON usually compresses three to five times.
    out.reserve(
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
            .decompress_vec(rest, out, FlushDecompress::None)
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
    Ok(())
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
