//! Tests of experiment files' raw form and its checks (`raw.rs`).

use std::path::Path;

use crate::experiment::{Experiment, ExperimentError};
use crate::model::{Arch, ModelSource};
use crate::quant::ClipMethod;

const GOOD: &str = minimal_experiment!();

fn check(text: &str) -> Result<Experiment, ExperimentError> {
    Experiment::from_toml(text, Path::new("exp.toml"))
}

fn err(text: &str) -> String {
    check(text).unwrap_err().to_string()
}

#[test]
fn good_file_gets_defaults() {
    let e = check(GOOD).unwrap();
    assert!(matches!(e.model.source, ModelSource::Arch(Arch::Lenet5)));
    assert_eq!(e.quant.act_clip, ClipMethod::Max);
    assert_eq!(e.train.weight_decay, 1e-2);
}

/// `quant.attention` quantizes a transformer's attention matmuls: off by default, on for the
/// zoo's vit or an imported model (checked when it is built), refused for a zoo network
/// without attention with the file, field, rule and value.
#[test]
fn quant_attention_needs_a_model_with_attention() {
    use crate::model::Attention;
    assert_eq!(check(GOOD).unwrap().quant.attention, Attention::Float);
    // A [quant] table needs its other fields (`attention` alone may be left out).
    let table = "[quant]\nact_clip = \"max\"\npercentile = 99.99\ncalibration = 512\n";
    let on = |text: &str| format!("{text}{table}attention = true\n");
    let e = err(&on(GOOD));
    assert!(
        e.contains("exp.toml")
            && e.contains("`quant.attention`")
            && e.contains("needs a model with attention")
            && e.contains("true (model lenet5)"),
        "{e}"
    );
    let vit = on(&GOOD.replace("\"lenet5\"", "\"vit\""));
    assert_eq!(check(&vit).unwrap().quant.attention, Attention::Quantized);
    let onnx = on(&GOOD.replace("arch = \"lenet5\"", "onnx = \"m.onnx\""));
    assert_eq!(check(&onnx).unwrap().quant.attention, Attention::Quantized);
    let not_bool = format!("{GOOD}{table}attention = \"yes\"\n");
    let e = err(&not_bool);
    assert!(e.contains("exp.toml") && e.contains("attention"), "{e}");
}

/// `[model]` takes `arch` or `onnx` (relative to the experiment file), exactly one, and an
/// input standardization only with `onnx`, both halves given.
#[test]
fn model_is_a_zoo_network_or_an_onnx_file() {
    let onnx = GOOD.replace("arch = \"lenet5\"", "onnx = \"m/net.onnx\"");
    let e = Experiment::from_toml(&onnx, Path::new("dir/exp.toml")).unwrap();
    match &e.model.source {
        ModelSource::Onnx(p) => assert_eq!(p, Path::new("dir/m/net.onnx")),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.model.name(), "net");
    let both = GOOD.replace("arch = \"lenet5\"", "arch = \"lenet5\"\nonnx = \"x.onnx\"");
    assert!(err(&both).contains("exactly one"), "{}", err(&both));
    let neither = GOOD.replace("arch = \"lenet5\"", "");
    assert!(err(&neither).contains("exactly one"));
    let half = onnx.replace("[model]", "[model]\ninput_mean = [0.5]");
    assert!(err(&half).contains("go together"), "{}", err(&half));
    let zoo_norm = GOOD.replace("[model]", "[model]\ninput_mean = [0.5]\ninput_std = [0.2]");
    assert!(err(&zoo_norm).contains("only with `model.onnx`"));
    let zero = onnx.replace("[model]", "[model]\ninput_mean = [0.5]\ninput_std = [0.0]");
    assert!(err(&zero).contains("model.input_std[0]"), "{}", err(&zero));
    let ok = onnx.replace("[model]", "[model]\ninput_mean = [0.5]\ninput_std = [0.2]");
    assert_eq!(check(&ok).unwrap().model.input_norm.unwrap().std, vec![0.2]);
    let zoo_train = GOOD.replace("[model]", "[model]\ntrain = true");
    assert!(err(&zoo_train).contains("`model.train` applies only with `model.onnx`"));
    let onnx_train = onnx.replace("[model]", "[model]\ntrain = true");
    assert!(check(&onnx_train).unwrap().model.trains());
    assert!(!check(&onnx).unwrap().model.trains());
}

/// `[train] schedule` likewise, for the FP32 baseline.
#[test]
fn train_schedule_is_constant_or_cosine() {
    use crate::train::LrSchedule;
    assert_eq!(check(GOOD).unwrap().train.schedule, LrSchedule::Constant);
    let cosine = GOOD.replace("[train]", "[train]\nschedule = \"cosine\"");
    assert_eq!(check(&cosine).unwrap().train.schedule, LrSchedule::Cosine);
    let bad = err(&GOOD.replace("[train]", "[train]\nschedule = \"step\""));
    assert!(
        bad.contains("exp.toml") && bad.contains("schedule") && bad.contains("cosine"),
        "{bad}"
    );
}

/// `[train] augment` takes a shift and a flip, both optional; it is left out of the
/// serialized recipe (the baseline cache's key) when it moves nothing.
#[test]
fn train_augment_takes_shift_and_flip() {
    use crate::data::Augment;
    let plain = check(GOOD).unwrap().train;
    assert!(plain.augment.is_none());
    let key = serde_json::to_string(&plain).unwrap();
    assert!(!key.contains("augment"), "{key}");
    let on = GOOD.replace("[train]", "[train]\naugment = { shift = 2, flip = true }");
    let train = check(&on).unwrap().train;
    assert_eq!(
        train.augment,
        Augment {
            shift: 2,
            flip: true
        }
    );
    assert!(serde_json::to_string(&train)
        .unwrap()
        .contains("\"shift\":2"));
    let bad = err(&GOOD.replace("[train]", "[train]\naugment = { rotate = 10 }"));
    assert!(bad.contains("exp.toml") && bad.contains("rotate"), "{bad}");
}

/// `[finetune] schedule` is "constant" (the default) or "cosine"; another word is an error
/// naming the file, the field and the words it takes.
#[test]
fn finetune_schedule_is_constant_or_cosine() {
    use crate::train::LrSchedule;
    assert_eq!(check(GOOD).unwrap().finetune.schedule, LrSchedule::Constant);
    let cosine = format!("{GOOD}\n[finetune]\nschedule = \"cosine\"\n");
    assert_eq!(
        check(&cosine).unwrap().finetune.schedule,
        LrSchedule::Cosine
    );
    let bad = err(&format!("{GOOD}\n[finetune]\nschedule = \"step\"\n"));
    assert!(
        bad.contains("exp.toml") && bad.contains("schedule") && bad.contains("cosine"),
        "{bad}"
    );
}

#[test]
fn batch_must_be_positive() {
    let e = err(&GOOD.replace("batch = 64", "batch = 0"));
    assert!(
        e.contains("exp.toml")
            && e.contains("train.batch")
            && e.contains("greater than zero")
            && e.contains(" 0"),
        "{e}"
    );
}

#[test]
fn epochs_must_be_positive() {
    assert!(err(&GOOD.replace("epochs = 8", "epochs = 0")).contains("train.epochs"));
}

#[test]
fn lr_must_be_positive() {
    let e = err(&GOOD.replace("lr = 1e-3", "lr = -1e-3"));
    assert!(e.contains("train.lr") && e.contains("-0.001"), "{e}");
}

#[test]
fn lr_must_be_finite() {
    assert!(err(&GOOD.replace("lr = 1e-3", "lr = nan")).contains("finite"));
}

#[test]
fn weight_decay_must_not_be_negative() {
    let e = err(&GOOD.replace("lr = 1e-3", "lr = 1e-3\nweight_decay = -1.0"));
    assert!(
        e.contains("train.weight_decay") && e.contains("negative"),
        "{e}"
    );
}

#[test]
fn validation_must_be_positive() {
    assert!(err(&GOOD.replace("validation = 1000", "validation = 0")).contains("data.validation"));
}

#[test]
fn unknown_data_source_is_rejected() {
    let e = err(&GOOD.replace("embedded:mnist-10k", "http://x"));
    assert!(e.contains("data.source") && e.contains("http://x"), "{e}");
}

#[test]
fn unknown_arch_is_rejected() {
    let e = err(&GOOD.replace("\"lenet5\"", "\"resnet\""));
    assert!(
        e.contains("exp.toml") && e.contains("resnet") && e.contains("lenet5"),
        "{e}"
    );
}

#[test]
fn unknown_field_is_rejected() {
    let e = err(&GOOD.replace("batch = 64", "batch = 64\nbatchsize = 3"));
    assert!(e.contains("batchsize"), "{e}");
}

#[test]
fn missing_field_is_rejected() {
    let e = err(&GOOD.replace("lr = 1e-3", ""));
    assert!(e.contains("missing field") && e.contains("lr"), "{e}");
}

#[test]
fn percentile_out_of_range_is_rejected() {
    let text =
        format!("{GOOD}[quant]\nact_clip = \"percentile\"\npercentile = 120.0\ncalibration = 10\n");
    assert!(err(&text).contains("quant.percentile"));
}

#[test]
fn empty_name_is_rejected() {
    assert!(err(&GOOD.replace("name = \"t\"", "name = \" \"")).contains("name"));
}

#[test]
fn a_name_that_is_no_plain_path_component_is_rejected() {
    let e = err(&GOOD.replace("name = \"t\"", "name = \"x/../../escaped\""));
    assert!(
        e.contains("field `name` becomes part of a directory name") && e.contains("x/../"),
        "{e}"
    );
}

#[test]
fn attack_radii_must_be_in_0_excluded_to_1() {
    let zero = err(&format!("{GOOD}[attack]\nfgsm_eps = [0.1, 0.0]\n"));
    assert!(
        zero.contains("attack.fgsm_eps") && zero.contains("greater than zero, got 0"),
        "{zero}"
    );
    let big = err(&format!("{GOOD}[attack]\npgd_eps = [1.5]\n"));
    assert!(
        big.contains("attack.pgd_eps") && big.contains("in [0, 1], got 1.5"),
        "{big}"
    );
}

/// Guards the per-radius results: a repeated radius was accepted and misaligned them.
#[test]
fn attack_radii_must_not_repeat() {
    for (field, toml) in [
        ("attack.fgsm_eps", "[attack]\nfgsm_eps = [0.1, 0.2, 0.1]\n"),
        ("attack.pgd_eps", "[attack]\npgd_eps = [0.1, 0.1]\n"),
        ("front_test.eps", "[front_test]\neps = [0.2, 0.2]\n"),
    ] {
        let e = err(&format!("{GOOD}{toml}"));
        assert!(
            e.contains(field) && e.contains("must not list a value twice, got"),
            "{e}"
        );
    }
}

#[test]
fn reward_robust_eps_must_be_a_radius_of_the_suite() {
    let e = err(&format!(
        "{GOOD}[attack]\npgd_eps = [0.1, 0.2]\n[reward]\nrobust_eps = 0.05\n"
    ));
    assert!(
        e.contains("reward.robust_eps") && e.contains("[0.1, 0.2]") && e.contains("got 0.05"),
        "{e}"
    );
    let e = err(&format!("{GOOD}[reward]\nrobust_eps = \"mean\"\n"));
    assert!(e.contains("robust_eps") && e.contains("mean"), "{e}");
}

#[test]
fn square_p_init_must_be_in_0_excluded_to_1() {
    let e = err(&format!("{GOOD}[attack]\nsquare_p_init = 1.2\n"));
    assert!(
        e.contains("attack.square_p_init") && e.contains("got 1.2"),
        "{e}"
    );
}

#[test]
fn shipped_experiments_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut files = Vec::new();
    for sub in [dir.clone(), dir.join("agent-study")] {
        for entry in std::fs::read_dir(&sub).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 14, "{files:?}");
    for f in files {
        if let Err(e) = Experiment::load(&f) {
            panic!("{}: {e}", f.display());
        }
    }
}
