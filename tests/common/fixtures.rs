//! Small inputs the end-to-end tests share: a tiny experiment (MLP on the embedded digits, one
//! FP32 epoch, a few fine-tune steps, a small attack suite) with the knobs tests vary, a small
//! DDPG agent, IDX slices of the embedded digits, and run files without their timing column.

use std::path::{Path, PathBuf};

use bitsearch::agents::AgentConfig;
use bitsearch::data::{encode_idx, DataSource};

/// The knobs of the tiny experiment that tests set differently; `Tiny::default()` trains its
/// baseline and scores a policy in seconds.
#[derive(Debug, Clone)]
pub struct Tiny {
    pub validation: usize,
    pub finetune_steps: usize,
    pub finetune_batch: usize,
    pub pgd_steps: usize,
    /// Examples of the attack suite, in `eval` and in the search.
    pub examples: usize,
    pub transfer: bool,
    /// The zoo model (`mlp`: the fastest; `lenet5` has convolutions).
    pub arch: &'static str,
}

impl Default for Tiny {
    fn default() -> Self {
        Tiny {
            validation: 500,
            finetune_steps: 5,
            finetune_batch: 64,
            pgd_steps: 2,
            examples: 20,
            transfer: false,
            arch: "mlp",
        }
    }
}

impl Tiny {
    /// The experiment file's text, named `name`, with a 50% latency budget and no uniform
    /// reference policies.
    pub fn toml(&self, name: &str) -> String {
        let Tiny {
            validation,
            finetune_steps,
            finetune_batch,
            pgd_steps,
            examples,
            transfer,
            arch,
        } = self;
        format!(
            r#"
name = "{name}"
[data]
source = "embedded:mnist-10k"
validation = {validation}
[model]
arch = "{arch}"
[train]
epochs = 1
batch = 64
lr = 1e-3
[finetune]
steps = {finetune_steps}
batch = {finetune_batch}
[attack]
fgsm_eps = [0.1]
pgd_eps = [0.1]
pgd_steps = {pgd_steps}
examples = {examples}
transfer = {transfer}
square_queries = 20
[front_test]
eps = [0.1, 0.2]
restarts = 1
square_queries = 20
examples = 50
[budget]
latency = 0.5
[search]
attack_examples = {examples}
references = false
"#
        )
    }
}

/// HAQ's DDPG with a small network and a 2-episode warm-up.
pub const DDPG: &str = "agent = \"ddpg\"\nhidden = 32\nactor_lr = 1e-4\ncritic_lr = 1e-3\nbatch = 16\nreplay_episodes = 128\ntau = 0.01\ndiscount = 1.0\nwarmup = 2\nsigma = 0.5\nsigma_decay = 0.99\nbaseline_decay = 0.95\n";

/// An agent file's text, loaded and checked as `bitsearch search --agent` would.
pub fn agent(text: &str) -> AgentConfig {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("agent.toml");
    std::fs::write(&p, text).unwrap();
    AgentConfig::load(&p).unwrap()
}

/// Writes the first `n_train`/`n_test` embedded digits as raw IDX files in `dir`.
pub fn write_mnist_slice(dir: &Path, n_train: usize, n_test: usize) {
    let (train, test) = DataSource::EmbeddedMnist10k.load().unwrap();
    for (prefix, split, n) in [("train", &train, n_train), ("t10k", &test, n_test)] {
        let images = encode_idx(&[n, 28, 28], &split.images[..n * 784]);
        let labels = encode_idx(&[n], &split.labels[..n]);
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
}

/// The lines of a run's CSV file without the last column (`seconds`, wall time), for comparing
/// runs that must agree on everything but timing.
pub fn lines_without_timing(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.rsplit_once(',').map_or(l, |(head, _)| head).to_string())
        .collect()
}

/// Writes `dir/onnx.toml`: the default experiment on the model file `onnx`, cut to a quick
/// search (`steps` fine-tune steps, `episodes` episodes, a two-step PGD and FGSM at 0.1 on 20
/// examples, no Square, no front re-scoring, no references); returns its path.
pub fn quick_onnx_experiment(dir: &Path, onnx: &Path, steps: usize, episodes: usize) -> PathBuf {
    let text = format!(
        r#"extends = "{}"
name = "onnx-lenet5"
[model]
onnx = "{}"
[finetune]
steps = {steps}
[attack]
pgd_steps = 2
square_queries = 0
examples = 20
fgsm_eps = [0.1]
pgd_eps = [0.1]
[front_test]
enabled = false
[search]
episodes = {episodes}
attack_examples = 20
references = false
"#,
        super::cli::repo()
            .join("experiments/lenet5-mnist.toml")
            .display(),
        onnx.display()
    );
    let path = dir.join("onnx.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A CI-sized experiment on the CIFAR-format digit fixture: it extends a shipped experiment
/// (`base`, relative to the repository) with the fixture as its data (80 training and 60 test
/// images a class, 100 for validation), one FP32 epoch, a short fine-tune and attack suite, and
/// no references or front re-score. The fields are what tests set differently; `model`,
/// `quant` and `attack` are extra lines of those tables.
#[derive(Debug, Clone)]
pub struct ShortCifar {
    pub base: &'static str,
    pub name: Option<String>,
    pub calibration: usize,
    pub finetune_steps: usize,
    pub pgd_steps: usize,
    /// Examples of the attack suite, in the search and in `eval`.
    pub examples: usize,
    pub episodes: usize,
    pub model: String,
    pub quant: String,
    pub attack: String,
}

impl ShortCifar {
    pub fn new(base: &'static str) -> Self {
        ShortCifar {
            base,
            name: None,
            calibration: 128,
            finetune_steps: 3,
            pgd_steps: 2,
            examples: 20,
            episodes: 2,
            model: String::new(),
            quant: String::new(),
            attack: String::new(),
        }
    }

    /// Writes the fixture into `dir/cifar` and the experiment into `dir/file`; returns its path.
    pub fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let data = dir.join("cifar");
        bitsearch::data::write_digit_fixture(&data, 80, 60).unwrap();
        let name = (self.name.as_ref()).map_or(String::new(), |n| format!("name = \"{n}\"\n"));
        let model = match self.model.is_empty() {
            true => String::new(),
            false => format!("[model]\n{}\n", self.model),
        };
        let text = format!(
            "extends = \"{base}\"\n{name}[data]\nsource = \"cifar10:{data}\"\nvalidation = 100\n\
             {model}[train]\nepochs = 1\n[quant]\ncalibration = {calibration}\n{quant}\n\
             [finetune]\nsteps = {steps}\n[attack]\npgd_steps = {pgd}\nsquare_queries = 0\n\
             examples = {examples}\n{attack}\n[front_test]\nenabled = false\n[search]\n\
             episodes = {episodes}\nattack_examples = {examples}\nreferences = false\n",
            base = super::cli::repo().join(self.base).display(),
            data = data.display(),
            calibration = self.calibration,
            quant = self.quant,
            steps = self.finetune_steps,
            pgd = self.pgd_steps,
            examples = self.examples,
            attack = self.attack,
            episodes = self.episodes,
        );
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }
}
