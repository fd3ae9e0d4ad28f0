//! Faults of the machine for end-to-end tests: a directory that refuses writes (even root's), a
//! file-size limit, a small tmpfs to fill up, and waiting on a running search's log.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("a path without NUL")
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// mount(2); None is a null pointer. Async-signal-safe (for `pre_exec`).
fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> std::io::Result<()> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    check(unsafe {
        libc::mount(
            ptr(src),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    })
}

/// Runs `cmd` in its own mount namespace where `dir` is a read-only bind mount of itself: its
/// writes fail with EROFS, root's included (permission bits do not stop root). Outside, `dir`
/// stays writable and shows what the command left. Spawning fails if this cannot be set up.
pub fn read_only(cmd: &mut Command, dir: &Path) {
    let (root, dir) = (c_path(Path::new("/")), c_path(dir));
    // SAFETY: between fork and exec only async-signal-safe syscalls run, on pre-built strings.
    unsafe {
        cmd.pre_exec(move || {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Private, so the read-only mount stays in this namespace.
            mount(None, &root, None, libc::MS_REC | libc::MS_PRIVATE, None)?;
            mount(Some(&dir), &dir, None, libc::MS_BIND, None)?;
            let ro = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
            mount(None, &dir, None, ro, None)
        });
    }
}

/// Runs `cmd` with RLIMIT_FSIZE = `bytes` and SIGXFSZ ignored (both survive exec): a write past
/// `bytes` in any file writes what fits, then fails with EFBIG.
pub fn file_size_limit(cmd: &mut Command, bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit and signal are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            check(libc::setrlimit(libc::RLIMIT_FSIZE, &limit))?;
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A tmpfs of a fixed size mounted on a fresh directory, unmounted on drop.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` on `dir` (created); panics if it cannot (not root).
    pub fn mount(dir: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let (tmpfs, target) = (c_path(Path::new("tmpfs")), c_path(dir));
        let size = CString::new(format!("size={bytes}")).unwrap();
        mount(Some(&tmpfs), &target, Some(&tmpfs), 0, Some(&size))
            .unwrap_or_else(|e| panic!("cannot mount a tmpfs on {}: {e}", dir.display()));
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    /// Writes `name` until the filesystem is full (ENOSPC).
    pub fn fill(&self, name: &str) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.dir.join(name)).unwrap();
        let block = vec![0u8; 4096];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", self.dir.display()),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = c_path(&self.dir);
        // SAFETY: umount2(2) with a valid path; MNT_DETACH so open files do not block it.
        unsafe {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// Waits until `log` has at least `lines` lines while `child` runs (panics if it ends first).
pub fn wait_for_lines(child: &mut Child, log: &Path, lines: usize) {
    let start = Instant::now();
    while std::fs::read_to_string(log).map_or(0, |t| t.lines().count()) < lines {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no progress in {}",
            log.display()
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the search ended ({status}) before {} had {lines} lines",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The names of the files in `dir` that a write left behind (`*.tmp-*`).
pub fn temporary_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}
