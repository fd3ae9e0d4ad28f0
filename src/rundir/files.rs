//! Whole-file reads and writes of a run directory: JSON documents, write-then-rename, and the
//! append that on failure leaves a log as it was, so readers and resumes never see half a file
//! or half a line.

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

/// Writes `bytes` to a temporary file next to `path`, syncs it, renames it into place and syncs
/// the directory, so the new file survives a power cut. On failure the temporary file is
/// removed and `path` is left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunDirError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    // Errors name `path`, the file the user knows; the temporary file is gone by then.
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_data()
        })
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(write_err(path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path)
}

/// Syncs the directory holding `path`, which makes a rename or a new file durable.
fn sync_dir(path: &Path) -> Result<(), RunDirError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err(dir))
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), RunDirError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| RunDirError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, text.as_bytes())
}

/// Appends `bytes` to `path` (created if absent) and syncs them. If the write or the sync fails
/// (a full disk, a file-size limit), the file is cut back to its length before the call, so it
/// never holds part of `bytes` (a log keeps whole lines), and the error is returned.
pub(super) fn append(path: &Path, bytes: &[u8]) -> Result<(), RunDirError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(write_err(path))?;
    let before = f.metadata().map_err(write_err(path))?.len();
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_data()) {
        // Shrinking needs no new space, so this works on the full disk that failed the write.
        // Should it fail too, the resume still drops a last line without its newline.
        let _ = f.set_len(before).and_then(|()| f.sync_data());
        return Err(write_err(path)(e));
    }
    if before == 0 {
        sync_dir(path)?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in a child test process: the directory it writes into under a file-size limit.
    const LIMITED: &str = "BITSEARCH_TEST_FSIZE_DIR";
    /// The limit: the log's first line fits, the appended lines do not.
    const LIMIT: u64 = 4096;

    fn lines(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("{i},a whole line\n").into_bytes())
            .collect()
    }

    /// Run as a child process by `a_write_that_fails_part_way_leaves_the_files_as_they_were`:
    /// a write past RLIMIT_FSIZE fails with EFBIG (SIGXFSZ ignored) after writing part of it.
    #[test]
    #[ignore = "a helper process, started by another test"]
    fn write_past_a_file_size_limit() {
        let dir = std::path::PathBuf::from(std::env::var(LIMITED).expect("a directory"));
        let limit = libc::rlimit {
            rlim_cur: LIMIT,
            rlim_max: LIMIT,
        };
        // SAFETY: plain syscalls on this (child) process's own limit and signal disposition.
        unsafe {
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
        let e = append(&dir.join("log.csv"), &lines(1000)).unwrap_err();
        let e = format!("{e}: {}", std::error::Error::source(&e).unwrap());
        assert!(e.contains("log.csv: cannot write: File too large"), "{e}");
        let e = write_atomic(&dir.join("doc.json"), &lines(1000)).unwrap_err();
        assert!(e.to_string().contains("doc.json: cannot write"), "{e}");
    }

    #[test]
    fn a_write_that_fails_part_way_leaves_the_files_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("log.csv"), &lines(3)).unwrap();
        write_atomic(&dir.path().join("doc.json"), b"{}").unwrap();
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "rundir::files::tests::write_past_a_file_size_limit",
            ])
            .args(["--ignored", "--test-threads=1"])
            .env(LIMITED, dir.path())
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&child.stdout);
        assert!(child.status.success(), "the limited writer failed: {out}");
        let log = std::fs::read_to_string(dir.path().join("log.csv")).unwrap();
        assert_eq!(
            log.as_bytes(),
            lines(3),
            "the log holds its three whole lines: {log}"
        );
        assert_eq!(std::fs::read(dir.path().join("doc.json")).unwrap(), b"{}");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["doc.json", "log.csv"], "no temporary file is left");
    }

    #[test]
    fn a_failed_rename_removes_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should go: the rename fails (EISDIR).
        std::fs::create_dir(dir.path().join("doc.json")).unwrap();
        std::fs::write(dir.path().join("doc.json/keep"), "x").unwrap();
        let e = write_atomic(&dir.path().join("doc.json"), b"{}").unwrap_err();
        assert!(e.to_string().contains("doc.json: cannot write"), "{e}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["doc.json"], "no temporary file is left");
    }
}
