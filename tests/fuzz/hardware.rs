//! Harnesses of the hardware profile readers: the profile TOML (seeds: a small profile with a
//! lookup table, and every shipped profile), its lookup-table CSV, and a simulator's cycle table
//! (`.npy`, seed: HAQ's BISMO table). A profile that loads also prices a small model at a few
//! policies, as `bitsearch cost` and the search would; a cycle table that loads is read at every
//! width, as `profiles import` and `profiles agreement` read it.

use std::path::Path;

use bitsearch::hardware::{compare_to_uniform8, policy_cost, CycleTable, Profile};
use bitsearch::model::LayerShape;
use bitsearch::npy::NpyI64;
use bitsearch::quant::{Format, LayerBits, Policy};

use super::engine::fuzz;
use super::mutate::{input, Input};
use super::{seed_dir, shown};

/// The layers the seed table lists (conv1, fc1) and one it does not (fc2).
fn layers() -> Vec<LayerShape> {
    vec![
        LayerShape::conv("conv1", 1, 6, 5, 1, 0, (28, 28)),
        LayerShape::linear("fc1", 256, 120),
        LayerShape::linear("fc2", 120, 10),
    ]
}

/// Loads `path` and prices uniform and mixed policies on it.
fn load_and_price(path: &Path) -> bool {
    let Some(profile) = shown(Profile::load(path)) else {
        return false;
    };
    let layers = layers();
    for text in ["8/8,8/8,8/8", "2/4,4/2,32/32", "1/1,3/5,7/6"] {
        let policy = Policy::parse(text).expect("a valid policy");
        let _ = shown(policy_cost(&profile, &layers, &policy));
        let _ = shown(compare_to_uniform8(&profile, &layers, &policy));
    }
    true
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read a seed")
}

/// The profile TOML: the small seed profile (its table intact), the same naming itself or a
/// directory as its table, or any shipped profile.
pub fn profile_toml() {
    let seeds = seed_dir().join("profile");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware-profiles");
    let mut files = vec![seeds.join("device.toml")];
    files.extend(bitsearch::hardware::profile_files(&shipped).expect("shipped profiles"));
    let mut texts: Vec<Vec<u8>> = files.iter().map(|f| read(f)).collect();
    for f in &files {
        Profile::load(f).expect("every seed profile loads");
    }
    // Tables that are not CSV files: the profile itself, and a directory.
    let own = String::from_utf8_lossy(&texts[0]).into_owned();
    for table in ["device.toml", "."] {
        let text = own.replace("\"device.csv\"", &format!("\"{table}\""));
        texts.push(text.into_bytes());
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(seeds.join("device.csv"), dir.path().join("device.csv")).expect("copy");
    let path = dir.path().join("device.toml");
    let strategy = (0..texts.len(), input());
    fuzz(
        "profile-toml",
        1,
        strategy,
        |(which, inp): &(usize, Input)| {
            std::fs::write(&path, inp.apply(&texts[*which])).expect("write into the temp dir");
            load_and_price(&path)
        },
    );
}

/// The lookup-table CSV, under the seed profile that names it.
pub fn profile_table() {
    let seeds = seed_dir().join("profile");
    let table = read(&seeds.join("device.csv"));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(seeds.join("device.toml"), dir.path().join("device.toml")).expect("copy");
    let (path, profile) = (
        dir.path().join("device.csv"),
        dir.path().join("device.toml"),
    );
    fuzz("profile-table", 1, input(), |inp: &Input| {
        std::fs::write(&path, inp.apply(&table)).expect("write into the temp dir");
        load_and_price(&profile)
    });
}

/// A cycle table (`.npy`, HAQ's layout): parsed, checked, and read at every (layer, w, a) and at
/// full precision.
pub fn cycle_table() {
    let seed = read(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/haq/qmobilenetv2_imagenet100_batch16_latency_table.npy"),
    );
    let path = Path::new("haq.npy");
    fuzz("cycle-table", 1, input(), |inp: &Input| {
        let Some(npy) = shown(NpyI64::parse(&inp.apply(&seed), path)) else {
            return false;
        };
        let Some(table) = shown(CycleTable::from_npy(npy, path)) else {
            return false;
        };
        let widths = (1..=8).chain([32]).filter_map(|b| Format::new(b).ok());
        for b in widths {
            for l in 0..table.layers() {
                let _ = table.cycles(l, LayerBits::new(b, b));
            }
        }
        true
    });
}
