//! `bitsearch report` (charts and report.html of a run or DQ study) and `bitsearch compare`
//! (overlaid fronts and hypervolumes of several runs).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use bitsearch::report::compare::{compare_at, reference_text, table_rows, Comparison};
use bitsearch::report::study::{AtSpec, Study};
use bitsearch::report::uniform::Versus;
use bitsearch::report::{write_report, ReportFiles};
use bitsearch::rundir::{dir_kind, this_command, RunLock};

/// Arguments of `bitsearch report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// A run directory written by `bitsearch search`, or a DQ study written by `bitsearch dq`
    /// (recognized by its dq.csv).
    pub run_dir: PathBuf,
}

/// Arguments of `bitsearch compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Run directories written by `bitsearch search` (other agents, devices or seeds), or sweep
    /// directories (`bitsearch sweep --out`), which stand for their cells' run directories.
    #[arg(required = true)]
    pub run_dirs: Vec<PathBuf>,
    /// Where to write compare.csv, compare.html and charts/ [default: the current directory].
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Also the hypervolume of each run's first N episodes at each N (e.g. --at 30,60,200), as a
    /// fraction of the reference front's, per run and per agent (mean ± sd over its runs), on
    /// accuracy × robust accuracy × latency and accuracy × latency: in compare.html,
    /// compare-at.csv and compare-agents.csv.
    #[arg(long, value_name = "N,...", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub at: Vec<u64>,
    /// The run whose feasible scored policies are the reference front of --at (e.g. an
    /// exhaustive run of the space), or a sweep directory (the union of its cells') [default:
    /// the union of every compared run's].
    #[arg(long, value_name = "DIR", requires = "at")]
    pub reference: Option<PathBuf>,
}

/// Regenerates the charts and report.html of a run directory.
pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let files = locked_report(&args.run_dir)
        .with_context(|| format!("cannot write the report of {}", args.run_dir.display()))?;
    for chart in &files.charts {
        println!("{}", chart.png.display());
        println!("{}", chart.svg.display());
    }
    println!("{}", files.html.display());
    for note in &files.notes {
        eprintln!("note: {note}");
    }
    Ok(())
}

/// Writes the report of `dir` holding its lock, so no search writes the directory meanwhile. A
/// directory that is not a run or a study (config.json or dq.csv) is neither locked nor
/// cleaned: the error names what is missing and the directory stays as it was.
fn locked_report(dir: &Path) -> anyhow::Result<ReportFiles> {
    dir_kind(dir)?;
    let _lock = lock(dir)?;
    Ok(write_report(dir)?)
}

/// Takes the lock of run directory `dir`, saying on stderr when it was left by a dead process.
fn lock(dir: &Path) -> anyhow::Result<RunLock> {
    let lock = RunLock::acquire(dir, &this_command())?;
    if let Some(notice) = lock.took_over() {
        eprintln!("{notice}");
    }
    Ok(lock)
}

/// Compares the fronts of several runs and prints the hypervolume table.
pub fn run_compare(args: &CompareArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create --out {}", args.out.display()))?;
    // A sweep directory stands for its cells' runs (those with an episode logged so far).
    let (dirs, skipped) = bitsearch::sweep::expand_runs(&args.run_dirs)?;
    for run in &skipped {
        eprintln!("{}: no episode yet, left out", run.display());
    }
    let at = match args.at.is_empty() {
        true => None,
        false => Some(at_spec(args)?),
    };
    let cmp = compare_at(&dirs, &args.out, at.as_ref()).context("cannot compare the runs")?;
    let (header, rows) = table_rows(&cmp);
    print_table(&header, &rows);
    println!();
    println!("Hypervolume over each run's feasible scored policies; shared reference point =");
    println!("the worst value per objective over all compared runs; norm. = HV / the box");
    println!("between that reference and the best observed point.");
    for line in reference_text(&cmp) {
        println!("  {line}");
    }
    if let Some(study) = &cmp.study {
        print_study(study);
    }
    if let Some(v) = &cmp.uniform {
        println!();
        println!("Mixed against uniform: each run's best policy beside the best uniform policy");
        println!("under the same budget (accuracy %, margin in points; mean ± sd (runs)):");
        let (header, rows) = v.group_table();
        print_table(&header, &rows);
    }
    print_files(&cmp, &args.out);
    for note in &cmp.notes {
        eprintln!("note: {note}");
    }
    Ok(())
}

/// `--at` and `--reference`, the reference expanded like the runs (a sweep: its cells).
fn at_spec(args: &CompareArgs) -> anyhow::Result<AtSpec> {
    let reference = match &args.reference {
        Some(dir) => {
            let (runs, _) = bitsearch::sweep::expand_runs(std::slice::from_ref(dir))?;
            if runs.is_empty() {
                anyhow::bail!(
                    "--reference {}: no run with an episode logged",
                    dir.display()
                );
            }
            runs
        }
        None => Vec::new(),
    };
    let at = (args.at.iter())
        .map(|&n| usize::try_from(n).with_context(|| format!("--at {n}: too large")))
        .collect::<anyhow::Result<_>>()?;
    Ok(AtSpec { at, reference })
}

/// The hypervolumes at N episodes: per set, the reference point, then per agent and per run.
fn print_study(study: &Study) {
    println!();
    println!(
        "Hypervolume of each run's first N episodes as a fraction of the reference front's ({});",
        study.reference
    );
    println!("per agent: mean ± sample sd over its runs (runs); —: fewer than N episodes logged.");
    for (s, line) in study.reference_lines().iter().enumerate() {
        println!();
        println!("{line}");
        for (header, rows) in [study.agent_table(s), study.run_table(s)] {
            println!();
            print_table(&header, &rows);
        }
    }
    println!();
}

fn print_files(cmp: &Comparison, out: &Path) {
    println!("{}", cmp.csv.display());
    if cmp.uniform.is_some() {
        println!("{}", out.join(Versus::FILE).display());
    }
    if let Some(study) = &cmp.study {
        for file in Study::files(out) {
            println!("{}", file.display());
        }
        for chart in &study.chart_files {
            println!("{}", chart.svg.display());
        }
    }
    println!("{}", cmp.html.display());
}

fn print_table(header: &[String], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = (cells.iter().zip(&widths))
            .map(|(c, &w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header);
    for row in rows {
        line(row);
    }
}
