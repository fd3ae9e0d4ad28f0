//! A real one-node Slurm cluster for the tests that submit jobs (tests/sweep_slurm.rs,
//! tests/workers_slurm.rs): started by scripts/slurm-cluster.sh (root, Slurm and munge from
//! scripts/install-ci-deps.sh), stopped when dropped. The daemons listen on Slurm's default
//! ports, so one cluster runs at a time: the tests of a binary take turns (`Cluster::start`
//! waits for the one before to be dropped), and cargo runs test binaries one after another.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use super::cli::{command, ok, repo};

/// A one-node cluster started by scripts/slurm-cluster.sh, stopped (every daemon, by the pids
/// in its pid files) when dropped, whatever the test did.
pub struct Cluster {
    dir: PathBuf,
    /// Its slurm.conf, for SLURM_CONF.
    pub conf: String,
    /// This binary's turn, held until the cluster is stopped (dropped after `drop` runs).
    _turn: MutexGuard<'static, ()>,
}

/// Whose turn it is to run a cluster in this test binary.
static TURN: Mutex<()> = Mutex::new(());

impl Cluster {
    pub fn start(dir: &Path) -> Cluster {
        // A test that failed with the cluster up still stopped it (`Drop`): its turn is over.
        let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let out = Command::new("bash")
            .arg(repo().join("scripts/slurm-cluster.sh"))
            .arg("start")
            .arg(dir)
            .output()
            .unwrap();
        // Built first, so a failed start is stopped too when the assertion unwinds.
        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            conf: String::new(),
            _turn: turn,
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the cluster did not start: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.conf = (text.lines().last())
            .and_then(|l| l.strip_prefix("export SLURM_CONF="))
            .expect("an export line")
            .to_string();
        cluster
    }

    /// `bitsearch ARGS` in `cwd` talking to this cluster, not started yet.
    pub fn command(&self, args: &[&str], cwd: &Path) -> Command {
        let mut c = command(args, cwd);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// `bitsearch ARGS` in `cwd` talking to this cluster, which must succeed; its stdout.
    pub fn bitsearch(&self, args: &[&str], cwd: &Path) -> String {
        ok(self.command(args, cwd).output().unwrap())
    }

    /// A Slurm client command (`squeue`, `scancel`) talking to this cluster.
    pub fn client(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("scripts/slurm-cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// Whether Slurm is installed; outside CI its absence skips the test with a message
/// (`tools_present`).
pub fn slurm_available() -> bool {
    let missing: Vec<&str> = ["/usr/sbin/slurmctld", "/usr/bin/sbatch"]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    super::tools_present(&missing)
}
