//! The score cache: a policy's validation score is a function of the policy (its fine-tune seed
//! is derived from the policy and `[finetune] seed`, not from the episode), so a policy scored
//! once — in this run, an earlier run, another agent's or another device's — need not be
//! fine-tuned and attacked again. Scores live beside the FP32 baseline they were fine-tuned
//! from, in `scores/<key>.csv`, where `key` hashes everything else that determines a score (the
//! quantizer calibration, the fine-tune, the attack suite and its examples, the robust measure)
//! and `SCORE_VERSION`.
//!
//! Each score is appended as one short line (one `write` with O_APPEND), so concurrent searches
//! may share the file; a line cut by a kill, or garbled, is skipped on read — the cache is only
//! ever a shortcut, and a skipped line costs one fine-tune again.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::SearchError;
use crate::experiment::Experiment;
use crate::fidelity::Fidelity;
use crate::robust::Checks;
use crate::score::{Failure, Outcome, Score};

/// Bump when scoring code changes what a policy scores, so old caches are not reused.
const SCORE_VERSION: u32 = 2;

const HEADER: &str = "policy,failed,accuracy,robust_accuracy,masking,broken_by";

/// Everything besides the baseline and the policy that determines a score.
#[derive(Serialize)]
struct Key<'a> {
    version: u32,
    quant: &'a crate::calib::QuantConfig,
    finetune: &'a crate::train::FinetuneConfig,
    attack: &'a crate::robust::AttackConfig,
    attack_examples: usize,
    robust_eps: crate::robust::RobustMeasure,
}

/// The cache file for `exp` under `dir` (the baseline's `scores/` directory).
pub fn cache_file(exp: &Experiment, dir: &Path) -> PathBuf {
    cache_file_at(exp, Fidelity::Full, dir)
}

/// The cache file of `exp`'s scores at `fidelity`: the low fidelity's recipe (fewer steps and
/// examples) is in the key, so its scores never pass for full ones; a low recipe equal to
/// another experiment's full one shares its file, rightly, as it scores the same.
pub fn cache_file_at(exp: &Experiment, fidelity: Fidelity, dir: &Path) -> PathBuf {
    let finetune = exp.finetune_at(fidelity);
    let key = Key {
        version: SCORE_VERSION,
        quant: &exp.quant,
        finetune: &finetune,
        attack: &exp.attack,
        attack_examples: exp.attack_examples_at(fidelity),
        robust_eps: exp.reward.robust_eps,
    };
    let digest = Sha256::digest(serde_json::to_vec(&key).unwrap_or_default());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}.csv"))
}

/// The scores read so far and the file new ones are appended to.
pub struct ScoreCache {
    path: PathBuf,
    scores: Mutex<BTreeMap<String, Outcome>>,
}

impl ScoreCache {
    /// Opens (or starts) the cache at `path`.
    pub fn open(path: PathBuf) -> Result<Self, SearchError> {
        let io = |source| SearchError::Io {
            path: path.clone(),
            source,
        };
        let mut scores = BTreeMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for (policy, outcome) in text.lines().skip(1).filter_map(parse) {
                    scores.insert(policy, outcome);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                append(&path, &format!("{HEADER}\n")).map_err(io)?;
            }
            Err(e) => return Err(io(e)),
        }
        Ok(ScoreCache {
            path,
            scores: Mutex::new(scores),
        })
    }

    /// The file scores are appended to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached outcome of `policy` (its text form), if any.
    pub fn get(&self, policy: &str) -> Option<Outcome> {
        let scores = self.scores.lock().unwrap_or_else(|e| e.into_inner());
        scores.get(policy).copied()
    }

    /// Records the outcome of `policy`. A diverged fine-tune is cached as failed.
    pub fn put(&self, policy: &str, outcome: &Outcome) -> Result<(), SearchError> {
        let line = match outcome {
            Ok(s) => format!(
                "\"{policy}\",false,{},{},{},{}\n",
                s.accuracy,
                s.robust_accuracy,
                s.masking,
                s.broken_by.map(|b| b.to_string()).unwrap_or_default()
            ),
            Err(_) => format!("\"{policy}\",true,,,,\n"),
        };
        append(&self.path, &line).map_err(|source| SearchError::Io {
            path: self.path.clone(),
            source,
        })?;
        let mut scores = self.scores.lock().unwrap_or_else(|e| e.into_inner());
        scores.insert(policy.to_string(), *outcome);
        Ok(())
    }
}

/// Appends `text` with one write, so concurrent appenders do not interleave inside a line.
/// Never through a symbolic link (`O_NOFOLLOW`, which fails with ELOOP): the cache directory
/// may be shared, and a planted link would have scores appended to any file.
fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// One cache line, or None for a cut or garbled one.
fn parse(line: &str) -> Option<(String, Outcome)> {
    let rest = line.strip_prefix('"')?;
    let (policy, rest) = rest.split_once("\",")?;
    let f: Vec<&str> = rest.split(',').collect();
    let [failed, acc, rob, masking, broken_by] = f.as_slice() else {
        return None;
    };
    let outcome = match *failed {
        "true" => Err(Failure::Logged),
        "false" => Ok(Score {
            accuracy: finite(acc)?,
            robust_accuracy: finite(rob)?,
            masking: Checks::parse(masking)?,
            broken_by: match *broken_by {
                "" => None,
                text => Some(text.parse().ok()?),
            },
        }),
        _ => return None,
    };
    Some((policy.to_string(), outcome))
}

fn finite(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[quant] attention` changes what a policy scores (its layers), so the score cache's key,
    /// but not the float network: the FP32 baseline's directory (its key) is the same. Off, the
    /// key's JSON is the one written before the option existed.
    #[test]
    fn quantized_attention_keys_its_own_scores_beside_the_same_baseline() {
        let text = |on: bool| {
            format!(
                "name = \"v\"\n[data]\nsource = \"embedded:mnist-10k\"\nvalidation = 1000\n\
                 [model]\narch = \"vit\"\n[train]\nepochs = 1\nbatch = 64\nlr = 1e-3\n[quant]\n\
                 act_clip = \"max\"\npercentile = 99.99\ncalibration = 512\nattention = {on}\n"
            )
        };
        let exp = |on| Experiment::from_toml(&text(on), Path::new("v.toml")).unwrap();
        let (off, on) = (exp(false), exp(true));
        let dir = Path::new("scores");
        assert_ne!(cache_file(&off, dir), cache_file(&on, dir));
        let json = serde_json::to_string(&off.quant).unwrap();
        assert_eq!(json, r#"{"act_clip":{"method":"max"},"calibration":512}"#);
        let data = off.data.load().unwrap();
        let out = Path::new("out");
        assert_eq!(
            crate::train::baseline_dir(&off.baseline(), &data, out),
            crate::train::baseline_dir(&on.baseline(), &data, out)
        );
    }

    #[test]
    fn scores_round_trip_and_cut_or_garbled_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scores").join("k.csv");
        let cache = ScoreCache::open(path.clone()).unwrap();
        let score = Score {
            accuracy: 0.1 + 0.2,
            robust_accuracy: 2.0 / 3.0,
            masking: Checks::parse("gradient_free").unwrap(),
            broken_by: Some("eps=0.1;clean=1;fgsm=2;pgd=0;held=3".parse().unwrap()),
        };
        cache.put("8/8,2/4", &Ok(score)).unwrap();
        cache
            .put("2/2,2/2", &Err(Failure::Diverged { step: 3, loss: 1e9 }))
            .unwrap();
        // A kill mid-append, then garbage.
        append(&path, "\"4/4,4/4\",false,0.9").unwrap();
        append(&path, "\n\"x\",maybe,1,2,none,\n").unwrap();
        append(&path, "\"y\",false,1,1,none,eps=0.1;held=3\n").unwrap();
        let again = ScoreCache::open(path).unwrap();
        assert_eq!(again.get("8/8,2/4"), Some(Ok(score)), "exact floats back");
        assert_eq!(again.get("2/2,2/2"), Some(Err(Failure::Logged)));
        assert_eq!(again.get("4/4,4/4"), None);
        assert_eq!(again.get("x"), None);
        assert_eq!(again.get("y"), None, "a garbled breakdown is no score");
    }

    #[test]
    fn an_append_never_follows_a_symbolic_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("scores.csv");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = append(&link, "\"x\",true,,,,\n").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn the_key_changes_with_what_determines_a_score() {
        let text = "name = \"t\"\n[data]\nsource = \"embedded:mnist-10k\"\nvalidation = 1000\n\
                    [model]\narch = \"lenet5\"\n[train]\nepochs = 1\nbatch = 64\nlr = 1e-3\n";
        let exp = Experiment::from_toml(text, Path::new("t.toml")).unwrap();
        let mut other = Experiment::from_toml(text, Path::new("t.toml")).unwrap();
        let dir = Path::new("s");
        assert_eq!(cache_file(&exp, dir), cache_file(&other, dir));
        other.finetune.steps += 1;
        assert_ne!(cache_file(&exp, dir), cache_file(&other, dir));
        other.finetune.steps -= 1;
        other.attack.square_queries += 1;
        assert_ne!(cache_file(&exp, dir), cache_file(&other, dir));
    }

    /// Low-fidelity scores live apart from full ones, and the full file is the one written
    /// before fidelities existed (the same key).
    #[test]
    fn each_fidelity_keys_its_own_file() {
        let text = "name = \"t\"\n[data]\nsource = \"embedded:mnist-10k\"\nvalidation = 1000\n\
                    [model]\narch = \"lenet5\"\n[train]\nepochs = 1\nbatch = 64\nlr = 1e-3\n";
        let exp = Experiment::from_toml(text, Path::new("t.toml")).unwrap();
        let dir = Path::new("s");
        let full = cache_file_at(&exp, Fidelity::Full, dir);
        assert_eq!(full, cache_file(&exp, dir));
        assert_ne!(full, cache_file_at(&exp, Fidelity::Low, dir));
    }
}
