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

/// Parses IDX bytes (raw or gzip); `name` is used in error messages.
pub fn parse_idx(bytes: &[u8], name: &str) -> Result<IdxArray, DataError> {
    let raw = maybe_gunzip(bytes, name)?;
    let bad = |what: String| DataError::Format {
        file: name.to_string(),
        what,
    };
    if raw.len() < 4 {
        return Err(bad(format!(
            "file is {} bytes, shorter than the 4-byte header",
            raw.len()
        )));
    }
    if raw[0] != 0 || raw[1] != 0 || raw[2] != TYPE_U8 {
        return Err(bad(format!(
            "wrong magic number {:02x} {:02x} {:02x} {:02x}: expected 00 00 08 NDIM (u8 IDX)",
            raw[0], raw[1], raw[2], raw[3]
        )));
    }
    let ndim = raw[3] as usize;
    if ndim == 0 {
        return Err(bad("header declares 0 dimensions".into()));
    }
    let header = 4 + 4 * ndim;
    if raw.len() < header {
        return Err(bad(format!(
            "truncated header: {ndim} dimensions need {header} bytes, file has {}",
            raw.len()
        )));
    }
    let dims: Vec<usize> = raw[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let payload = &raw[header..];
    if payload.len() != expected {
        return Err(bad(format!(
            "{} payload: dimensions {dims:?} need {expected} bytes, file has {}",
            if payload.len() < expected {
                "truncated"
            } else {
                "oversized"
            },
            payload.len()
        )));
    }
    Ok(IdxArray {
        dims,
        data: payload.to_vec(),
    })
}

fn maybe_gunzip(bytes: &[u8], name: &str) -> Result<Vec<u8>, DataError> {
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| DataError::Format {
                file: name.to_string(),
                what: format!("gzip stream is corrupt or truncated: {e}"),
            })?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
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

    #[test]
    fn corrupt_gzip_is_an_error() {
        let err = parse_idx(&[0x1f, 0x8b, 1, 2, 3], "g.gz")
            .unwrap_err()
            .to_string();
        assert!(err.contains("g.gz") && err.contains("gzip"), "{err}");
    }
}
