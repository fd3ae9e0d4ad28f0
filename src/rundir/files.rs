//! Whole-file reads and writes of a run directory: JSON documents, write-then-rename, and the
//! append that on failure leaves a log as it was, so readers and resumes never see half a file
//! or half a line. Every write into a run, sweep or study directory goes through `write_atomic`
//! (whole files) or `open_no_follow` (appends, the lock): neither follows a symbolic link, so a
//! link planted in a shared directory (`RUN/report.html -> ~/thesis.tex`) cannot redirect a
//! write to a file outside it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::RunDirError;
use crate::atomic::is_temporary;
use crate::crashpoint::crash_point;

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens `path` with `options` but never through a symbolic link at its last component
/// (`O_NOFOLLOW`); a link there is `RunDirError::Symlink`. Appends and the lock open their
/// files through this; whole files go through `write_atomic`.
pub fn open_no_follow(path: &Path, options: &mut OpenOptions) -> Result<File, RunDirError> {
    open_no_follow_or(path, options, write_err(path))
}

/// `open_no_follow`, with `other` making the error of any failure but a link.
pub(super) fn open_no_follow_or(
    path: &Path,
    options: &mut OpenOptions,
    other: impl Fn(std::io::Error) -> RunDirError,
) -> Result<File, RunDirError> {
    options
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => RunDirError::Symlink {
                path: path.to_path_buf(),
            },
            _ => other(source),
        })
}

/// Creates the directory `dir` (and its parents) for the tool to write into, refusing a
/// symbolic link in its place: a planted `RUN/charts -> ~/elsewhere` would otherwise let the
/// renames of `write_atomic` replace files there.
pub fn create_dir(dir: &Path) -> Result<(), RunDirError> {
    let link = || std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
    if link() {
        return Err(RunDirError::Symlink {
            path: dir.to_path_buf(),
        });
    }
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    match link() {
        true => Err(RunDirError::Symlink {
            path: dir.to_path_buf(),
        }),
        false => Ok(()),
    }
}

/// Writes `bytes` to `path` whole, atomically and durably, never through a link
/// (`atomic::write_atomic`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunDirError> {
    crate::atomic::write_atomic(path, bytes).map_err(|e| RunDirError::Write {
        path: e.path,
        source: e.source,
    })
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
    let mut f = open_no_follow(path, OpenOptions::new().create(true).append(true))?;
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
        crate::atomic::sync_dir(path).map_err(|e| RunDirError::Write {
            path: e.path,
            source: e.source,
        })?;
    }
    Ok(())
}

/// Removes the temporary files of `write_atomic` (`.NAME.bitsearch.tmp-PID`) that a killed writer
/// left in `dir`, and nothing else. Only the holder of the directory's lock calls it: no live
/// writer owns one then.
pub(super) fn remove_temporaries(dir: &Path) -> Result<(), RunDirError> {
    let io = |source| RunDirError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let ours = entry.file_name().to_str().is_some_and(is_temporary);
        // A link by that name is removed as a link (remove_file never follows one).
        let path = entry.path();
        if ours && entry.file_type().is_ok_and(|t| !t.is_dir()) {
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
        // A user's `thesis.tmp-2024` looks like the old `NAME.tmp-PID` naming: it stays.
        let keep = [
            "pareto.csv",
            "notes.tmp-",
            "x.tmp-12a",
            "episodes.csv",
            "thesis.tmp-2024",
            ".bitsearch.tmp-12",
            ".x.bitsearch.tmp-",
            "x.bitsearch.tmp-3",
        ];
        let ours = [
            ".pareto.csv.bitsearch.tmp-4242",
            ".agent.json.bitsearch.tmp-7",
        ];
        for f in keep.iter().chain(&ours) {
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

    /// Guards against a planted link redirecting a write: the whole-file write replaces the
    /// link, the append and a link at the temporary file's name are refused; no target changes.
    #[test]
    fn writes_never_follow_a_symbolic_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = |name: &str| {
            std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
            dir.path().join(name)
        };
        let report = link("report.html");
        write_atomic(&report, b"<html>").unwrap();
        assert!(!report.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&report).unwrap(), b"<html>");
        let e = append(&link("episodes.csv"), b"1,2\n").unwrap_err();
        assert!(matches!(e, RunDirError::Symlink { .. }), "{e}");
        let planted = link(&format!(
            ".doc.json{}{}",
            crate::atomic::TEMP_MARK,
            std::process::id()
        ));
        write_atomic(&dir.path().join("doc.json"), b"{}").unwrap();
        assert!(!planted.exists(), "the planted temporary link is gone");
        let e = create_dir(&link("charts")).unwrap_err();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
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
