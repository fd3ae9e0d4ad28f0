//! `bitsearch search`: one search per device profile, each in its own run directory, with the
//! HTML report written at the end.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use bitsearch::agents::AgentConfig;
use bitsearch::hardware::{resolve_profile, Profile};
use bitsearch::report::units::{quantity, Quantity};
use bitsearch::rundir::BestPolicy;
use bitsearch::search::{run_search_with, Place, RunSpec, RunSummary, Workers};

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub experiment: super::ExperimentArgs,
    /// Target device: a profile name (hardware-profiles/NAME.toml) or file; repeat the flag to
    /// run one search per device.
    #[arg(long = "profile", default_value = "bitfusion")]
    pub profiles: Vec<String>,
    /// Agent: a name (agents/NAME.toml: mbrl, ddpg, random, nsga2, greedy, exhaustive) or a
    /// file.
    #[arg(long, default_value = "mbrl")]
    pub agent: String,
    /// Episodes (scored policies) per search [default: the experiment's search.episodes].
    #[arg(long)]
    pub episodes: Option<usize>,
    /// Seed of the agent, the proposals and the fine-tunes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Parent directory of the run directories (one per profile: OUT/AGENT-PROFILE).
    #[arg(long, default_value = "runs/search")]
    pub out: PathBuf,
    /// Continue interrupted runs from their last completed episode.
    #[arg(long)]
    pub resume: bool,
    /// Where FP32 baselines are cached (trained there if missing).
    #[arg(long, default_value = "runs")]
    pub cache: PathBuf,
    /// Score every policy afresh instead of reusing the scores cached beside the FP32 baseline
    /// (BASELINE/scores/; a policy's score depends only on the policy and the experiment).
    #[arg(long)]
    pub no_score_cache: bool,
    /// Policies scored at once, each by a single-threaded worker process (N ≈ cores, or the
    /// Slurm jobs to run at once with --slurm): the agent proposes a batch of N, and learns
    /// from them in proposal order. Episodes depend on N (not on where they ran), so a resume
    /// reuses the run's [default: 1, or the run's own on --resume]. DDPG is sequential and runs
    /// with 1 only.
    #[arg(long)]
    pub workers: Option<NonZeroUsize>,
    /// Run each batch's workers as Slurm jobs (one `sbatch --wait` job of one CPU per policy)
    /// instead of as processes here; the search itself stays here. Needs --workers N > 1 (or a
    /// resumed run's), and a run directory, --cache and current directory the nodes share. The
    /// episodes are the same as with local workers.
    #[arg(long)]
    pub slurm: bool,
    /// An argument for every worker job's `sbatch`, e.g. --sbatch-arg=--partition=cpu;
    /// repeatable.
    #[arg(long = "sbatch-arg", requires = "slurm", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// An agent name resolves to agents/NAME.toml (current directory, then the source tree).
fn resolve_agent(name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.extension().is_some() || p.components().count() > 1 {
        return super::resolve(p);
    }
    super::resolve(&Path::new("agents").join(format!("{name}.toml")))
}

/// A profile given as a name or a file, loaded.
pub fn load_profile(given: &str) -> anyhow::Result<Profile> {
    resolve_profile(given)
        .and_then(|f| Profile::load(&f))
        .with_context(|| format!("cannot load profile {given}"))
}

/// An agent given as a name or a file, loaded.
pub fn load_agent(given: &str) -> anyhow::Result<AgentConfig> {
    AgentConfig::load(&resolve_agent(given))
        .with_context(|| format!("cannot load the agent {given}"))
}

pub fn run(args: &SearchArgs) -> anyhow::Result<()> {
    let (exp, data) = super::load_experiment(&args.experiment)?;
    let agent = load_agent(&args.agent)?;
    let workers = workers(args)?;
    let profiles = (args.profiles.iter())
        .map(|p| load_profile(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let base = super::baseline(&exp, &data, &args.cache, !args.quiet)?;
    println!("{}", super::baseline_line(&exp, &base));
    let episodes = args.episodes.unwrap_or(exp.search.episodes);
    for profile in &profiles {
        let dir = args
            .out
            .join(format!("{}-{}", agent.name(), profile.name()));
        println!(
            "search: agent {} on {} for {episodes} episodes -> {}",
            agent.name(),
            profile.name(),
            dir.display()
        );
        // report.html as soon as the episodes end; rewritten once front-test.csv is there.
        let early_report = |dir: &Path| {
            match bitsearch::report::write_report(dir) {
            Ok(r) if !args.quiet => eprintln!(
                "  report: {} (the front's test-split re-score follows; the report is rewritten when it ends)",
                r.html.display()
            ),
            Ok(_) => {}
            Err(e) => eprintln!("  warning: report of {}: {e:#}", dir.display()),
        }
        };
        // OUT/AGENT-PROFILE is named by the tool: a link planted there (in a shared --out)
        // would carry the whole run into the link's target.
        bitsearch::rundir::create_dir(&dir)?;
        let spec = RunSpec {
            exp: &exp,
            data: &data,
            base: &base.model,
            profile,
            agent: &agent,
            episodes,
            seed: args.seed,
            dir,
            resume: args.resume,
            show: !args.quiet,
            scores: (!args.no_score_cache)
                .then(|| bitsearch::search::cache_file(&exp, &base.dir.join("scores"))),
            after_episodes: Some(&early_report),
        };
        let summary = run_search_with(&spec, &workers)
            .with_context(|| format!("search on {}", profile.name()))?;
        // Still under the search's lock, so no other process writes the directory in between.
        let report = bitsearch::report::write_report(&summary.dir)
            .with_context(|| format!("report of {}", summary.dir.display()))?;
        print_summary(&summary, &report.html);
        // Releases the lock.
        drop(summary);
    }
    Ok(())
}

/// How the search scores: `--workers` policies at once, each by this executable's `worker`,
/// here or as Slurm jobs (sbatch is checked before any baseline is trained).
fn workers(args: &SearchArgs) -> anyhow::Result<Workers> {
    let exe = std::env::current_exe().context("cannot find this executable to start workers")?;
    // The batch size a new run gets (a resume's comes from its config.json): refused before
    // any baseline is trained.
    let batch = (args.workers.map(NonZeroUsize::get)).or((!args.resume).then_some(1));
    if let Some(workers) = batch.filter(|&n| args.slurm && n < 2) {
        return Err(bitsearch::search::SearchError::SlurmWithoutBatches { workers }.into());
    }
    let place = match args.slurm {
        true => {
            bitsearch::slurm::check_sbatch()?;
            Place::Slurm {
                sbatch_args: args.sbatch_args.clone(),
            }
        }
        false => Place::Local,
    };
    Ok(Workers {
        count: args.workers,
        command: vec![exe.into(), "worker".into()],
        cache: args.cache.clone(),
        place,
    })
}

/// The best policy beside the best uniform one under the same budget, on both splits; a margin
/// within the split's standard error says so.
fn uniform_line(b: &BestPolicy) -> Option<String> {
    let u = b.uniform.as_ref()?;
    let (val, test) = b.margin_over_uniform()?;
    let (se_val, se_test) = u.standard_errors();
    let pct = |x: f64| format!("{:.2}%", 100.0 * x);
    let margin = |x: f64, se: f64| {
        let noise = if x.abs() < se {
            format!(" (within the split's standard error, {:.2})", 100.0 * se)
        } else {
            String::new()
        };
        format!("{:+.2} points{noise}", 100.0 * x)
    };
    Some(format!(
        "  best uniform under the budget: {} ({}), accuracy {} validation / {} test; \
         the best policy's margin: {} validation, {} test",
        u.policy,
        quantity(Quantity::Seconds, Some(u.latency_s)),
        pct(u.validation.accuracy),
        pct(u.test.accuracy),
        margin(val, se_val),
        margin(test, se_test),
    ))
}

fn print_summary(s: &RunSummary, html: &Path) {
    match &s.best {
        Some(b) => println!(
            "  best of {} episodes: {} (episode {}), validation accuracy {:.2}%, robust {:.2}%{}, latency {}, energy {}, reward {:.3}",
            s.episodes,
            b.policy,
            b.episode,
            100.0 * b.accuracy.unwrap_or(0.0),
            100.0 * b.robust_accuracy.unwrap_or(0.0),
            if b.masking_flagged() { " (masking flagged: credited 0)" } else { "" },
            quantity(Quantity::Seconds, Some(b.latency_s)),
            quantity(Quantity::Joules, Some(b.energy_j)),
            b.reward.unwrap_or(0.0)
        ),
        None => println!("  no feasible policy was scored in {} episodes", s.episodes),
    }
    if let Some(line) = s.best_policy.as_ref().and_then(uniform_line) {
        println!("{line}");
    }
    let front = s.dir.join("front-test.csv");
    println!(
        "  test-split scores in {}/best-policy.json{}; report: {}",
        s.dir.display(),
        if front.exists() {
            " and front-test.csv (the feasible front, strong suite, eps sweep)"
        } else {
            ""
        },
        html.display()
    );
}
