//! `bitsearch eval`: quantize the cached baseline with a policy (optionally fine-tune it) and
//! report test accuracy and robust accuracy under the experiment's attack suite.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use bitsearch::quant::Policy;
use bitsearch::robust::SuiteReport;
use bitsearch::score::Evaluator;
use bitsearch::train::{train_baseline, FinetuneReport};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The policy: W/A bits per layer in order, e.g. 8/8,4/4,2/4,4/4,8/8 (32 = unquantized),
    /// or a JSON policy file ({"model": .., "layers": [{"name", "w_bits", "a_bits"}, ..]}).
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

#[derive(Debug, Serialize)]
struct EvalReport {
    experiment: String,
    model: String,
    policy: String,
    test_accuracy: f64,
    fp32_test_accuracy: f64,
    delta_points: f64,
    test_examples: usize,
    finetune: Option<FinetuneReport>,
    robust: Option<SuiteReport>,
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

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let (exp, data) = super::load_experiment(&args.experiment)?;
    // The policy is checked against the model's layers before a missing baseline is trained.
    let layers = exp.model.layer_shapes(data.shape, data.classes)?;
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    let policy = parse_policy(&args.policy, &exp.model.name(), &names)
        .with_context(|| format!("invalid --policy {}", args.policy))?;
    let show = !args.quiet;
    let base =
        train_baseline(&exp.baseline(), &exp, &data, &args.out, show).context("FP32 baseline")?;
    if !base.cached {
        // On stderr, so `--json` still prints one object on stdout.
        eprintln!(
            "{}: FP32 baseline test accuracy {:.2}% ({})",
            exp.name,
            100.0 * base.metrics.test_accuracy,
            base.dir.display()
        );
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
    let (acc, robust) = if args.no_attack {
        (eval.accuracy(model, Some(q), &data.test)?, None)
    } else {
        let test = eval.test_score_of(model, Some(q), &eval.test_suite(&exp.attack)?)?;
        (test.accuracy, Some(test.robust))
    };
    let ft = tuned.as_ref().map(|t| t.report.clone());
    let report = EvalReport {
        experiment: exp.name.clone(),
        model: exp.model.name(),
        policy: q.policy().to_string(),
        test_accuracy: acc,
        fp32_test_accuracy: base.metrics.test_accuracy,
        delta_points: 100.0 * (acc - base.metrics.test_accuracy),
        test_examples: data.test.len(),
        finetune: ft,
        robust,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

fn print_text(r: &EvalReport) {
    println!(
        "{} {} policy {}{}: test accuracy {:.2}% (FP32 {:.2}%, {:+.2} points) on {} examples",
        r.experiment,
        r.model,
        r.policy,
        if r.finetune.is_some() {
            " (fine-tuned)"
        } else {
            ""
        },
        100.0 * r.test_accuracy,
        100.0 * r.fp32_test_accuracy,
        r.delta_points,
        r.test_examples
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
            "robust accuracy (per-example worst case over FGSM, PGD, transfer and Square, {} test examples): {}",
            s.examples,
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
