//! Attacks, the transfer attack and the Lipschitz fine-tune on a small MLP trained on a slice of
//! the embedded MNIST-10k.

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

use bitsearch::calib::calibrate_model;
use bitsearch::data::{DataSource, Dataset};
use bitsearch::model::{Arch, Model};
use bitsearch::quant::{ClipMethod, Policy, Quantizer};
use bitsearch::robust::{
    craft_transfer, pgd, run_suite, AttackConfig, AttackKind, Coverage, Pgd, QuantizedModel,
    SquareScope, Stage,
};
use bitsearch::train::{finetune, train_fp32, FinetuneConfig, TrainConfig, TrainError};

fn data() -> Dataset {
    let (train, test) = DataSource::EmbeddedMnist10k.load().unwrap();
    Dataset::from_raw(train, test, 500, 0)
        .unwrap()
        .truncate(2000, 200, 200)
}

fn trained(data: &Dataset) -> Model {
    let m = Model::new(Arch::Mlp, data.shape, data.classes, 0)
        .unwrap()
        .with_input_norm(data.input_norm());
    let cfg = TrainConfig {
        epochs: 2,
        batch: 64,
        lr: 1e-3,
        weight_decay: 1e-2,
        seed: 0,
        schedule: Default::default(),
        augment: Default::default(),
    };
    train_fp32(&m, data, &cfg, false).unwrap();
    m
}

fn examples(data: &Dataset, n: usize) -> (Tensor, Tensor) {
    let idx: Vec<usize> = (0..n).collect();
    data.test.batch(&idx, &Device::Cpu).unwrap()
}

fn suite_cfg() -> AttackConfig {
    AttackConfig {
        fgsm_eps: vec![0.05, 0.1],
        pgd_eps: vec![0.1],
        pgd_steps: 10,
        step_size: 0.025,
        restarts: 1,
        examples: 200,
        transfer: true,
        square_queries: 200,
        square_p_init: 0.1,
        square_scope: SquareScope::All,
        seed: 0,
    }
}

fn quantizer(model: &Model, data: &Dataset, policy: &str) -> Quantizer {
    let (x, _) = examples(data, 100);
    Quantizer::new(
        Policy::parse(policy).unwrap(),
        calibrate_model(model, &x, ClipMethod::Max).unwrap(),
    )
}

#[test]
fn pgd_is_at_most_fgsm_is_at_most_clean_and_worst_case_is_lowest() {
    let data = data();
    let model = trained(&data);
    let (x, y) = examples(&data, 200);
    let q = quantizer(&model, &data, "4/4,4/4,4/4");
    let fp32 = QuantizedModel {
        model: &model,
        q: None,
    };
    let transfer = craft_transfer(&fp32, &x, &y, &suite_cfg()).unwrap();
    let r = run_suite(
        &QuantizedModel {
            model: &model,
            q: Some(&q),
        },
        &x,
        &y,
        &suite_cfg(),
        Some(&transfer),
        Coverage::Full,
    )
    .unwrap();
    let fgsm = r.accuracy(AttackKind::Fgsm, 0.1).unwrap();
    let pgd = r.accuracy(AttackKind::Pgd, 0.1).unwrap();
    let tr = r.accuracy(AttackKind::Transfer, 0.1).unwrap();
    assert!(
        r.clean > 0.7,
        "the slice-trained MLP should be accurate: {}",
        r.clean
    );
    assert!(
        pgd <= fgsm && fgsm <= r.clean,
        "pgd {pgd} fgsm {fgsm} clean {}",
        r.clean
    );
    assert!(
        fgsm < r.clean,
        "eps 0.1 FGSM must hurt an undefended MLP: {fgsm} vs {}",
        r.clean
    );
    assert!(r.worst_case <= pgd.min(tr).min(fgsm), "{r:?}");
    let square = r.accuracy(AttackKind::Square, 0.1).unwrap();
    assert!(
        square < r.clean,
        "the gradient-free attack also finds adversarial examples: {square}"
    );
    assert!(r.worst_case <= square);
    assert_eq!(r.headline_eps, 0.1);
    assert_eq!(r.examples, 200);
    assert_eq!(r.by_eps.len(), 1);
    assert_eq!(r.by_eps[0].worst_case, r.worst_case);

    // On the survivors only, Square attacks exactly the examples every gradient attack left
    // standing, and what it breaks there lowers the worst case below the gradient attacks'.
    let survivors_cfg = AttackConfig {
        square_scope: SquareScope::Survivors,
        ..suite_cfg()
    };
    let s = run_suite(
        &QuantizedModel {
            model: &model,
            q: Some(&q),
        },
        &x,
        &y,
        &survivors_cfg,
        Some(&transfer),
        Coverage::Full,
    )
    .unwrap();
    assert_eq!(
        s.accuracy(AttackKind::Square, 0.1),
        None,
        "no all-example Square row"
    );
    let run = &s.square[0];
    assert_eq!(run.attacked, run.survivors);
    let gradient_worst = s.clean.min(pgd.min(tr).min(fgsm));
    assert!(
        run.survivors as f64 <= gradient_worst * 200.0 + 1e-9,
        "{run:?}"
    );
    assert!(
        (s.worst_case - (run.survivors - run.broken) as f64 / 200.0).abs() < 1e-12,
        "the worst case is what survives Square too: {s:?}"
    );
}

/// The search's early exit (PGD only on what the clean pass and FGSM left standing, restarts only
/// on what earlier restarts left standing) gives exactly the worst case of the full suite, on a
/// fixed set of policies, with fewer PGD passes.
#[test]
fn worst_case_coverage_gives_the_full_worst_case_with_less_pgd() {
    let data = data();
    let model = trained(&data);
    let (x, y) = examples(&data, 200);
    let cfg = AttackConfig {
        fgsm_eps: vec![0.05, 0.1],
        pgd_eps: vec![0.05, 0.1],
        restarts: 2,
        square_scope: SquareScope::Survivors,
        ..suite_cfg()
    };
    let fp32 = QuantizedModel {
        model: &model,
        q: None,
    };
    let transfer = craft_transfer(&fp32, &x, &y, &cfg).unwrap();
    for policy in ["2/2,2/2,2/2", "4/4,4/4,4/4", "8/8,2/4,8/8", "8/8,8/8,8/8"] {
        let q = quantizer(&model, &data, policy);
        let target = QuantizedModel {
            model: &model,
            q: Some(&q),
        };
        let run = |c| run_suite(&target, &x, &y, &cfg, Some(&transfer), c).unwrap();
        let (full, worst) = (run(Coverage::Full), run(Coverage::WorstCase));
        // (by_eps holds the split by first-breaking attack too: the same in both)
        assert_eq!(full.by_eps, worst.by_eps, "{policy}");
        assert_eq!(full.clean, worst.clean, "{policy}");
        for w in &worst.by_eps {
            let b = w.broken_by;
            assert_eq!(b.examples(), 200, "{policy}: {b}");
            assert_eq!(f64::from(b.held) / 200.0, w.worst_case, "{policy}: {b}");
            assert_eq!(f64::from(200 - b.clean) / 200.0, worst.clean, "{b}");
            let ran = |n: Option<u32>| n.is_some();
            assert!(
                ran(b.fgsm) && ran(b.pgd) && ran(b.transfer) && ran(b.square),
                "{b}"
            );
            // FGSM's first breaks are examples it broke: at most what its accuracy misses
            let fgsm = worst.accuracy(AttackKind::Fgsm, w.eps).unwrap();
            assert!(
                f64::from(b.fgsm.unwrap()) <= (1.0 - fgsm) * 200.0 + 1e-9,
                "{b}"
            );
        }
        let passes = |r: &bitsearch::robust::SuiteReport| r.cost.get(Stage::Pgd).passes;
        assert!(
            passes(&worst) < passes(&full),
            "{policy}: {} vs {} PGD passes",
            passes(&worst),
            passes(&full)
        );
    }
}

#[test]
fn transfer_examples_come_from_the_fp32_models_gradients() {
    let data = data();
    let model = trained(&data);
    let (x, y) = examples(&data, 50);
    let q = quantizer(&model, &data, "2/2,2/2,2/2");
    let cfg = AttackConfig {
        fgsm_eps: vec![],
        ..suite_cfg()
    };
    let fp32 = QuantizedModel {
        model: &model,
        q: None,
    };
    let set = craft_transfer(&fp32, &x, &y, &cfg).unwrap();
    // craft_transfer seeds its own generator from the attack seed; replay it on each model.
    let p = Pgd {
        eps: 0.1,
        steps: 10,
        step_size: 0.025,
    };
    let replay = |clf: &QuantizedModel| {
        pgd(
            clf,
            &x,
            &y,
            p,
            &mut StdRng::seed_from_u64(cfg.seed ^ 0x7472_616e),
        )
        .unwrap()
    };
    let diff = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert_eq!(
        diff(&set.adv[0], &replay(&fp32)),
        0.0,
        "transfer examples equal PGD on the FP32 model"
    );
    let on_quantized = replay(&QuantizedModel {
        model: &model,
        q: Some(&q),
    });
    assert!(
        diff(&set.adv[0], &on_quantized) > 0.0,
        "and differ from PGD on the quantized model"
    );
}

fn ft_cfg(beta: f64) -> FinetuneConfig {
    FinetuneConfig {
        steps: 30,
        batch: 64,
        lr: 5e-4,
        weight_decay: 0.0,
        beta,
        seed: 0,
        schedule: Default::default(),
    }
}

#[test]
fn lipschitz_finetune_lowers_the_penalty_and_leaves_the_baseline_alone() {
    let data = data();
    let model = trained(&data);
    let q = quantizer(&model, &data, "4/4,4/4,4/4");
    let before = model.vars()[0]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let (_, plain) = finetune(&model, &data.train, &q, &ft_cfg(0.0), false).unwrap();
    let (tuned, reg) = finetune(&model, &data.train, &q, &ft_cfg(1e-2), false).unwrap();
    assert!(
        reg.penalty_after < plain.penalty_after,
        "beta 1e-2: {} vs beta 0: {}",
        reg.penalty_after,
        plain.penalty_after
    );
    assert!(reg.penalty_after < reg.penalty_before);
    let after = model.vars()[0]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(before, after, "fine-tuning works on a copy");
    let tuned_w = tuned.vars()[0]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_ne!(before, tuned_w);
}

#[test]
fn a_diverging_finetune_stops_with_an_error() {
    let data = data();
    let model = trained(&data);
    let q = quantizer(&model, &data, "8/8,8/8,8/8");
    // The last layer's bias: no ReLU after it to swallow the NaN.
    let vars = model.vars();
    let b = vars.last().unwrap();
    b.set(&Tensor::full(f32::NAN, b.dims(), &Device::Cpu).unwrap())
        .unwrap();
    match finetune(&model, &data.train, &q, &ft_cfg(0.0), false) {
        Err(TrainError::FinetuneDiverged { step: 0, .. }) => {}
        other => panic!(
            "expected a divergence error at step 0, got {:?}",
            other.map(|(_, r)| r)
        ),
    }
}
