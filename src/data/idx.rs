//! MNIST's IDX format (u8 images and labels, any number of dimensions), raw or gzip-compressed.
//!
//! Layout: magic `00 00 08 NDIM`, then NDIM big-endian u32 sizes, then the u8 payload.

use std::io::Read;
use std::path::Path;

use super::DataError;

/// The element type code for unsigned bytes, the only one MNIST-style files use.
const TYPE_U8: u8 = 0x08;

/// A decoded IDX file: its dimensions and its u8 payload in row-major order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file from disk, decompressing it when it starts with the gzip magic.
pub fn read_idx_file(path: &Path) -> Result<IdxArray, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_idx(&bytes, &path.display().to_string())
}

/// Parses IDX bytes (raw or gzip); `name` is used in error messages. A gzip stream is read
/// header first and decompressed no further than the payload its dimensions imply (and one
/// byte more, to tell an oversized file), so a small file that inflates to gigabytes of zeros
/// is refused after that, not held in memory whole.
pub fn parse_idx(bytes: &[u8], name: &str) -> Result<IdxArray, DataError> {
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        parse_from(flate2::read::GzDecoder::new(bytes), name)
    } else {
        parse_from(bytes, name)
    }
}

/// Reads `buf.len()` bytes, or fewer at the end of the stream; returns how many.
fn read_up_to(r: &mut impl Read, buf: &mut [u8], name: &str) -> Result<usize, DataError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(gzip_error(name, e)),
        }
    }
    Ok(n)
}

fn gzip_error(name: &str, e: std::io::Error) -> DataError {
    DataError::Format {
        file: name.to_string(),
        what: format!("gzip stream is corrupt or truncated: {e}"),
    }
}

fn parse_from(mut r: impl Read, name: &str) -> Result<IdxArray, DataError> {
    let bad = |what: String| DataError::Format {
        file: name.to_string(),
        what,
    };
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut r, &mut magic, name)?;
    if got < 4 {
        return Err(bad(format!(
            "file is {got} bytes, shorter than the 4-byte header"
        )));
    }
    if magic[0] != 0 || magic[1] != 0 || magic[2] != TYPE_U8 {
        return Err(bad(format!(
            "wrong magic number {:02x} {:02x} {:02x} {:02x}: expected 00 00 08 NDIM (u8 IDX)",
            magic[0], magic[1], magic[2], magic[3]
        )));
    }
    let ndim = magic[3] as usize;
    if ndim == 0 {
        return Err(bad("header declares 0 dimensions".into()));
    }
    let header = 4 + 4 * ndim;
    let mut sizes = vec![0u8; 4 * ndim];
    let got = read_up_to(&mut r, &mut sizes, name)?;
    if got < sizes.len() {
        return Err(bad(format!(
            "truncated header: {ndim} dimensions need {header} bytes, file has {}",
            4 + got
        )));
    }
    let dims: Vec<usize> = sizes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n < u64::MAX as usize)
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    // At most one byte past the payload is read: enough to call the file oversized. The buffer
    // grows with the bytes that arrive, never to a size the header merely claims.
    let mut payload = Vec::new();
    r.take(expected as u64 + 1)
        .read_to_end(&mut payload)
        .map_err(|e| gzip_error(name, e))?;
    if payload.len() != expected {
        return Err(bad(format!(
            "{} payload: dimensions {dims:?} need {expected} bytes, file has {}",
            if payload.len() < expected {
                "truncated"
            } else {
                "oversized"
            },
            if payload.len() < expected {
                payload.len().to_string()
            } else {
                "more".to_string()
            }
        )));
    }
    Ok(IdxArray {
        dims,
        data: payload,
    })
}

/// Builds IDX bytes; used by tests and by tools that write fixtures.
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, TYPE_U8, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_raw_and_gzip() {
        let raw = encode_idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let a = parse_idx(&raw, "x").unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data[11], 12);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let b = parse_idx(&gz.finish().unwrap(), "x.gz").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn truncated_payload_is_an_error() {
        let mut raw = encode_idx(&[3, 2], &[0; 6]);
        raw.pop();
        let err = parse_idx(&raw, "imgs").unwrap_err().to_string();
        assert!(err.contains("imgs") && err.contains("truncated"), "{err}");
    }

    #[test]
    fn truncated_header_is_an_error() {
        let raw = encode_idx(&[3, 2], &[0; 6]);
        let err = parse_idx(&raw[..6], "imgs").unwrap_err().to_string();
        assert!(err.contains("truncated header"), "{err}");
    }

    #[test]
    fn wrong_magic_is_an_error() {
        let mut raw = encode_idx(&[1], &[0]);
        raw[2] = 0x0d; // float type code
        let err = parse_idx(&raw, "f").unwrap_err().to_string();
        assert!(err.contains("wrong magic number"), "{err}");
    }

    /// Guards against a small gzip file inflating without bound: a header of 4 bytes of
    /// payload followed by a megabyte of zeros is refused as oversized.
    #[test]
    fn gzip_is_decompressed_no_further_than_the_header_implies() {
        let mut raw = encode_idx(&[2, 2], &[1, 2, 3, 4]);
        raw.extend(std::iter::repeat_n(0u8, 1 << 20));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 4096, "the bomb is small: {}", gz.len());
        let err = parse_idx(&gz, "bomb.gz").unwrap_err().to_string();
        assert!(
            err.contains("bomb.gz") && err.contains("oversized"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let err = parse_idx(&[0x1f, 0x8b, 1, 2, 3], "g.gz")
            .unwrap_err()
            .to_string();
        assert!(err.contains("g.gz") && err.contains("gzip"), "{err}");
    }
}
