//! `bitsearch sweep`: the cross product of experiments × profiles × agents × seeds, one search
//! run directory per cell, run here K at a time or handed to Slurm as a job array; `--status`
//! reads each cell's state from the directory.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};
use clap::Args;

use bitsearch::slurm::{self, check_script_path};
use bitsearch::sweep::{
    array_script, baseline_script, cell_states, write_cell_end, CellEnd, CellState, Choice, Plan,
    SlurmJobs,
};
use bitsearch::train::train_baseline;

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Experiment files; repeat for several.
    #[arg(long = "experiment", default_value = super::DEFAULT_EXPERIMENT)]
    pub experiments: Vec<PathBuf>,
    /// Device profiles (names or files); repeat for several.
    #[arg(long = "profile", default_value = "bitfusion")]
    pub profiles: Vec<String>,
    /// Agents (names or files); repeat for several.
    #[arg(long = "agent", default_value = "mbrl")]
    pub agents: Vec<String>,
    /// Seeds; repeat for several.
    #[arg(long = "seed", default_value = "0")]
    pub seeds: Vec<u64>,
    /// Episodes per search [default: each experiment's search.episodes].
    #[arg(long)]
    pub episodes: Option<usize>,
    /// The sweep directory: sweep.json, and each cell's run directory
    /// OUT/EXPERIMENT/sSEED/AGENT-PROFILE.
    #[arg(long, required_unless_present = "status")]
    pub out: Option<PathBuf>,
    /// Where FP32 baselines (and the score cache) live, shared by every cell.
    #[arg(long, default_value = "runs")]
    pub cache: PathBuf,
    /// Cells run at once on this machine [default: one per core, each on one thread, so
    /// candle's threads never oversubscribe the cores].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Each cell's batch size (`search --workers N`): every cell scores N policies at once in
    /// N single-threaded worker processes, so --jobs defaults to the cores / N here, and each
    /// Slurm task asks for N CPUs. An agent that cannot batch (DDPG) fails its cells before
    /// they train anything. Recorded in sweep.json [default: 1].
    #[arg(long)]
    pub workers: Option<NonZeroUsize>,
    /// Submit the cells to Slurm as a job array (OUT/sweep.sbatch) after a baseline job, and
    /// print the job ids, instead of running them here.
    #[arg(long)]
    pub slurm: bool,
    /// An argument for both `sbatch` calls, e.g. --sbatch-arg=--partition=cpu; repeatable.
    #[arg(long = "sbatch-arg", requires = "slurm", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Continue a sweep in OUT: runs (or submits) every cell not done, each resuming its run.
    #[arg(long)]
    pub resume: bool,
    /// Print each cell's state (done, running, stopped, failed, not started) and episodes.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub status: Option<PathBuf>,
    /// Run one cell of the sweep in OUT (what each array task runs).
    #[arg(long, hide = true, requires = "out")]
    pub cell: Option<usize>,
    /// Train the FP32 baselines of the sweep in OUT (what the baseline job runs).
    #[arg(long, hide = true, requires = "out")]
    pub baselines: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: &SweepArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.status {
        return print_status(dir);
    }
    let dir = absolute(args.out.as_deref().unwrap_or(Path::new(".")))?;
    if let Some(index) = args.cell {
        return run_cell(&dir, index, args.quiet);
    }
    if args.baselines {
        return train_baselines(&Plan::read(&dir)?, args.quiet);
    }
    let experiments = (args.experiments.iter())
        .map(|e| absolute(&super::resolve(e)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (profiles, agents) = check_inputs(&experiments, &args.profiles, &args.agents)?;
    let mut plan = Plan::new(
        experiments,
        profiles,
        agents,
        args.seeds.clone(),
        args.episodes,
        absolute(&args.cache)?,
    )?;
    plan.workers = args.workers;
    if args.slurm {
        // Before anything is written: a path the scripts cannot hold is refused up front.
        check_script_paths(&dir)?;
    }
    plan.create_or_check(&dir, args.resume)?;
    println!(
        "sweep: {} cells ({} experiments × {} profiles × {} agents × {} seeds) in {}",
        plan.cells.len(),
        plan.experiments.len(),
        plan.profiles.len(),
        plan.agents.len(),
        plan.seeds.len(),
        dir.display()
    );
    let todo = cells_to_run(&dir)?;
    if todo.is_empty() {
        println!("every cell is done or running: nothing to start");
        return Ok(());
    }
    match args.slurm {
        true => submit(&dir, &todo, &args.sbatch_args, plan.workers),
        false => run_here(&dir, &plan, &todo, args.jobs, args.quiet),
    }
}

/// Every experiment, profile and agent must load before any cell starts: a typo found by the
/// 40th of 120 cells, on a cluster, hours later, is a typo found too late. Returns the profiles
/// and agents with the names the search gives their run directories.
fn check_inputs(
    experiments: &[PathBuf],
    profiles: &[String],
    agents: &[String],
) -> anyhow::Result<(Vec<Choice>, Vec<Choice>)> {
    for e in experiments {
        bitsearch::experiment::Experiment::load(e)
            .with_context(|| format!("cannot load the experiment {}", e.display()))?;
    }
    let profiles = (profiles.iter())
        .map(|p| Ok(Choice::new(p, super::search::load_profile(p)?.name())))
        .collect::<anyhow::Result<_>>()?;
    let agents = (agents.iter())
        .map(|a| Ok(Choice::new(a, super::search::load_agent(a)?.name())))
        .collect::<anyhow::Result<_>>()?;
    Ok((profiles, agents))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("{}: no absolute path", path.display()))
}

/// The cells neither done nor running.
fn cells_to_run(dir: &Path) -> anyhow::Result<Vec<usize>> {
    Ok(cell_states(dir)?
        .into_iter()
        .filter(|c| !matches!(c.state, CellState::Done | CellState::Running(_)))
        .map(|c| c.index)
        .collect())
}

/// One cell: its search with `--resume`, then its end record (none if the process is killed).
fn run_cell(dir: &Path, index: usize, quiet: bool) -> anyhow::Result<()> {
    let plan = Plan::read(dir)?;
    let cell = plan.cell(dir, index)?;
    write_cell_end(dir, index, None)?;
    let args = super::search::SearchArgs {
        experiment: super::ExperimentArgs::file(&cell.experiment),
        profiles: vec![cell.profile.clone()],
        agent: cell.agent.clone(),
        episodes: plan.episodes,
        seed: cell.seed,
        out: dir.join(&cell.out),
        resume: true,
        cache: plan.cache.clone(),
        no_score_cache: false,
        // The sweep's batch size, if it has one (`--jobs` runs cells side by side).
        workers: plan.workers,
        slurm: false,
        sbatch_args: Vec::new(),
        quiet,
    };
    let result = super::search::run(&args);
    let end = CellEnd {
        ok: result.is_ok(),
        error: result.as_ref().err().map(|e| format!("{e:#}")),
    };
    write_cell_end(dir, index, Some(&end))?;
    result.with_context(|| format!("cell {index} ({})", cell.run.display()))
}

/// Trains (or finds) every experiment's baseline, once, before any cell needs it.
fn train_baselines(plan: &Plan, quiet: bool) -> anyhow::Result<()> {
    for path in &plan.experiments {
        let (exp, data) = super::load_experiment(&super::ExperimentArgs::file(path))?;
        let b = train_baseline(&exp.baseline(), &exp, &data, &plan.cache, !quiet)
            .with_context(|| format!("FP32 baseline of {}", path.display()))?;
        println!("{}: FP32 baseline in {}", exp.name, b.dir.display());
    }
    Ok(())
}

/// Runs `todo` here, `jobs` at a time, each cell a child process (`sweep --cell N`) logging to
/// OUT/logs/cell-N.out, after training the baselines in this process.
fn run_here(
    dir: &Path,
    plan: &Plan,
    todo: &[usize],
    jobs: Option<usize>,
    quiet: bool,
) -> anyhow::Result<()> {
    train_baselines(plan, quiet)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_cell = plan.workers.map_or(1, NonZeroUsize::get);
    let jobs = jobs.unwrap_or(cores / per_cell).max(1);
    let threads = (cores / jobs).max(1).to_string();
    let exe = std::env::current_exe().context("cannot find the bitsearch executable")?;
    let logs = dir.join("logs");
    bitsearch::rundir::create_dir(&logs)?;
    let mut queue = todo.iter().copied();
    let mut running: Vec<(usize, Child)> = Vec::new();
    let mut failed = Vec::new();
    loop {
        while running.len() < jobs {
            let Some(i) = queue.next() else { break };
            let log = logs.join(format!("cell-{i}.out"));
            let file = bitsearch::rundir::open_no_follow(
                &log,
                std::fs::OpenOptions::new().create(true).append(true),
            )?;
            let child = Command::new(&exe)
                .args(["sweep", "--quiet", "--cell", &i.to_string(), "--out"])
                .arg(dir)
                .env("RAYON_NUM_THREADS", &threads)
                .env("CANDLE_NUM_THREADS", &threads)
                .stdin(Stdio::null())
                .stdout(file.try_clone()?)
                .stderr(file)
                .spawn()
                .context("cannot start a cell")?;
            println!(
                "cell {i}: {} (log {})",
                plan.cells[i].run.display(),
                log.display()
            );
            running.push((i, child));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut k = 0;
        while k < running.len() {
            match running[k].1.try_wait()? {
                Some(status) => {
                    let (i, _) = running.swap_remove(k);
                    println!(
                        "cell {i}: {}",
                        if status.success() { "done" } else { "failed" }
                    );
                    if !status.success() {
                        failed.push(i);
                    }
                }
                None => k += 1,
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "cells {failed:?} failed: see {}/logs/cell-N.out",
            dir.display()
        );
    }
    Ok(())
}

/// The paths the sbatch scripts hold (the executable, the sweep directory, the current
/// directory) can be written into them.
fn check_script_paths(dir: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the bitsearch executable")?;
    let cwd = std::env::current_dir().context("no current directory")?;
    check_script_path("the bitsearch executable", &exe)?;
    check_script_path("the sweep directory (--out)", dir)?;
    check_script_path("the current directory", &cwd)?;
    Ok(())
}

/// Writes the two scripts and submits the baseline job, then the array of `todo` after it.
fn submit(
    dir: &Path,
    todo: &[usize],
    sbatch_args: &[String],
    workers: Option<NonZeroUsize>,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the bitsearch executable")?;
    let cwd = std::env::current_dir().context("no current directory")?;
    let (array_text, baseline_text) = (
        array_script(&exe, dir, &cwd)?,
        baseline_script(&exe, dir, &cwd)?,
    );
    bitsearch::rundir::create_dir(&dir.join("logs"))?;
    let (array, baseline) = (dir.join("sweep.sbatch"), dir.join("baseline.sbatch"));
    bitsearch::rundir::write_atomic(&array, array_text.as_bytes())?;
    bitsearch::rundir::write_atomic(&baseline, baseline_text.as_bytes())?;
    let base_job = slurm::submit(sbatch_args, &baseline)?.to_string();
    let list: Vec<String> = todo.iter().map(|i| i.to_string()).collect();
    // A cell with batches runs its workers inside its task, one CPU each; first, so that a
    // --cpus-per-task of the user's, later on the line, is the one sbatch keeps.
    let cpus = match workers {
        Some(n) if n.get() > 1 => vec![format!("--cpus-per-task={n}")],
        _ => Vec::new(),
    };
    let array_args = [
        &cpus[..],
        sbatch_args,
        &[
            format!("--array={}", list.join(",")),
            format!("--dependency=afterok:{base_job}"),
        ],
    ]
    .concat();
    let array_job = slurm::submit(&array_args, &array)?.to_string();
    let mut jobs = SlurmJobs::read(dir);
    jobs.submissions.push(bitsearch::sweep::Submission {
        baseline_job: base_job.clone(),
        array_job: array_job.clone(),
        cells: todo.to_vec(),
    });
    bitsearch::rundir::write_json(&dir.join(SlurmJobs::FILE), &jobs)?;
    println!(
        "submitted job array {array_job} ({} cells: task N runs cell N) after baseline job {base_job}",
        todo.len()
    );
    println!("status: bitsearch sweep --status {}", dir.display());
    Ok(())
}

fn print_status(dir: &Path) -> anyhow::Result<()> {
    let cells = cell_states(dir).with_context(|| format!("no sweep in {}", dir.display()))?;
    let jobs = SlurmJobs::read(dir);
    let mut counts = [0usize; 5];
    for c in &cells {
        let (k, state) = match &c.state {
            CellState::Done => (0, "done".to_string()),
            CellState::Running(h) => (1, format!("running (pid {} on {})", h.pid, h.host)),
            CellState::Stopped => (2, "stopped (resume goes on)".to_string()),
            CellState::Failed(e) => (3, format!("failed: {e}")),
            CellState::NotStarted => (4, "not started".to_string()),
        };
        counts[k] += 1;
        let task = (jobs.array_job_of(c.index))
            .map(|j| format!(" [task {j}_{}]", c.index))
            .unwrap_or_default();
        println!(
            "{:>4}  {:<40} {:>5} episodes  {state}{task}",
            c.index,
            c.run.display(),
            c.episodes
        );
    }
    println!(
        "{} cells: {} done, {} running, {} stopped, {} failed, {} not started",
        cells.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4]
    );
    Ok(())
}
