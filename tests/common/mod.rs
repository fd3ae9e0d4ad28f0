//! Synthetic run directories written exactly per docs/run-directory.md, for the report tests.
#![allow(dead_code)]

pub mod browser;
pub mod cli;
pub mod faults;
pub mod fixtures;
pub mod search_setup;
pub mod slurm;

/// Whether a test that needs tools beyond cargo (Chromium, ONNX Runtime, Slurm) runs: yes when
/// nothing is `missing`. Otherwise it fails under `CI` (CI installs them with
/// scripts/install-ci-deps.sh, so nothing is skipped silently there) and skips with a message
/// elsewhere.
pub fn tools_present(missing: &[&str]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {what} is absent: run scripts/install-ci-deps.sh first");
    }
    println!("SKIPPED: {what} is absent (install with scripts/install-ci-deps.sh)");
    false
}

/// True when python3 can import ONNX Runtime and numpy; panics when it cannot and `CI` is set
/// (`tools_present`), so checks that need them are never skipped silently there.
pub fn onnx_runtime_present() -> bool {
    let present = std::process::Command::new("python3")
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    let missing: &[&str] = if present {
        &[]
    } else {
        &["python3's onnxruntime and numpy"]
    };
    tools_present(missing)
}

use std::fmt::Write;
use std::fs;
use std::path::Path;

/// LeNet-5's quantizable layers: (name, kind, params, MACs).
pub const LAYERS: [(&str, &str, u64, u64); 5] = [
    ("conv1", "conv", 156, 86_400),
    ("conv2", "conv", 2_416, 153_600),
    ("fc1", "linear", 30_840, 30_720),
    ("fc2", "linear", 10_164, 10_080),
    ("fc3", "linear", 850, 840),
];

const UNIFORM8_LATENCY: f64 = 2.4e-5;

/// A fixed pseudo-random sequence (linear congruential), so runs are reproducible.
pub struct Lcg(u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Synthetic scores of a policy of (w, a) bits per layer: costs scale with bits; accuracy and
/// robust accuracy fall as bits fall.
fn score(bits: &[(u8, u8)]) -> (f64, f64, f64, f64, f64) {
    let total_macs: f64 = LAYERS.iter().map(|l| l.3 as f64).sum();
    let mut lat = 0.0;
    let mut size = 0.0;
    let mut acc_loss = 0.0;
    for (l, &(w, a)) in LAYERS.iter().zip(bits) {
        let (w, a) = (f64::from(w.min(8)), f64::from(a.min(8)));
        lat += UNIFORM8_LATENCY * (l.3 as f64 / total_macs) * (w * a) / 64.0;
        size += l.2 as f64 * w / 8.0;
        acc_loss += (l.3 as f64 / total_macs) * (0.4 / (w * a));
    }
    let acc = 0.97 - acc_loss;
    let robust = 0.65 - 3.0 * acc_loss;
    (acc, robust, lat, lat * 0.13, size)
}

fn policy_text(bits: &[(u8, u8)]) -> String {
    bits.iter()
        .map(|(w, a)| format!("{w}/{a}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn header() -> String {
    let mut h = "episode,agent,profile,policy".to_string();
    for l in LAYERS {
        let _ = write!(h, ",w_{0},a_{0}", l.0);
    }
    h + ",accuracy,robust_accuracy,latency_s,energy_j,size_bytes,reward,feasible,failed,masking_flagged,masking,broken_by,seconds\n"
}

fn line(ep: usize, agent: &str, bits: &[(u8, u8)], failed: bool) -> String {
    let (acc, robust, lat, energy, size) = score(bits);
    let mut s = format!("{ep},{agent},bitfusion,\"{}\"", policy_text(bits));
    for (w, a) in bits {
        let _ = write!(s, ",{w},{a}");
    }
    let feasible = lat <= 0.5 * UNIFORM8_LATENCY;
    let reward = 0.1 * (acc - 0.97) * 100.0 + 0.05 * (robust - 0.65) * 100.0;
    if failed {
        let _ = write!(s, ",,,{lat:e},{energy:e},{size},,{feasible},true,,,,1.2");
    } else {
        // A 2-bit conv1 input is where real searches see the gradient-free check fire.
        let masking = if bits[0].1 == 2 {
            "true,gradient_free"
        } else {
            "false,none"
        };
        // Of 200 attacked examples: the held ones are the robust accuracy, the clean pass
        // misses about what the accuracy misses, FGSM and PGD break the rest.
        let held = (robust * 200.0).round() as u32;
        let clean = (((1.0 - acc) * 200.0).round() as u32).min(200 - held);
        let fgsm = (200 - held - clean) * 2 / 3;
        let pgd = 200 - held - clean - fgsm;
        let broken = format!("eps=0.1;clean={clean};fgsm={fgsm};pgd={pgd};transfer=0;held={held}");
        let _ = write!(
            s,
            ",{acc:.4},{robust:.4},{lat:e},{energy:e},{size},{reward:.4},{feasible},false,{masking},{broken},1.1"
        );
    }
    s + "\n"
}

fn config(run: &str, agent: &str) -> String {
    let layers: Vec<String> = LAYERS
        .iter()
        .map(|(name, kind, params, macs)| {
            format!(
                "{{\"name\":\"{name}\",\"kind\":\"{kind}\",\"in_ch\":1,\"out_ch\":6,\"kernel\":5,\
                 \"stride\":1,\"padding\":0,\"groups\":1,\"in_hw\":[28,28],\"out_hw\":[24,24],\
                 \"params\":{params},\"macs\":{macs}}}"
            )
        })
        .collect();
    format!(
        "{{\"run\":\"{run}\",\"experiment\":{{\"name\":\"lenet5-mnist\",\"data\":{{\"seed\":0}}}},\
         \"model\":\"lenet5\",\"layers\":[{}],\"profile\":{{\"name\":\"bitfusion\",\"compute\":\"bit-fusion\"}},\
         \"agent\":{{\"name\":\"{agent}\"}},\"episodes\":40,\"seed\":0,\
         \"budget\":{{\"latency_s\":{:e},\"energy_j\":null,\"size_bytes\":null}},\
         \"uniform8\":{{\"latency_s\":2.4e-5,\"energy_j\":3.1e-6,\"size_bytes\":61706}}}}",
        layers.join(","),
        0.5 * UNIFORM8_LATENCY
    )
}

/// Writes a whole search run (every file of the contract) with `episodes` episodes.
pub fn write_run(dir: &Path, run: &str, agent: &str, seed: u64, episodes: usize) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("config.json"), config(run, agent)).unwrap();
    let mut refs = header();
    for b in 2..=8u8 {
        refs += &line(0, "uniform", &[(b, b); 5], false);
    }
    refs += &line(0, "fp32", &[(32, 32); 5], false);
    fs::write(dir.join("references.csv"), refs).unwrap();
    let mut rng = Lcg(seed);
    let mut eps = header();
    let mut all = Vec::new();
    for ep in 0..episodes {
        let bits: Vec<(u8, u8)> = (0..5)
            .map(|_| ((2 + rng.next() % 7) as u8, (2 + rng.next() % 7) as u8))
            .collect();
        let failed = ep % 17 == 16;
        eps += &line(ep, agent, &bits, failed);
        if !failed {
            all.push((ep, bits));
        }
    }
    fs::write(dir.join("episodes.csv"), eps).unwrap();
    // pareto.csv: a few rows are enough for the report (the readers do not recompute it).
    let mut pareto = header();
    for (ep, bits) in all.iter().take(3) {
        pareto += &line(*ep, agent, bits, false);
    }
    fs::write(dir.join("pareto.csv"), pareto).unwrap();
    let (ep, bits) = &all[0];
    let layers: Vec<String> = LAYERS
        .iter()
        .zip(bits)
        .map(|(l, (w, a))| format!("{{\"name\":\"{}\",\"w_bits\":{w},\"a_bits\":{a}}}", l.0))
        .collect();
    let best = format!(
        "{{\"model\":\"lenet5\",\"policy\":\"{}\",\"layers\":[{}],\"episode\":{ep},\"reward\":-0.12,\
         \"validation\":{{\"accuracy\":0.97,\"robust_accuracy\":0.61}},\
         \"test\":{{\"accuracy\":0.968,\"robust_accuracy\":0.60}},\
         \"latency_s\":1.1e-5,\"energy_j\":1.4e-6,\"size_bytes\":20478}}",
        policy_text(bits),
        layers.join(",")
    );
    fs::write(dir.join("best-policy.json"), best).unwrap();
}

/// The CPU `write_measured` names, with markup in it: a page shows it as text.
pub const MEASURED_CPU: &str = "Synthetic <b>CPU</b> & co, 2 cores";

/// Writes measured.csv per docs/run-directory.md for `episode` (a scored row of the run's
/// episodes.csv): at batch 1, predicted as logged (`latency_s`) and measured 10% slower, and at
/// batch 16, with no prediction; every layer's kernel named.
pub fn write_measured(dir: &Path, episode: usize) {
    let mut reader = csv::Reader::from_path(dir.join("episodes.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let row = (reader.records().map(Result::unwrap))
        .find(|r| r[0].parse::<usize>() == Ok(episode))
        .unwrap();
    let (policy, predicted) = (&row[col("policy")], &row[col("latency_s")]);
    let measured = 1.1 * predicted.parse::<f64>().unwrap();
    let kernels = "conv1=QLinearConv;conv2=QLinearConv;fc1=QGemm;fc2=FusedGemm;fc3=Gemm";
    let mut csv = "episode,policy,batch,predicted_latency_s,measured_latency_s,repeats,kernels,\
                   runtime,cpu,threads\n"
        .to_string();
    for (batch, predicted, measured) in [
        (1, predicted.to_string(), measured),
        (16, String::new(), 9.0 * measured),
    ] {
        let _ = writeln!(
            csv,
            "{episode},\"{policy}\",{batch},{predicted},{measured:e},50,{kernels},onnxruntime 1.32.0,\"{MEASURED_CPU}\",2"
        );
    }
    fs::write(dir.join("measured.csv"), csv).unwrap();
}

/// Records `profile` (a file) in the run's config.json as the search does: its path and price
/// digest, so the report prices the run's layers with it.
pub fn record_profile(dir: &Path, profile: &Path) {
    let p = bitsearch::hardware::Profile::load(profile).unwrap();
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    config["profile"]["file"] = profile.to_string_lossy().into_owned().into();
    config["profile"]["sha256"] = p.digest().into();
    fs::write(&path, config.to_string()).unwrap();
}

/// Writes a DQ study with docs/reference-protocol.md's reference table (worst case) and a
/// synthetic amplification profile.
pub fn write_dq(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let table: [(u8, [f64; 4]); 5] = [
        (32, [0.612, 0.660, 0.696, 0.692]),
        (8, [0.654, 0.650, 0.700, 0.714]),
        (4, [0.392, 0.434, 0.590, 0.574]),
        (3, [0.314, 0.398, 0.466, 0.448]),
        (2, [0.834, 0.812, 0.812, 0.760]),
    ];
    let betas = [0.0, 1e-3, 1e-2, 3e-2];
    let mut dq = "bits,beta,clean_accuracy,fgsm_0.05,fgsm_0.1,pgd_0.1,transfer_0.1,worst_case,\
                  masking_zero_grad,masking_eps_rise,masking_above_transfer,lipschitz_bound\n"
        .to_string();
    let mut amp = "bits,beta,layer,index,distance\n".to_string();
    for (bits, worst) in table {
        for (beta, w) in betas.iter().zip(worst) {
            let rise = bits == 2;
            let _ = writeln!(
                dq,
                "{bits},{beta},0.96,{:.3},{:.3},{w},{:.3},{w},0.0,{rise},{rise},{:.1}",
                w + 0.2,
                w + 0.1,
                w + 0.05,
                500.0 / (1.0 + 1e3 * beta)
            );
        }
    }
    for bits in [32u8, 4] {
        for beta in [0.0, 1e-2] {
            for (i, l) in LAYERS.iter().enumerate() {
                let growth = if beta == 0.0 && bits == 4 { 1.6 } else { 1.1 };
                let _ = writeln!(
                    amp,
                    "{bits},{beta},{},{i},{:.4}",
                    l.0,
                    0.05 * growth_pow(growth, i)
                );
            }
        }
    }
    fs::write(dir.join("dq.csv"), dq).unwrap();
    fs::write(dir.join("amplification.csv"), amp).unwrap();
}

/// Writes a sensitivity study per docs/run-directory.md: LAYERS × {weight, activation} × {2,
/// 4, 8} around uniform 8/8, with synthetic drops that grow as the width falls (a diverged row
/// and a flagged one among them).
pub fn write_sensitivity(dir: &Path) {
    use bitsearch::rundir::{ProfileInfo, Sensitivity, SensitivityConfig, SensitivityRow, Varied};
    fs::create_dir_all(dir).unwrap();
    let formats = ["2", "4", "8"];
    let row = |layer: &str, operand, format: &str, drop: f64, share: Option<f64>| {
        let flagged = layer == "conv1" && format == "2" && operand == Varied::Activation;
        SensitivityRow {
            layer: layer.into(),
            operand,
            format: format.into(),
            policy: "8/8".into(),
            accuracy: Some(0.98 - drop),
            robust_accuracy: Some(0.6 - 2.0 * drop),
            masking: bitsearch::robust::Checks::parse(if flagged { "zero_grad" } else { "none" })
                .unwrap(),
            accuracy_drop: Some(drop),
            robust_accuracy_drop: Some(2.0 * drop),
            latency_s: 1e-5,
            energy_j: 1e-6,
            latency_saved: share.map_or(0.0, |s| s / 2.0),
            energy_saved: share.map_or(0.0, |s| s / 3.0),
            layer_latency_share: share,
            layer_energy_share: share.map(|s| s / 2.0),
        }
    };
    let mut rows = vec![row("", Varied::Reference, "8", 0.0, None)];
    for (i, l) in LAYERS.iter().enumerate() {
        let share = 1.0 / LAYERS.len() as f64;
        for operand in [Varied::Weight, Varied::Activation] {
            for (k, f) in formats.iter().enumerate() {
                let drop = 0.01 * (2 - k) as f64 * (1 + i) as f64;
                rows.push(row(l.0, operand, f, drop, Some(share)));
            }
        }
    }
    let failed = rows.len() - 1;
    (rows[failed].accuracy, rows[failed].robust_accuracy) = (None, None);
    (
        rows[failed].accuracy_drop,
        rows[failed].robust_accuracy_drop,
    ) = (None, None);
    Sensitivity { rows }
        .write(&dir.join(Sensitivity::FILE))
        .unwrap();
    let config = SensitivityConfig {
        experiment: serde_json::json!({"name": "synthetic"}),
        model: "lenet5".into(),
        layers: Vec::new(),
        profile: ProfileInfo {
            name: "bitfusion".into(),
            compute: "bit-fusion".into(),
            file: None,
            sha256: None,
        },
        reference: 8,
        formats: formats.map(String::from).to_vec(),
        baseline: "baseline".into(),
        scores: "baseline/scores/k.csv".into(),
        command: "bitsearch sensitivity".into(),
    };
    bitsearch::rundir::write_json(&dir.join(SensitivityConfig::FILE), &config).unwrap();
}

fn growth_pow(g: f64, i: usize) -> f64 {
    g.powi(i as i32)
}

/// A decoded 8-bit PNG: (width, height, bytes per pixel, pixels row by row).
pub type Png = (u32, u32, usize, Vec<u8>);

/// Decodes an 8-bit RGB or RGBA PNG, checking its signature.
pub fn decode_png(path: &Path) -> Png {
    let bytes = fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{}: PNG signature",
        path.display()
    );
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bpp = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("{}: unexpected colour type {other:?}", path.display()),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
    buf.truncate(info.buffer_size());
    (info.width, info.height, bpp, buf)
}
