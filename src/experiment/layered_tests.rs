//! Tests of `extends` chains and command-line overrides.

use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};

use super::*;

const BASE: &str = concat!(
    minimal_experiment!(),
    "[attack]\nfgsm_eps = [0.05, 0.1]\npgd_eps = [0.1]\n[budget]\nlatency = 0.5\n"
);

/// Writes `files` (name, text) into a fresh directory.
fn files(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let root = dir.path().to_path_buf();
    (dir, root)
}

fn json_of(exp: &Experiment) -> Json {
    serde_json::to_value(exp).unwrap()
}

fn with(budget: &[&str], set: &[&str]) -> Overrides {
    Overrides {
        budget: budget.iter().map(|s| s.to_string()).collect(),
        set: set.iter().map(|s| s.to_string()).collect(),
    }
}

fn load_err(path: &Path, o: &Overrides) -> String {
    load(path, o).unwrap_err().to_string()
}

#[test]
fn extends_merges_tables_and_the_extending_file_wins() {
    let child = "extends = \"base.toml\"\nname = \"child\"\n[train]\nepochs = 2\n[attack]\npgd_eps = [0.2]\n";
    let (_d, root) = files(&[("base.toml", BASE), ("child.toml", child)]);
    let exp = Experiment::load(&root.join("child.toml")).unwrap();
    let j = json_of(&exp);
    assert_eq!(j["name"], "child");
    assert_eq!(j["train"]["epochs"], 2);
    // Keys the child leaves alone come from the parent, table by table.
    assert_eq!(j["train"]["batch"], 64);
    assert_eq!(exp.attack.fgsm_eps, [0.05, 0.1]);
    // An array is a value: the child's replaces the parent's.
    assert_eq!(exp.attack.pgd_eps, [0.2]);
    assert_eq!(exp.path, root.join("child.toml"));
}

#[test]
fn extends_chains_resolve_each_path_against_its_own_file() {
    let mid = "extends = \"../base.toml\"\nname = \"mid\"\n[data]\nsource = \"idx:slice\"\nvalidation = 10\n";
    let top = "extends = \"sub/mid.toml\"\nname = \"top\"\n";
    let (_d, root) = files(&[
        ("base.toml", BASE),
        ("sub/mid.toml", mid),
        ("top.toml", top),
    ]);
    let j = json_of(&Experiment::load(&root.join("top.toml")).unwrap());
    assert_eq!(j["name"], "top");
    assert_eq!(j["data"]["validation"], 10);
    assert_eq!(j["train"]["lr"], 1e-3);
    // mid.toml's idx:slice means sub/slice, wherever the chain is read from.
    let source = format!("idx:{}", root.join("sub").join("slice").display());
    assert_eq!(j["data"]["source"], source);
}

#[test]
fn extends_cycle_is_an_error_naming_both_files() {
    let a = "extends = \"b.toml\"\nname = \"a\"\n";
    let b = "extends = \"a.toml\"\n";
    let (_d, root) = files(&[("a.toml", a), ("b.toml", b)]);
    let e = load_err(&root.join("a.toml"), &Overrides::default());
    assert!(
        e.contains("cycle") && e.contains("a.toml -> ") && e.contains("b.toml -> "),
        "{e}"
    );
}

#[test]
fn extends_missing_parent_is_an_error_naming_both_files() {
    let (_d, root) = files(&[("child.toml", "extends = \"nowhere.toml\"\nname = \"c\"\n")]);
    let e = load_err(&root.join("child.toml"), &Overrides::default());
    assert!(
        e.contains("child.toml") && e.contains("nowhere.toml") && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn extends_must_be_a_string() {
    let (_d, root) = files(&[("c.toml", "extends = 3\nname = \"c\"\n")]);
    let e = load_err(&root.join("c.toml"), &Overrides::default());
    assert!(e.contains("c.toml") && e.contains("`extends`"), "{e}");
}

#[test]
fn shipped_haq_experiment_is_the_default_with_two_keys_changed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut haq = json_of(&Experiment::load(&dir.join("lenet5-mnist-haq.toml")).unwrap());
    let mut default = json_of(&Experiment::load(&dir.join("lenet5-mnist.toml")).unwrap());
    assert_eq!(haq["name"], "lenet5-mnist-haq");
    assert_eq!(haq["reward"]["robustness"], 0.0);
    assert_eq!(default["reward"]["robustness"], 0.05);
    for j in [&mut haq, &mut default] {
        let o = j.as_object_mut().unwrap();
        for key in ["name", "path", "reward"] {
            o.remove(key);
        }
    }
    assert_eq!(haq, default);
}

#[test]
fn budget_flags_replace_the_whole_budget_table() {
    let (_d, root) = files(&[("e.toml", BASE)]);
    let path = root.join("e.toml");
    let file = json_of(&load(&path, &Overrides::default()).unwrap());
    let exp = load(&path, &with(&["energy=0.7", "size_bytes=20000"], &[])).unwrap();
    let j = json_of(&exp);
    // The file's latency = 0.5 is gone: --budget replaces [budget] as a whole.
    assert_ne!(j["budget"], file["budget"]);
    assert_eq!(j["budget"]["latency"], Json::Null);
    assert_eq!(j["budget"]["energy"], json!({"Fraction": 0.7}));
    assert_eq!(j["budget"]["size"], json!({"Absolute": 20000.0}));
    assert_eq!(
        exp.overrides,
        ["--budget energy=0.7", "--budget size_bytes=20000"]
    );
    // So a fraction and an absolute limit for one resource still clash, loudly.
    let e = load_err(&path, &with(&["latency=0.5", "latency_s=1e-5"], &[]));
    assert!(
        e.contains("--budget latency_s=1e-5") && e.contains("not both"),
        "{e}"
    );
}

#[test]
fn an_unknown_budget_key_names_the_flag() {
    let (_d, root) = files(&[("e.toml", BASE)]);
    let e = load_err(&root.join("e.toml"), &with(&["lat=0.5"], &[]));
    assert!(
        e.contains("--budget lat=0.5") && e.contains("unknown field `lat`"),
        "{e}"
    );
}

#[test]
fn set_reads_toml_values_and_falls_back_to_strings() {
    let (_d, root) = files(&[("e.toml", BASE)]);
    let o = with(
        &[],
        &[
            "train.epochs=2",
            "train.lr=5e-4",
            "attack.pgd_eps=[0.1, 0.2]",
            "quant.act_clip=mse",
            "quant.percentile=99.0",
            "quant.calibration=256",
            "search.references=false",
            "name=renamed",
        ],
    );
    let exp = load(&root.join("e.toml"), &o).unwrap();
    let j = json_of(&exp);
    assert_eq!(j["train"]["epochs"], 2);
    assert_eq!(j["train"]["lr"], 5e-4);
    assert_eq!(exp.attack.pgd_eps, [0.1, 0.2]);
    assert_eq!(j["search"]["references"], false);
    assert_eq!(exp.name, "renamed");
    assert_eq!(exp.quant.act_clip, crate::quant::ClipMethod::Mse);
    assert_eq!(exp.overrides.len(), 8);
    assert_eq!(exp.overrides[0], "--set train.epochs=2");
    assert_eq!(j["overrides"][7], "--set name=renamed");
}

#[test]
fn recorded_overrides_load_the_same_experiment_again() {
    let (_d, root) = files(&[("e.toml", BASE)]);
    let o = with(
        &["energy=0.5", "latency_s=1e-5"],
        &["train.epochs=2", "finetune.steps=7"],
    );
    let first = load(&root.join("e.toml"), &o).unwrap();
    let again = load(
        &root.join("e.toml"),
        &Overrides::from_recorded(&first.overrides),
    )
    .unwrap();
    assert_eq!(Overrides::from_recorded(&first.overrides), o);
    assert_eq!(json_of(&again), json_of(&first));
}

#[test]
fn no_overrides_serialize_as_no_field() {
    let (_d, root) = files(&[("e.toml", BASE)]);
    let j = json_of(&load(&root.join("e.toml"), &Overrides::default()).unwrap());
    assert!(j.get("overrides").is_none(), "{j}");
}

#[test]
fn set_unknown_key_names_the_flag() {
    let (_d, root) = files(&[("e.toml", BASE)]);
    let e = load_err(&root.join("e.toml"), &with(&[], &["train.batchsize=3"]));
    assert!(
        e.starts_with("--set train.batchsize=3: ") && e.contains("unknown field `batchsize`"),
        "{e}"
    );
}

#[test]
fn set_value_of_the_wrong_type_names_the_flag() {
    let (_d, root) = files(&[("e.toml", BASE)]);
    let e = load_err(&root.join("e.toml"), &with(&[], &["train.epochs=many"]));
    assert!(
        e.starts_with("--set train.epochs=many: ") && e.contains("many"),
        "{e}"
    );
}

#[test]
fn set_that_breaks_a_rule_names_the_flag_the_field_and_the_rule() {
    let (_d, root) = files(&[("e.toml", BASE)]);
    let o = with(&[], &["train.epochs=3", "train.batch=0"]);
    let e = load_err(&root.join("e.toml"), &o);
    assert!(
        e.starts_with("--set train.batch=0: ")
            && e.contains("train.batch")
            && e.contains("greater than zero"),
        "{e}"
    );
}

#[test]
fn a_later_flag_may_complete_an_earlier_one() {
    // bits.max = 1 alone breaks min <= max (min is 2); with bits.min = 1 after it, all is well.
    let (_d, root) = files(&[("e.toml", BASE)]);
    let exp = load(
        &root.join("e.toml"),
        &with(&[], &["bits.max=1", "bits.min=1"]),
    )
    .unwrap();
    assert_eq!((exp.bits.min, exp.bits.max), (1, 1));
}

#[test]
fn the_file_own_error_is_not_blamed_on_a_flag() {
    let (_d, root) = files(&[("e.toml", &BASE.replace("batch = 64", "batch = 0"))]);
    let e = load_err(&root.join("e.toml"), &with(&[], &["train.epochs=2"]));
    assert!(!e.contains("--set") && e.contains("train.batch"), "{e}");
    // ... and a flag may repair it.
    assert!(load(&root.join("e.toml"), &with(&[], &["train.batch=32"])).is_ok());
}

#[test]
fn a_flag_that_starts_a_partial_table_names_the_missing_field() {
    // [quant] is optional, but a [quant] table needs all its fields.
    let (_d, root) = files(&[("e.toml", BASE)]);
    let e = load_err(&root.join("e.toml"), &with(&[], &["quant.act_clip=mse"]));
    assert!(
        e.starts_with("--set quant.act_clip=mse: ") && e.contains("missing field `percentile`"),
        "{e}"
    );
}

#[test]
fn malformed_flags_say_what_is_expected() {
    let (_d, root) = files(&[("e.toml", BASE)]);
    let path = root.join("e.toml");
    for (o, flag) in [
        (with(&[], &["train.epochs"]), "--set train.epochs"),
        (with(&[], &["train..epochs=2"]), "--set train..epochs=2"),
        (with(&["latency"], &[]), "--budget latency"),
    ] {
        let e = load_err(&path, &o);
        assert!(e.starts_with(flag) && e.contains("expected"), "{e}");
    }
    let e = load_err(&path, &with(&[], &["name.first=x"]));
    assert!(e.contains("`name` is not a table"), "{e}");
}
