//! Running the `bitsearch` binary in a temporary directory, and a tiny experiment that trains
//! its FP32 baseline in seconds.

use std::path::Path;
use std::process::{Command, Output};

/// An MLP on the embedded digits, one epoch, small attack and fine-tune: seconds per command.
pub const TINY_EXPERIMENT: &str = r#"
name = "tiny"
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
steps = 5
batch = 64
[attack]
fgsm_eps = [0.1]
pgd_eps = [0.1]
pgd_steps = 2
examples = 20
transfer = false
[budget]
latency = 0.5
[search]
attack_examples = 20
references = false
"#;

/// Runs `bitsearch ARGS` in `cwd`.
pub fn bitsearch(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitsearch"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the bitsearch binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stdout of a run that must succeed.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Stderr of a run that must fail.
pub fn fails(o: Output) -> String {
    assert!(!o.status.success(), "succeeded: {}", stdout(&o));
    stderr(&o)
}
