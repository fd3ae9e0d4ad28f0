//! Whole-file reads and writes of a run directory: JSON documents and write-then-rename, so
//! readers and resumes never see half a file.

use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::RunDirError;

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, then renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunDirError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(write_err(&tmp))?;
    f.write_all(bytes).map_err(write_err(&tmp))?;
    f.sync_data().map_err(write_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(write_err(path))
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), RunDirError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| RunDirError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, text.as_bytes())
}

/// Appends `bytes` to `path` (created if absent) and syncs them.
pub(super) fn append(path: &Path, bytes: &[u8]) -> Result<(), RunDirError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(write_err(path))?;
    f.write_all(bytes).map_err(write_err(path))?;
    f.sync_data().map_err(write_err(path))
}

/// Reads a text file; a missing file is `RunDirError::Missing` with `hint` as guidance.
pub(super) fn read_text(path: &Path, hint: &'static str) -> Result<String, RunDirError> {
    if !path.is_file() {
        return Err(RunDirError::Missing {
            path: path.to_path_buf(),
            hint,
        });
    }
    std::fs::read_to_string(path).map_err(|source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and deserializes a JSON file.
pub(super) fn read_json<T: DeserializeOwned>(
    path: &Path,
    hint: &'static str,
) -> Result<T, RunDirError> {
    let text = read_text(path, hint)?;
    serde_json::from_str(&text).map_err(|source| RunDirError::Json {
        path: path.to_path_buf(),
        source,
    })
}
