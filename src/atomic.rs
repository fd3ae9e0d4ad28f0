//! Writing a whole file atomically and durably, never through a symbolic link: the one
//! write-then-rename every module that writes a whole file uses (the run-directory format's
//! files through `rundir::write_atomic`, device profiles and their tables through `hardware`).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::crashpoint::crash_point;

/// The suffix of every temporary file the tool writes: `.NAME.bitsearch.tmp-PID` beside `NAME`.
/// Distinctive, so that cleaning up removes only the tool's own files (never a user's
/// `thesis.tmp-2024`).
pub const TEMP_MARK: &str = ".bitsearch.tmp-";

/// The temporary file `write_atomic` writes `path` through, in the same directory (so the rename
/// is atomic): `DIR/.NAME.bitsearch.tmp-PID`.
pub fn temporary(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_default();
    path.with_file_name(format!(".{name}{TEMP_MARK}{}", std::process::id()))
}

/// Whether `name` is a temporary file of `write_atomic` (`.NAME.bitsearch.tmp-PID`).
pub fn is_temporary(name: &str) -> bool {
    let Some((head, pid)) = name.rsplit_once(TEMP_MARK) else {
        return false;
    };
    head.len() > 1
        && head.starts_with('.')
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
}

/// A failed write: the file (or, for the final sync, the directory) and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, renames it into place and syncs
/// the directory, so the new file survives a power cut. On failure the temporary file is
/// removed and `path` is left as it was. A symbolic link at `path` is replaced, not followed
/// (rename acts on the link); the temporary file is created exclusively (`O_EXCL`, which also
/// refuses a link), so a link planted at its name is never written through either.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let tmp = temporary(path);
    // A leftover of an earlier process with this pid (or a planted link): removing a link
    // removes the link, not its target.
    let _ = std::fs::remove_file(&tmp);
    // Errors name `path`, the file the user knows; the temporary file is gone by then.
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_data()
        })
        .and_then(|()| {
            crash_point("atomic-rename");
            std::fs::rename(&tmp, path)
        });
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(WriteError {
            path: path.to_path_buf(),
            source,
        });
    }
    sync_dir(path)
}

/// Syncs the directory holding `path`, which makes a rename or a new file durable.
pub fn sync_dir(path: &Path) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| WriteError {
            path: dir.to_path_buf(),
            source,
        })
}
