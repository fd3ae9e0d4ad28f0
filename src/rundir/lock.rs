//! The lock of a run directory (`DIR/.lock`): one writer at a time. A search holds it for its
//! whole run and `report` while it writes report.html; readers (`compare`, a report's readers)
//! take none, as every file they read is whole (appended lines, renamed files).
//!
//! The lock is an advisory `flock(LOCK_EX | LOCK_NB)` on `.lock`, and the file holds a record of
//! its holder (pid, host, command line, since when) so a refused process names it. The kernel
//! drops a flock when the last descriptor of its open file closes, so a holder killed by SIGKILL
//! leaves no lock behind, only its record: the next process takes the lock, finds the record
//! and reports "took over a stale lock". A clean release empties the record first, so a record
//! found under a free lock always means its holder died.
//!
//! The record can disagree with the kernel: the flock is held, yet the recorded pid is not
//! running on this host. Then the lock is really held, by a process that inherited the open
//! file from the recorded one (a `fork` without `exec`; Rust opens files close-on-exec, so a
//! spawned program does not) or by another machine sharing the directory over NFS, which
//! emulates flock with whole-file POSIX locks. The kernel is the authority: the lock is not
//! taken over, and the error says so and how to find the process (`fuser -v DIR/.lock`). A pid
//! recorded on another host is not checked at all. (An NFS mount with `local_lock=flock` keeps
//! flocks per machine: two hosts can then both hold it; nothing here can detect that.)

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::RunDirError;

/// Who holds (or held) a run directory's lock, as its `.lock` file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub command: String,
    /// When it took the lock, UTC (`2024-05-01T12:00:00Z`).
    pub since: String,
}

/// A held run-directory lock, released on drop.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    /// The record of a holder that died without releasing the lock, which this one took over.
    pub stale: Option<Holder>,
}

/// How long a refused process waits for a holder that has the flock but has not yet written its
/// record (or is releasing it), before naming it as unknown.
const RECORD_WAIT: Duration = Duration::from_millis(500);

impl RunLock {
    pub const FILE: &'static str = ".lock";

    /// Takes the lock of `dir` (created if needed) for `command`, or fails with
    /// `RunDirError::Locked` naming the process that holds it. Never waits for the holder.
    pub fn acquire(dir: &Path, command: &str) -> Result<RunLock, RunDirError> {
        std::fs::create_dir_all(dir).map_err(|source| RunDirError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(Self::FILE);
        let lock_err = |source| RunDirError::Lock {
            path: path.clone(),
            source,
        };
        // Never through a link: `DIR/.lock -> victim` would have the record written (and
        // emptied on release) into the victim.
        let file = super::files::open_no_follow_or(
            &path,
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
            lock_err,
        )?;
        // Nor through a hard link to another file (whose owner's data the record would replace).
        let meta = file.metadata().map_err(lock_err)?;
        if !meta.is_file() || std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
            return Err(lock_err(std::io::Error::other(
                "not a regular file of its own (a hard link or a special file): remove it",
            )));
        }
        let start = std::time::Instant::now();
        loop {
            if try_lock(&file).map_err(lock_err)? {
                break;
            }
            let holder = read_record(&file).map_err(lock_err)?;
            if holder.is_some() || start.elapsed() >= RECORD_WAIT {
                return Err(RunDirError::Locked {
                    path,
                    holder: holder.map(Box::new),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let stale = read_record(&file).map_err(lock_err)?;
        let me = Holder {
            pid: std::process::id(),
            host: hostname(),
            command: command.to_string(),
            since: utc(SystemTime::now()),
        };
        write_record(&file, Some(&me)).map_err(lock_err)?;
        // A writer killed between a temporary file and its rename left the temporary behind,
        // in the directory or in the charts the report writes beside it.
        super::files::remove_temporaries(dir)?;
        let charts = dir.join("charts");
        if charts.is_dir() && !charts.is_symlink() {
            super::files::remove_temporaries(&charts)?;
        }
        Ok(RunLock { file, path, stale })
    }

    /// The `.lock` file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// "took over a stale lock from pid N ...", when this lock was left by a dead process: the
    /// command prints it, as the dead run may have left its files mid-write.
    pub fn took_over(&self) -> Option<String> {
        self.stale.as_ref().map(|dead| {
            format!(
                "{}: took over a stale lock from pid {} on {} (`{}`, since {}), which ended \
                 without releasing it",
                self.path.display(),
                dead.pid,
                dead.host,
                dead.command,
                dead.since
            )
        })
    }
}

/// Who holds `dir`'s lock right now, without touching it (a probe that took the flock, even for
/// a moment, could refuse a search starting at that instant): the kernel's table of flocks
/// (/proc/locks) is searched for the `.lock` file's device and inode, and the record names the
/// holder. `None` when no process on this machine holds it (a stale record is ignored). Where
/// /proc/locks cannot be read, a non-empty record counts as held.
pub fn lock_holder(dir: &Path) -> Option<Holder> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(RunLock::FILE);
    let meta = std::fs::metadata(&path).ok()?;
    let record = || {
        let file = File::open(&path).ok()?;
        read_record(&file).ok().flatten()
    };
    let Ok(table) = std::fs::read_to_string("/proc/locks") else {
        return record();
    };
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let id = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let held = (table.lines())
        .filter(|l| !l.contains("->"))
        .any(|l| l.contains(" FLOCK ") && l.split_whitespace().nth(5) == Some(id.as_str()));
    match held {
        true => Some(record().unwrap_or(Holder {
            pid: 0,
            host: String::new(),
            command: "(not recorded yet)".into(),
            since: String::new(),
        })),
        false => None,
    }
}

impl Drop for RunLock {
    /// Empties the record, so the next holder does not take this for a stale lock; closing
    /// the file then releases the flock.
    fn drop(&mut self) {
        let _ = write_record(&self.file, None);
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: Ok(false) when another open file holds it.
fn try_lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock(2) on a descriptor this `File` owns; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        Some(libc::EINTR) => try_lock(file),
        _ => Err(e),
    }
}

/// The holder recorded in the file; None when it is empty or not a record (being written).
fn read_record(mut file: &File) -> std::io::Result<Option<Holder>> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))?;
    file.take(64 * 1024).read_to_string(&mut text)?;
    Ok(serde_json::from_str(&text).ok())
}

/// Replaces the record (None empties it) and syncs it.
fn write_record(mut file: &File, holder: Option<&Holder>) -> std::io::Result<()> {
    let text = match holder {
        Some(h) => serde_json::to_string(h).map_err(std::io::Error::other)? + "\n",
        None => String::new(),
    };
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// The command line of this process, as a holder's record names it.
pub fn this_command() -> String {
    std::env::args()
        .map(|a| match a.contains(char::is_whitespace) || a.is_empty() {
            true => format!("{a:?}"),
            false => a,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `len` bytes into the buffer it is given.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Whether `pid` names a live process on this host (EPERM: alive, owned by another user).
fn running(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// `t` as UTC, `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian; Howard Hinnant's `civil_from_days`).
fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

/// The text of `RunDirError::Locked` after the path: who holds the lock and what to do.
pub(super) fn locked_message(holder: &Option<Box<Holder>>) -> String {
    let Some(h) = holder else {
        return "locked by another process that has not recorded itself (it is starting or \
                stopping); try again in a moment"
            .into();
    };
    let who = format!(
        "locked by pid {} on host {} since {} (`{}`)",
        h.pid, h.host, h.since, h.command
    );
    let here = hostname();
    let advice = if h.host != here {
        format!(
            "it runs on another machine (this is {here}): wait for it to finish, or stop it \
             there; a search stopped this way continues with `bitsearch search --resume`"
        )
    } else if running(h.pid) {
        format!(
            "it is still running: wait for it to finish, or stop it (`kill {}`); a search \
             stopped this way continues with `bitsearch search --resume`",
            h.pid
        )
    } else {
        "pid is no longer running, yet the lock is still held, by a process that inherited \
         its open file or by another machine sharing this directory: find it with `fuser -v` \
         on the lock file and stop it (the lock is not taken over while the kernel says it is \
         held)"
            .into()
    };
    format!("{who}: {advice}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    #[test]
    fn the_holder_is_seen_while_the_lock_is_held_and_not_after() {
        let dir = tempfile::tempdir().unwrap();
        assert!(lock_holder(dir.path()).is_none());
        let lock = RunLock::acquire(dir.path(), "test").unwrap();
        let holder = lock_holder(dir.path()).expect("held");
        assert_eq!(
            (holder.pid, holder.command.as_str()),
            (std::process::id(), "test")
        );
        drop(lock);
        assert!(lock_holder(dir.path()).is_none());
    }

    /// Guards against `DIR/.lock -> victim` truncating the victim: the link is refused.
    /// Taking the lock removes what a killed writer left half-written, in the directory and in
    /// its charts, and nothing else.
    #[test]
    fn taking_the_lock_removes_dead_writers_temporaries_in_the_charts_too() {
        let dir = tempfile::tempdir().unwrap();
        let charts = dir.path().join("charts");
        std::fs::create_dir(&charts).unwrap();
        let left = [
            dir.path().join(".pareto.csv.bitsearch.tmp-7"),
            charts.join(".pareto-accuracy-latency.svg.bitsearch.tmp-7"),
        ];
        let kept = [dir.path().join("notes.txt"), charts.join("pareto.svg")];
        for f in left.iter().chain(&kept) {
            std::fs::write(f, "x").unwrap();
        }
        let _lock = RunLock::acquire(dir.path(), "test").unwrap();
        assert!(left.iter().all(|f| !f.exists()), "{left:?}");
        assert!(kept.iter().all(|f| f.exists()), "{kept:?}");
    }

    #[test]
    fn a_lock_file_that_is_a_link_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::os::unix::fs::symlink(&victim, run.join(".lock")).unwrap();
        let e = RunLock::acquire(&run, "test").unwrap_err();
        assert!(matches!(e, RunDirError::Symlink { .. }), "{e}");
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        // A hard link to the victim is refused too.
        std::fs::remove_file(run.join(".lock")).unwrap();
        std::fs::hard_link(&victim, run.join(".lock")).unwrap();
        let e = RunLock::acquire(&run, "test").unwrap_err();
        assert!(format!("{e:#?}").contains("hard link"), "{e:#?}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    /// Set in a child test process: the directory whose lock it takes and holds until killed.
    const HOLD: &str = "BITSEARCH_TEST_HOLD_LOCK";

    /// Run as a child process by `a_lock_whose_holder_was_killed_is_taken_over`.
    #[test]
    #[ignore = "a helper process, started by another test"]
    fn hold_a_lock_until_killed() {
        let dir = std::env::var(HOLD).expect("the directory to lock");
        let _lock = RunLock::acquire(Path::new(&dir), "holder-child").unwrap();
        std::thread::sleep(Duration::from_secs(600));
    }

    /// This test binary re-run as `hold_a_lock_until_killed` on `dir`, once it holds the lock.
    fn holder_child(dir: &Path) -> Child {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "rundir::lock::tests::hold_a_lock_until_killed"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(HOLD, dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let path = dir.join(RunLock::FILE);
        while !std::fs::read_to_string(&path).is_ok_and(|t| t.contains("holder-child")) {
            assert!(start.elapsed() < Duration::from_secs(60), "no holder");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    #[test]
    fn a_second_acquire_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), "bitsearch search --out x").unwrap();
        assert!(first.stale.is_none());
        // A second open file description of .lock, as a second process would have.
        let e = RunLock::acquire(dir.path(), "bitsearch report x").unwrap_err();
        let text = e.to_string();
        let pid = std::process::id();
        assert!(matches!(&e, RunDirError::Locked { holder: Some(h), .. } if h.pid == pid));
        assert!(text.contains(".lock: locked by pid"), "{text}");
        assert!(text.contains(&format!("pid {pid} on host {}", hostname())));
        assert!(text.contains("`bitsearch search --out x`"), "{text}");
        assert!(
            text.contains("still running") && text.contains("--resume"),
            "{text}"
        );
        drop(first);
        let again = RunLock::acquire(dir.path(), "bitsearch report x").unwrap();
        assert!(again.stale.is_none(), "a clean release is not a stale lock");
    }

    #[test]
    fn a_lock_whose_holder_was_killed_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = holder_child(dir.path());
        let e = RunLock::acquire(dir.path(), "second")
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("pid {} on", child.id())), "{e}");
        assert!(e.contains("`holder-child`"), "{e}");
        child.kill().unwrap(); // SIGKILL: no destructor runs, the record stays
        child.wait().unwrap();
        let lock = RunLock::acquire(dir.path(), "second").unwrap();
        let stale = lock.stale.clone().expect("the dead holder's record");
        assert_eq!(stale.pid, child.id());
        assert_eq!(stale.command, "holder-child");
        let record = std::fs::read_to_string(lock.path()).unwrap();
        assert!(record.contains(&format!("\"pid\":{}", std::process::id())));
        assert!(record.contains("\"command\":\"second\""), "{record}");
    }

    #[test]
    fn a_held_lock_whose_recorded_pid_is_dead_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let held = RunLock::acquire(dir.path(), "parent").unwrap();
        // As after a fork: the flock lives on in another process, the recorded pid is gone.
        let mut gone = Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        let record = Holder {
            pid: gone.id(),
            host: hostname(),
            command: "parent".into(),
            since: utc(SystemTime::now()),
        };
        write_record(&held.file, Some(&record)).unwrap();
        let e = RunLock::acquire(dir.path(), "second")
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("pid {} on", gone.id())), "{e}");
        assert!(
            e.contains("no longer running, yet the lock is still held"),
            "{e}"
        );
        assert!(e.contains("fuser -v"), "{e}");
    }

    #[test]
    fn a_holder_on_another_host_is_named_without_a_pid_check() {
        let holder = Holder {
            pid: 1,
            host: "elsewhere.example".into(),
            command: "bitsearch search".into(),
            since: "2024-05-01T12:00:00Z".into(),
        };
        let text = locked_message(&Some(Box::new(holder)));
        assert!(text.contains("on host elsewhere.example since 2024-05-01T12:00:00Z"));
        assert!(text.contains("another machine"), "{text}");
    }

    #[test]
    fn utc_formats_known_instants() {
        // Instants checked with `date -u -d @SECS +%FT%TZ`.
        let at = |s| utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
