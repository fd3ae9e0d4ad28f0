//! `bitsearch eval`: quantize the cached baseline with a policy (optionally fine-tune it) and
//! report accuracy and robust accuracy on the test split under the report's attack suite, or on
//! the validation split under the search's (what a recipe is chosen on).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

use bitsearch::quant::Policy;
use bitsearch::robust::SuiteReport;
use bitsearch::score::Evaluator;
use bitsearch::train::FinetuneReport;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The policy: W/A formats per layer in order, e.g. 8/8,4/4,2/4,4/4,8/8 (integer widths, 32 =
    /// unquantized) or fp8e4m3/fp8e4m3,int4g32/16,... (fp16, bf16, fp8e4m3, fp8e5m2; int4g32 and
    /// int4g128 for weights; int9..int16 for activations), or a JSON policy file ({"model": ..,
    /// "layers": [{"name", "w_bits", "a_bits", "w_format"?, "a_format"?}, ..]}).
    #[arg(long)]
    pub policy: String,
    #[command(flatten)]
    pub experiment: super::ExperimentArgs,
    /// Where FP32 baselines are cached (OUT/baselines/; trained there if missing, as `search`
    /// and `train` do).
    #[arg(long, visible_alias = "cache", default_value = "runs")]
    pub out: PathBuf,
    /// Run the experiment's quantization-aware fine-tune (with its Lipschitz beta) before
    /// scoring, seeded by the policy as the search seeds it: a searched policy's numbers are
    /// then exactly those of its run's best-policy.json.
    #[arg(long)]
    pub finetune: bool,
    /// The split scored: `test` (the report's suite, `[attack]` on the test examples) or
    /// `validation` (the search's: its accuracy and suite, so a fine-tuned policy's numbers are
    /// its episode's in episodes.csv). Choose fine-tune recipes on validation.
    #[arg(long, value_enum, default_value_t = EvalSplit::Test)]
    pub split: EvalSplit,
    /// Skip the attack suite (clean accuracy only).
    #[arg(long)]
    pub no_attack: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalSplit {
    Test,
    Validation,
}

impl EvalSplit {
    fn name(self) -> &'static str {
        match self {
            EvalSplit::Test => "test",
            EvalSplit::Validation => "validation",
        }
    }
}

/// What `eval` prints; in JSON the split names the keys (`test_accuracy`,
/// `fp32_test_accuracy`, `test_examples`, or the same with `validation`).
#[derive(Debug)]
struct EvalReport {
    experiment: String,
    model: String,
    policy: String,
    split: EvalSplit,
    accuracy: f64,
    fp32_accuracy: f64,
    examples: usize,
    finetune: Option<FinetuneReport>,
    robust: Option<SuiteReport>,
}

impl EvalReport {
    fn delta_points(&self) -> f64 {
        100.0 * (self.accuracy - self.fp32_accuracy)
    }

    fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        let split = self.split.name();
        let mut m = serde_json::Map::new();
        let mut put = |k: String, v: serde_json::Value| m.insert(k, v);
        put("experiment".into(), self.experiment.clone().into());
        put("model".into(), self.model.clone().into());
        put("policy".into(), self.policy.clone().into());
        put("split".into(), split.into());
        put(format!("{split}_accuracy"), self.accuracy.into());
        put(format!("fp32_{split}_accuracy"), self.fp32_accuracy.into());
        put("delta_points".into(), self.delta_points().into());
        put(format!("{split}_examples"), self.examples.into());
        put("finetune".into(), serde_json::to_value(&self.finetune)?);
        put("robust".into(), serde_json::to_value(&self.robust)?);
        Ok(serde_json::Value::Object(m))
    }
}

/// Parses `--policy` as a JSON file when it names one, else as the string form, for the model
/// `arch` whose quantizable layers are `names`.
pub fn parse_policy(text: &str, arch: &str, names: &[&str]) -> anyhow::Result<Policy> {
    let policy = if text.ends_with(".json") || Path::new(text).is_file() {
        Policy::from_json_file(Path::new(text), arch, names)?
    } else {
        Policy::parse(text)?
    };
    policy.check_len(arch, names.len())?;
    Ok(policy)
}

/// `policy`, unless it gives an attention matmul's second operand (an activation, in the
/// weight's place) a format it does not take (`LayerShape::takes`).
fn matmul_operands(
    layers: &[bitsearch::model::LayerShape],
    policy: Policy,
) -> anyhow::Result<Policy> {
    let refused = |(s, l): &(&bitsearch::model::LayerShape, &bitsearch::quant::LayerBits)| {
        !s.takes(bitsearch::quant::Operand::Weight, l.w)
    };
    match (layers.iter().zip(policy.iter())).find(refused) {
        Some((s, l)) => anyhow::bail!(
            "layer {}: {} is for weights; this attention matmul's second operand is an activation",
            s.name,
            l.w.name()
        ),
        None => Ok(policy),
    }
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let (exp, data) = super::load_experiment(&args.experiment)?;
    // The policy is checked against the model's layers before a missing baseline is trained.
    let layers = (exp.model).layer_shapes(data.shape, data.classes, exp.quant.attention)?;
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    let policy = parse_policy(&args.policy, &exp.model.name(), &names)
        .and_then(|p| matmul_operands(&layers, p))
        .with_context(|| format!("invalid --policy {}", args.policy))?;
    let show = !args.quiet;
    let base = super::baseline(&exp, &data, &args.out, show)?;
    if !base.cached {
        // On stderr, so `--json` still prints one object on stdout.
        eprintln!("{}", super::baseline_line(&exp, &base));
    }
    // The search's scorer: the same clips, and with --finetune the same policy-seeded
    // fine-tune, so a searched policy's test numbers are exactly best-policy.json's.
    let eval = Evaluator::new(&exp, &data, &base.model)?;
    let tuned = if args.finetune {
        let t = (eval.finetune_with(&policy, &exp.finetune, show && !args.json))
            .context("fine-tune")?;
        Some(t)
    } else {
        None
    };
    let plain = eval.quantizer(&policy);
    let (model, q) = match &tuned {
        Some(t) => (&t.model, &t.q),
        None => (&base.model, &plain),
    };
    let (split, fp32) = match args.split {
        EvalSplit::Test => (&data.test, base.metrics.test_accuracy),
        EvalSplit::Validation => (&data.val, base.metrics.val_accuracy),
    };
    let acc = eval.accuracy(model, Some(q), split)?;
    let robust = match (args.no_attack, args.split) {
        (true, _) => None,
        (false, EvalSplit::Test) => Some(eval.test_suite(&exp.attack)?.run(model, Some(q))?),
        (false, EvalSplit::Validation) => Some(eval.validation_suite()?.run(model, Some(q))?),
    };
    let report = EvalReport {
        experiment: exp.name.clone(),
        model: exp.model.name(),
        policy: q.policy().to_string(),
        split: args.split,
        accuracy: acc,
        fp32_accuracy: fp32,
        examples: split.len(),
        finetune: tuned.as_ref().map(|t| t.report.clone()),
        robust,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report.to_json()?)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

fn print_text(r: &EvalReport) {
    println!(
        "{} {} policy {}{}: {} accuracy {:.2}% (FP32 {:.2}%, {:+.2} points) on {} examples",
        r.experiment,
        r.model,
        r.policy,
        if r.finetune.is_some() {
            " (fine-tuned)"
        } else {
            ""
        },
        r.split.name(),
        100.0 * r.accuracy,
        100.0 * r.fp32_accuracy,
        r.delta_points(),
        r.examples
    );
    if let Some(s) = &r.robust {
        let per: Vec<String> = s
            .attacks
            .iter()
            .map(|a| format!("{:?} eps {}: {:.2}%", a.kind, a.eps, 100.0 * a.accuracy))
            .collect();
        let curve: Vec<String> = (s.by_eps.iter())
            .map(|w| format!("eps {}: {:.2}%", w.eps, 100.0 * w.worst_case))
            .collect();
        println!(
            "robust accuracy (per-example worst case over FGSM, PGD, transfer and Square, {} {} examples): {}",
            s.examples,
            r.split.name(),
            curve.join("; ")
        );
        println!("  clean {:.2}%; {}", 100.0 * s.clean, per.join("; "));
        for q in &s.square {
            println!(
                "  Square at eps {} ({} queries, {:?}): broke {} of the {} examples the gradient attacks left standing",
                q.eps, q.queries, q.scope, q.broken, q.survivors
            );
        }
        let m = &s.masking;
        println!(
            "  gradient-masking checks: zero input gradient {:.1}% of examples, accuracy rises with eps: {}, white-box above transfer: {}, Square-only breaks {:.1}% of examples{}",
            100.0 * m.zero_grad_fraction,
            m.eps_rise,
            m.above_transfer,
            100.0 * m.gradient_free_gain,
            if m.flagged() {
                format!("  <- fired: {}; the search credits this policy no robustness", m.fired())
            } else {
                String::new()
            }
        );
    }
}
