//! Whole-file reads and writes of a run directory: JSON documents, write-then-rename, and the
//! append that on failure leaves a log as it was, so readers and resumes never see half a file
//! or half a line.

use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::RunDirError;
use crate::crashpoint::crash_point;

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
        .and_then(|()| {
            crash_point("atomic-rename");
            std::fs::rename(&tmp, path)
        })
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
    // Two writes, so the kill campaign can cut a line between them (`mid-append`); a real kill
    // there is repaired by the resume like any cut line.
    let (head, tail) = bytes.split_at(bytes.len() / 2);
    let written = f.write_all(head).and_then(|()| {
        crash_point("mid-append");
        f.write_all(tail)
    });
    if let Err(e) = written.and_then(|()| f.sync_data()) {
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

/// Removes the temporary files of `write_atomic` (`NAME.tmp-PID`) that a killed writer left in
/// `dir`. Only the holder of the directory's lock calls it: no live writer owns one then.
pub(super) fn remove_temporaries(dir: &Path) -> Result<(), RunDirError> {
    let io = |source| RunDirError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let temporary = (path.extension().and_then(|e| e.to_str()))
            .and_then(|e| e.strip_prefix("tmp-"))
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if temporary && path.is_file() {
            std::fs::remove_file(&path).map_err(write_err(&path))?;
        }
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

    /// Guards against a kill between a temporary file and its rename leaving it in the run
    /// directory for good: the next lock holder removes exactly those files.
    #[test]
    fn temporaries_of_a_dead_writer_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let keep = ["pareto.csv", "notes.tmp-", "x.tmp-12a", "episodes.csv"];
        for f in keep.iter().chain(&["pareto.tmp-4242", "agent.tmp-7"]) {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        remove_temporaries(dir.path()).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(left, want);
    }

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
