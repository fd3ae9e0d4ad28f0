//! `bitsearch search` end to end: a run killed with SIGKILL in the middle of an episode is
//! resumed with --resume to exactly the uninterrupted run's episodes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXP: &str = r#"
name = "tiny-cli"
[data]
source = "embedded:mnist-10k"
validation = 500
[model]
arch = "mlp"
[train]
epochs = 1
batch = 64
lr = 1e-3
[finetune]
steps = 40
batch = 64
[attack]
fgsm_eps = [0.1]
pgd_eps = [0.1]
pgd_steps = 5
examples = 50
[budget]
latency = 0.5
[search]
attack_examples = 50
references = false
"#;

const AGENT: &str = "agent = \"ddpg\"\nhidden = 32\nactor_lr = 1e-4\ncritic_lr = 1e-3\nbatch = 16\nreplay_episodes = 128\ntau = 0.01\ndiscount = 1.0\nwarmup = 2\nsigma = 0.5\nsigma_decay = 0.99\nbaseline_decay = 0.95\n";

fn search(cwd: &Path, out: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bitsearch"));
    c.args([
        "search",
        "--experiment",
        "exp.toml",
        "--agent",
        "agent.toml",
        "--episodes",
        "6",
        "--cache",
        "cache",
        "--quiet",
        "--out",
        out,
    ]);
    c.args(extra)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn lines_without_timing(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

#[test]
fn sigkill_mid_episode_then_resume_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), EXP).unwrap();
    std::fs::write(dir.path().join("agent.toml"), AGENT).unwrap();
    let whole = search(dir.path(), "whole", &[]).output().unwrap();
    assert!(
        whole.status.success(),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );

    let log = dir.path().join("cut/ddpg-bitfusion/episodes.csv");
    let mut child = search(dir.path(), "cut", &[]).spawn().unwrap();
    let start = Instant::now();
    // Wait for two whole episodes (header + 2 lines), then kill during the third.
    while std::fs::read_to_string(&log)
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 3
    {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the search made no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the search ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done = std::fs::read_to_string(&log).unwrap().lines().count() - 1;
    assert!(done < 6, "killed before the end ({done} episodes logged)");

    let again = search(dir.path(), "cut", &[]).output().unwrap();
    assert!(
        !again.status.success(),
        "a second run without --resume must refuse to overwrite"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    let resumed = search(dir.path(), "cut", &["--resume"]).output().unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let want = lines_without_timing(&dir.path().join("whole/ddpg-bitfusion/episodes.csv"));
    assert_eq!(want.len(), 7);
    assert_eq!(lines_without_timing(&log), want);
    assert!(dir.path().join("cut/ddpg-bitfusion/report.html").exists());
}
