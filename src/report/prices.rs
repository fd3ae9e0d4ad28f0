//! Per-layer prices for the explorer: the run's device profile loaded again from config.json's
//! `profile.file`, accepted only when its price digest equals `profile.sha256`, so the layers
//! of a policy are priced by the very model that priced the search (their latencies add up to
//! the logged `latency_s`). When the file is gone or changed, `Unpriced` says why, and the
//! report shows that instead of prices from another model.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::hardware::{Bound, CostModel, HardwareError, Profile, BUILTIN_PROFILE_DIR};
use crate::quant::LayerBits;
use crate::rundir::RunConfig;

/// One layer of a policy on the run's device, per batch of the profile's examples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerPrice {
    pub latency_s: f64,
    pub energy_j: f64,
    /// What limits the layer in the roofline: `compute` or `memory`.
    pub bound: Bound,
    /// The mode the layer runs in (`fusion 4x8`, `bit-serial 3x5`, `int8`).
    pub mode: String,
}

/// Why a run's layers carry no prices.
#[derive(Debug, thiserror::Error)]
pub enum Unpriced {
    #[error(
        "config.json records no profile file or no profile.sha256 (a run written before they \
         were logged), so no profile can be shown to be the one the search priced with"
    )]
    NotRecorded,
    #[error(
        "the profile file {} (config.json's profile.file) is not there; put it back, or run \
         the report from the directory the search ran in",
        path.display()
    )]
    Missing { path: PathBuf },
    /// Deliberately without the loader's error: config.json is anyone's text, and a parse
    /// error quotes the file's lines, which would put any file's contents into report.html.
    #[error(
        "the profile file {} (config.json's profile.file) cannot be loaded as a device profile; \
         `bitsearch profiles validate FILE` shows why",
        path.display()
    )]
    Unreadable { path: PathBuf },
    #[error(
        "the profile {} has changed since the search: its price digest is {now}, config.json's \
         profile.sha256 is {recorded}; per-layer prices from it would not be the search's",
        path.display()
    )]
    Changed {
        path: PathBuf,
        recorded: String,
        now: String,
    },
    #[error("the profile cannot price a logged policy")]
    Pricing(#[source] Box<HardwareError>),
}

/// The largest file read as a recorded profile.
const PROFILE_MAX_BYTES: u64 = 1 << 20;

/// The device that priced a run, checked against config.json's digest.
#[derive(Debug)]
pub struct Device {
    profile: Profile,
}

/// The files that may hold the recorded profile: the path as recorded (relative to the current
/// directory, as the search resolved it), then a shipped profile of the same file name. Trying
/// more than one is safe: only a file whose digest matches is accepted.
fn candidates(recorded: &Path) -> Vec<PathBuf> {
    let mut out = vec![recorded.to_path_buf()];
    if let (true, Some(name)) = (recorded.is_relative(), recorded.file_name()) {
        out.push(Path::new(BUILTIN_PROFILE_DIR).join(name));
    }
    out
}

impl Device {
    /// Loads config.json's profile and checks its digest.
    pub fn of_run(config: &RunConfig) -> Result<Device, Unpriced> {
        let (Some(file), Some(recorded)) = (&config.profile.file, &config.profile.sha256) else {
            return Err(Unpriced::NotRecorded);
        };
        Device::load(file, recorded)
    }

    /// Examples per batch the profile prices (its latencies are per such batch).
    pub fn batch(&self) -> u64 {
        self.profile.batch()
    }

    /// Loads the profile recorded as `file` and checks its digest against `recorded`.
    fn load(file: &Path, recorded: &str) -> Result<Device, Unpriced> {
        let Some(path) = candidates(file).into_iter().find(|p| p.is_file()) else {
            return Err(Unpriced::Missing {
                path: file.to_path_buf(),
            });
        };
        // A profile is a few kilobytes; a recorded path to a large file is no profile, and
        // reading it whole just to find that out is not worth the memory.
        let size = std::fs::metadata(&path).map_or(u64::MAX, |m| m.len());
        if size > PROFILE_MAX_BYTES {
            return Err(Unpriced::Unreadable { path });
        }
        let profile =
            Profile::load(&path).map_err(|_| Unpriced::Unreadable { path: path.clone() })?;
        if profile.digest() != recorded {
            return Err(Unpriced::Changed {
                path,
                recorded: recorded.to_string(),
                now: profile.digest().to_string(),
            });
        }
        Ok(Device { profile })
    }

    /// Every layer of a policy, in model order.
    pub fn layers(
        &self,
        config: &RunConfig,
        bits: &[LayerBits],
    ) -> Result<Vec<LayerPrice>, Unpriced> {
        (config.layers.iter().zip(bits))
            .map(|(layer, &b)| {
                let c = (self.profile.layer_cost(layer, b))
                    .map_err(|e| Unpriced::Pricing(Box::new(e)))?;
                Ok(LayerPrice {
                    latency_s: c.latency_s,
                    energy_j: c.energy_j,
                    bound: c.bound,
                    mode: c.mode,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guards against config.json's `profile.file` pointing at a private file whose lines a
    /// parse error would quote into report.html.
    #[test]
    fn an_unparsable_profile_file_is_named_but_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("passwd");
        std::fs::write(&secret, "root:x:0:0:secret-line:/root:/bin/bash\n").unwrap();
        let e = Device::load(&secret, &"0".repeat(64)).unwrap_err();
        let text = format!("{e}");
        assert!(
            text.contains("passwd") && !text.contains("secret-line"),
            "{text}"
        );
        assert!(std::error::Error::source(&e).is_none());
    }
}
