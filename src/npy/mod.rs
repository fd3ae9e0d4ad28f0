//! NumPy's `.npy` format: its writer (version 1.0, any dtype's little-endian bytes, for the check
//! data an export hands ONNX Runtime) and its reader, for the one dtype simulators' lookup tables
//! are saved in: a C-order array of little-endian int64 (`'<i8'`, what `np.save` writes for an
//! int64 array).
//!
//! ```text
//! bytes 0..6   magic  \x93NUMPY
//! bytes 6..8   version (major, minor): 1.0 → a u16 header length, 2.0 and 3.0 → a u32 (LE)
//! header       a Python dict literal, e.g. {'descr': '<i8', 'fortran_order': False,
//!              'shape': (53, 8, 8), }, padded with spaces and ended by a newline
//! data         product(shape) values of 8 bytes each, last index fastest, nothing after
//! ```
//!
//! Every malformed file is an `NpyError` naming the file, the part of the format, the rule and
//! the value found; nothing here panics on any input.

use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"\x93NUMPY";

/// NumPy's `.npy` format, version 1.0: magic, header length, a Python-literal header padded with
/// spaces to a 64-byte boundary (ending in a newline), then the raw little-endian data.
pub fn write(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// An int64 array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyI64 {
    /// The dimensions, outermost first (empty for a scalar).
    pub shape: Vec<usize>,
    /// product(shape) values in C order.
    pub values: Vec<i64>,
}

/// Why a `.npy` file cannot be read as a C-order int64 array.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a .npy file: it must start with \\x93NUMPY, got {found:?}", path.display())]
    Magic { path: PathBuf, found: String },
    #[error("{}: .npy version must be 1.0, 2.0 or 3.0, got {major}.{minor}", path.display())]
    Version { path: PathBuf, major: u8, minor: u8 },
    #[error(
        "{}: the file ends inside its {part}: {part} needs {need} bytes, {have} are left",
        path.display()
    )]
    Truncated {
        path: PathBuf,
        part: &'static str,
        need: usize,
        have: usize,
    },
    #[error("{}: header {rule}, got {value:?}", path.display())]
    Header {
        path: PathBuf,
        rule: String,
        value: String,
    },
    #[error("{}: header field `{field}` {rule}, got {value}", path.display())]
    Field {
        path: PathBuf,
        field: &'static str,
        rule: &'static str,
        value: String,
    },
    #[error(
        "{}: data must be exactly product(shape) x 8 = {expected} bytes, got {found}",
        path.display()
    )]
    DataLength {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
}

impl NpyI64 {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<NpyI64, NpyError> {
        let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        NpyI64::parse(&bytes, path)
    }

    /// Parses the bytes of a `.npy` file; `path` names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<NpyI64, NpyError> {
        let p = || path.to_path_buf();
        let take = |from: usize, need: usize, part: &'static str| {
            let have = bytes.len().saturating_sub(from);
            (have >= need)
                .then(|| &bytes[from..from + need])
                .ok_or(NpyError::Truncated {
                    path: p(),
                    part,
                    need,
                    have,
                })
        };
        let magic = take(0, MAGIC.len(), "magic string")?;
        if magic != MAGIC {
            return Err(NpyError::Magic {
                path: p(),
                found: String::from_utf8_lossy(magic).into_owned(),
            });
        }
        let version = take(6, 2, "version")?;
        let (len_bytes, major, minor) = match (version[0], version[1]) {
            (1, 0) => (2, 1, 0),
            (major @ (2 | 3), 0) => (4, major, 0),
            (major, minor) => {
                return Err(NpyError::Version {
                    path: p(),
                    major,
                    minor,
                })
            }
        };
        let len_field = take(8, len_bytes, "header length")?;
        let header_len = len_field
            .iter()
            .rev()
            .fold(0usize, |n, &b| (n << 8) | usize::from(b));
        let start = 8 + len_bytes;
        let header = take(start, header_len, "header")?;
        // Version 3.0 allows UTF-8 in the header; 1.0 and 2.0 are Latin-1, a superset of what
        // an int64 array's header holds.
        let header = std::str::from_utf8(header).map_err(|_| NpyError::Header {
            path: p(),
            rule: format!("(version {major}.{minor}) must be text"),
            value: String::from_utf8_lossy(header).into_owned(),
        })?;
        let shape = check_header(header, path)?;
        let count = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .and_then(|n| n.checked_mul(8))
            .ok_or_else(|| NpyError::Field {
                path: p(),
                field: "shape",
                rule: "must hold at most usize::MAX bytes of data",
                value: format!("{shape:?}"),
            })?;
        let data = &bytes[start + header_len..];
        if data.len() != count {
            return Err(NpyError::DataLength {
                path: p(),
                expected: count,
                found: data.len(),
            });
        }
        let values = data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        Ok(NpyI64 { shape, values })
    }
}

/// Checks the header dict (`descr` '<i8', `fortran_order` False, no other key) and returns the
/// shape.
fn check_header(text: &str, path: &Path) -> Result<Vec<usize>, NpyError> {
    let syntax = |rule: &str| NpyError::Header {
        path: path.to_path_buf(),
        rule: rule.to_string(),
        value: text.to_string(),
    };
    let field = |field, rule, value: &str| NpyError::Field {
        path: path.to_path_buf(),
        field,
        rule,
        value: value.to_string(),
    };
    let entries = dict_entries(text.trim_end()).ok_or_else(|| {
        syntax("must be a Python dict literal {'key': value, ...} of strings, booleans and tuples")
    })?;
    let (mut descr, mut order, mut shape) = (None, None, None);
    for (key, value) in entries {
        let slot = match key {
            "descr" => &mut descr,
            "fortran_order" => &mut order,
            "shape" => &mut shape,
            _ => {
                return Err(syntax(
                    "must have only the keys descr, fortran_order and shape",
                ))
            }
        };
        if slot.replace(value).is_some() {
            return Err(syntax("must name each key once"));
        }
    }
    let (Some(descr), Some(order), Some(shape)) = (descr, order, shape) else {
        return Err(syntax("must have the keys descr, fortran_order and shape"));
    };
    if descr != "'<i8'" && descr != "\"<i8\"" {
        return Err(field(
            "descr",
            "must be '<i8' (little-endian int64; save the table with .astype('<i8'))",
            descr,
        ));
    }
    if order != "False" {
        return Err(field(
            "fortran_order",
            "must be False (C order; save with np.ascontiguousarray)",
            order,
        ));
    }
    parse_shape(shape)
        .ok_or_else(|| field("shape", "must be a tuple of non-negative integers", shape))
}

/// The `key: value` pairs of a dict literal whose keys are quoted strings and whose values hold
/// no `,` outside brackets; values are returned as written (trimmed).
fn dict_entries(text: &str) -> Option<Vec<(&str, &str)>> {
    let body = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut entries = Vec::new();
    let mut rest = body.trim_start();
    while !rest.is_empty() {
        let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let end = rest[1..].find(quote)? + 1;
        let key = &rest[1..end];
        rest = rest[end + 1..].trim_start().strip_prefix(':')?.trim_start();
        // A value ends at the first comma outside brackets, or at the end of the dict.
        let mut depth = 0i32;
        let mut cut = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    cut = i;
                    break;
                }
                _ => {}
            }
        }
        entries.push((key, rest[..cut].trim()));
        rest = rest[cut..].strip_prefix(',').unwrap_or("").trim_start();
    }
    Some(entries)
}

/// `(53, 8, 8)`, `(7,)` or `()`.
fn parse_shape(text: &str) -> Option<Vec<usize>> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?.trim();
    if inner.is_empty() {
        return Some(Vec::new());
    }
    let inner = inner.strip_suffix(',').unwrap_or(inner);
    inner.split(',').map(|d| d.trim().parse().ok()).collect()
}

#[cfg(test)]
pub(crate) mod tests;
