//! `bitsearch sweep` on a real one-node Slurm cluster (scripts/slurm-cluster.sh; Slurm and
//! munge come from Debian through scripts/install-ci-deps.sh): a 2 profiles × 2 seeds sweep runs
//! as a job array, a task cancelled mid-way is resubmitted and resumes without losing an
//! episode, the same sweep run locally writes identical episodes.csv files, and compare reads
//! the sweep. Skipped (with a message) only when Slurm is absent and `CI` is unset.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cli::{bitsearch, fails, ok, repo};
use common::fixtures::lines_without_timing;
use common::slurm::{slurm_available, Cluster};

const EPISODES: usize = 10;

/// Every profile, agent and experiment is loaded before a sweep writes anything: a typo is an
/// error naming it, not a failed cell hours later.
#[test]
fn a_sweep_with_an_unknown_profile_is_refused_before_any_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "sweep",
        "--profile",
        "bitfusion",
        "--profile",
        "bismo",
        "--out",
        "s",
    ];
    let e = fails(bitsearch(&args, tmp.path()));
    assert!(
        e.contains("cannot load profile bismo") && e.contains("no profile named"),
        "{e}"
    );
    let e = fails(bitsearch(
        &["sweep", "--agent", "ddgp", "--out", "s"],
        tmp.path(),
    ));
    assert!(e.contains("cannot load the agent ddgp"), "{e}");
    assert!(!tmp.path().join("s").exists(), "nothing written");
    // A copy of a profile under another file name keeps its `name`, which names the search's
    // run directory: two cells in one directory, refused before anything is written.
    let copy = tmp.path().join("fusion-copy.toml");
    std::fs::copy(repo().join("hardware-profiles/bitfusion.toml"), &copy).unwrap();
    let args = [
        "sweep",
        "--profile",
        "bitfusion",
        "--profile",
        copy.to_str().unwrap(),
        "--out",
        "s",
    ];
    let e = fails(bitsearch(&args, tmp.path()));
    assert!(
        e.contains("fusion-copy.toml") && e.contains("s0/mbrl-bitfusion"),
        "{e}"
    );
    assert!(!tmp.path().join("s").exists(), "nothing written");
}

/// The sweep's flags, into `out` with its own baseline cache (so neither sweep reuses the
/// other's scores: both compute every episode).
fn sweep_args<'a>(exp: &'a str, out: &'a str, cache: &'a str) -> Vec<&'a str> {
    vec![
        "sweep",
        "--experiment",
        exp,
        "--profile",
        "bitfusion",
        "--profile",
        "bismo-edge",
        "--agent",
        "random",
        "--seed",
        "0",
        "--seed",
        "1",
        "--episodes",
        "10",
        "--out",
        out,
        "--cache",
        cache,
        "--quiet",
    ]
}

/// Polls `--status` until `done(text)` holds (or panics after 300 s, with the status).
fn wait_for(cluster: &Cluster, dir: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let status = cluster.bitsearch(&["sweep", "--status", dir.to_str().unwrap()], dir);
        if done(&status) {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "waited 300 s for {what}:\n{status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn logged(run: &Path) -> Vec<String> {
    match run.join("episodes.csv").exists() {
        true => lines_without_timing(&run.join("episodes.csv")),
        false => Vec::new(),
    }
}

#[test]
fn a_sweep_runs_as_a_slurm_array_and_a_cancelled_task_resumes() {
    if !slurm_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let exp = work.join("tiny.toml");
    let text = format!(
        "extends = \"{}\"\nname = \"tiny\"\n[train]\nepochs = 1\n[finetune]\nsteps = 30\n\
         [attack]\npgd_steps = 2\nsquare_queries = 0\nexamples = 20\nfgsm_eps = [0.1]\n\
         pgd_eps = [0.1]\n[front_test]\nenabled = false\n[search]\nattack_examples = 20\n\
         references = false\n",
        repo().join("experiments/lenet5-mnist.toml").display()
    );
    std::fs::write(&exp, text).unwrap();
    let exp = exp.to_str().unwrap();
    let cluster = Cluster::start(&work.join("cluster"));

    let out = cluster.bitsearch(
        &[sweep_args(exp, "slurm", "cache-slurm"), vec!["--slurm"]].concat(),
        work,
    );
    let job = (out.lines())
        .find_map(|l| l.strip_prefix("submitted job array "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    // Cancel cell 1's task once it has logged two episodes, before it ends.
    let sweep = work.join("slurm");
    let cell1 = sweep.join("tiny/s0/random-bismo-edge");
    let start = Instant::now();
    while logged(&cell1).len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "cell 1 never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = cluster
        .client("scancel")
        .arg(format!("{job}_1"))
        .status()
        .unwrap();
    assert!(status.success());
    let status = wait_for(&cluster, &sweep, "the other cells", |s| {
        s.contains("3 done") && s.contains("1 stopped")
    });
    let before = logged(&cell1);
    assert!(
        (3..=EPISODES).contains(&before.len()),
        "cell 1 was cancelled mid-way: {}\n{status}",
        before.len()
    );

    // Resubmitting the sweep submits the stopped cell alone, which resumes its log.
    let again = cluster.bitsearch(
        &[
            sweep_args(exp, "slurm", "cache-slurm"),
            vec!["--slurm", "--resume"],
        ]
        .concat(),
        work,
    );
    assert!(again.contains("(1 cells"), "{again}");
    wait_for(&cluster, &sweep, "the resumed cell", |s| {
        s.contains("4 done")
    });
    let after = logged(&cell1);
    assert_eq!(after.len(), EPISODES + 1);
    assert_eq!(
        after[..before.len()],
        before[..],
        "episodes logged before the cancel changed"
    );

    // The same sweep here, without Slurm: the same episodes.csv in every cell.
    ok(bitsearch(&sweep_args(exp, "local", "cache-local"), work));
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sweep.join("sweep.json")).unwrap()).unwrap();
    for cell in plan["cells"].as_array().unwrap() {
        let run = cell["run"].as_str().unwrap();
        let (a, b) = (
            logged(&sweep.join(run)),
            logged(&work.join("local").join(run)),
        );
        assert_eq!(a.len(), EPISODES + 1, "{run}");
        assert_eq!(a, b, "{run}: Slurm and local sweeps differ");
    }
    let cmp = ok(bitsearch(&["compare", "slurm", "--out", "cmp"], work));
    assert_eq!(cmp.matches("random-bismo-edge (s").count(), 2, "{cmp}");
    assert_eq!(cmp.matches("random-bitfusion (s").count(), 2, "{cmp}");
    drop(cluster);
}
