//! A whole search run directory read back (config.json, episodes.csv, references.csv, and
//! pareto.csv, best-policy.json, front-test.csv and measured.csv once written), a DQ study or a
//! sensitivity study, whichever a directory holds.

use std::path::{Path, PathBuf};

use super::{
    BestPolicy, DqDir, Episode, Episodes, FrontTest, Measured, MeasuredRow, RunConfig, RunDirError,
    Sensitivity, SensitivityDir,
};

/// A search run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub dir: PathBuf,
    pub config: RunConfig,
    pub episodes: Episodes,
    pub references: Episodes,
    /// `None` before the first episode has been scored.
    pub pareto: Option<Episodes>,
    /// `None` until the search has finished.
    pub best: Option<BestPolicy>,
    /// `None` until the search has finished, or when `[front_test]` is disabled.
    pub front_test: Option<FrontTest>,
    /// measured.csv: `None` until `bitsearch measure` has timed a policy of the run.
    pub measured: Option<Vec<MeasuredRow>>,
}

/// What a directory holds.
#[derive(Debug, Clone)]
pub enum AnyDir {
    Run(Box<RunDir>),
    Dq(DqDir),
    Sensitivity(Box<SensitivityDir>),
}

/// Which kind of directory `dir` is, by the file that marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirKind {
    /// A search run (config.json).
    Run,
    /// A DQ study (dq.csv).
    Dq,
    /// A sensitivity study (sensitivity.csv).
    Sensitivity,
}

/// Whether `dir` is a search run, a DQ study or a sensitivity study, from its marker file alone; anything else is
/// `RunDirError::NotARunDir`. Commands that lock or clean a directory given on the command line
/// ask this first, so a directory that is no run is left exactly as it was.
pub fn dir_kind(dir: &Path) -> Result<DirKind, RunDirError> {
    if dir.join("dq.csv").is_file() {
        Ok(DirKind::Dq)
    } else if dir.join(Sensitivity::FILE).is_file() {
        Ok(DirKind::Sensitivity)
    } else if dir.join(RunConfig::FILE).is_file() {
        Ok(DirKind::Run)
    } else {
        Err(RunDirError::NotARunDir {
            path: dir.to_path_buf(),
        })
    }
}

/// Reads a search run, a DQ study or a sensitivity study, whichever `dir` holds (by its marker
/// file: dq.csv, sensitivity.csv, config.json).
pub fn read_any(dir: &Path) -> Result<AnyDir, RunDirError> {
    match dir_kind(dir)? {
        DirKind::Dq => Ok(AnyDir::Dq(DqDir::read(dir)?)),
        DirKind::Run => Ok(AnyDir::Run(Box::new(RunDir::read(dir)?))),
        DirKind::Sensitivity => Ok(AnyDir::Sensitivity(Box::new(SensitivityDir::read(dir)?))),
    }
}

impl RunDir {
    /// Reads every file of a search run; pareto.csv, best-policy.json, front-test.csv and
    /// measured.csv may be absent.
    pub fn read(dir: &Path) -> Result<RunDir, RunDirError> {
        let config = RunConfig::read(&dir.join(RunConfig::FILE))?;
        let hint = "written by `bitsearch search`";
        let episodes = Episodes::read(&dir.join("episodes.csv"), hint)?;
        let references = Episodes::read(&dir.join("references.csv"), hint)?;
        let pareto_path = dir.join("pareto.csv");
        let pareto = match pareto_path.is_file() {
            true => Some(Episodes::read(&pareto_path, hint)?),
            false => None,
        };
        let best_path = dir.join(BestPolicy::FILE);
        let best = match best_path.is_file() {
            true => Some(BestPolicy::read(&best_path)?),
            false => None,
        };
        let front_path = dir.join(FrontTest::FILE);
        let front_test = match front_path.is_file() {
            true => Some(FrontTest::read(&front_path)?),
            false => None,
        };
        let run = RunDir {
            dir: dir.to_path_buf(),
            config,
            episodes,
            references,
            pareto,
            best,
            front_test,
            measured: Measured::read(dir)?,
        };
        for table in [&run.episodes, &run.references]
            .into_iter()
            .chain(&run.pareto)
        {
            run.check_layers(table)?;
        }
        Ok(run)
    }

    /// The layer columns of `table` must name config.json's layers, in order.
    fn check_layers(&self, table: &Episodes) -> Result<(), RunDirError> {
        let expected: Vec<&str> = self.config.layers.iter().map(|l| l.name.as_str()).collect();
        if table.layers != expected {
            return Err(RunDirError::Layers {
                path: table.path.clone(),
                detail: format!(
                    "layer columns {:?} differ from config.json's layers {:?}",
                    table.layers, expected
                ),
            });
        }
        Ok(())
    }

    /// The scored (not failed) full-fidelity episodes: what fronts and charts are made of.
    pub fn scored(&self) -> impl Iterator<Item = &Episode> {
        self.episodes.rows.iter().filter(|e| e.counts())
    }

    /// The full-fidelity episodes logged, failed or not: the episodes `--episodes` counts.
    pub fn full_episodes(&self) -> usize {
        (self.episodes.rows.iter())
            .filter(|e| e.fidelity.is_full())
            .count()
    }
}
