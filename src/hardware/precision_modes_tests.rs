//! The mode-matching rule (`holds`, `select`), on hand-made modes and on the shipped profiles,
//! and the rules of a mode's `*_bits`/`*_format` fields.

use std::path::Path;

use super::*;
use crate::hardware::{Profile, BUILTIN_PROFILE_DIR};

fn f(text: &str) -> Format {
    text.parse().unwrap()
}

#[test]
fn each_operand_rule() {
    use Holding::{Native, Widened};
    let cases = [
        // integers: natively in an integer at least as wide
        ("int8", "4", Some(Native)),
        ("int4", "int4g32", Some(Native)),
        ("int4", "8", None),
        ("int16", "16", Some(Native)),
        // integers in floats whose significand holds every bit, and in full precision
        ("fp8e4m3", "4", Some(Widened)),
        ("fp8e4m3", "5", None),
        ("fp8e5m2", "4", None),
        ("bf16", "8", Some(Widened)),
        ("fp16", "11", Some(Widened)),
        ("fp16", "12", None),
        ("fp16", "int4g128", Some(Widened)),
        ("32", "16", Some(Widened)),
        // minifloats: natively in their own format, widened into one that holds every value
        ("fp8e4m3", "fp8e4m3", Some(Native)),
        ("fp8e5m2", "fp8e4m3", None),
        ("fp16", "fp8e4m3", Some(Widened)),
        ("fp16", "fp8e5m2", Some(Widened)),
        ("bf16", "fp8e4m3", Some(Widened)),
        ("bf16", "fp16", None),
        ("fp16", "bf16", None),
        ("32", "bf16", Some(Widened)),
        // never a float in an integer mode, never full precision in anything narrower
        ("int8", "fp8e4m3", None),
        ("16", "fp16", None),
        ("fp16", "32", None),
        ("32", "32", Some(Native)),
    ];
    for (mode, operand, want) in cases {
        assert_eq!(holds(f(mode), f(operand)), want, "{operand} in {mode}");
    }
}

/// Guards every integer policy's price on the profiles written before formats: a layer of
/// integers (or full precision) runs in the mode the width-only rule (`w_bits ≥ w`, `a_bits ≥ a`,
/// 32 above all) picked, on every shipped profile and every (w, a) in (1..=8 ∪ {32})².
#[test]
fn integer_layers_run_where_the_width_rule_ran_them() {
    for file in crate::hardware::profile_files(Path::new(BUILTIN_PROFILE_DIR)).unwrap() {
        let p = Profile::load(&file).unwrap();
        let crate::hardware::ComputeModel::PrecisionModes(m) = p.compute() else {
            continue;
        };
        let widths: Vec<u8> = (1..=8).chain([32]).collect();
        for &w in &widths {
            for &a in &widths {
                let holding = (m.modes.iter())
                    .filter(|x| x.w.width() >= w && x.a.width() >= a)
                    .filter(|x| x.w.is_plain() && x.a.is_plain());
                let width_rule = match m.selection {
                    Selection::Fastest => holding.min_by(|x, y| {
                        (y.macs_per_cycle.total_cmp(&x.macs_per_cycle))
                            .then(x.mac_j.total_cmp(&y.mac_j))
                    }),
                    Selection::Narrowest => holding.min_by(|x, y| {
                        (u32::from(x.w.width()) + u32::from(x.a.width()))
                            .cmp(&(u32::from(y.w.width()) + u32::from(y.a.width())))
                            .then(y.macs_per_cycle.total_cmp(&x.macs_per_cycle))
                    }),
                };
                let b = LayerBits::new(Format::new(w).unwrap(), Format::new(a).unwrap());
                assert_eq!(
                    m.select(b).map(|x| &x.name),
                    width_rule.map(|x| &x.name),
                    "{} at {w}/{a}",
                    p.name()
                );
            }
        }
    }
}

/// A ModeFile of integers serializes exactly as before formats (no null format fields), so a
/// profile's digest, and the resume check built on it, are unchanged.
#[test]
fn an_integer_mode_serializes_as_before_formats() {
    let m: ModeFile = toml::from_str(
        "name = \"int8\"\nw_bits = 8\na_bits = 8\nmacs_per_cycle = 16.0\nmac_pj = 1.0",
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"name":"int8","w_bits":8,"a_bits":8,"macs_per_cycle":16.0,"mac_pj":1.0}"#
    );
}

fn check(fields: &str) -> Result<Mode, HardwareError> {
    let text = format!("name = \"m\"\n{fields}\nmacs_per_cycle = 16.0\nmac_pj = 1.0");
    let file: ModeFile = toml::from_str(&text).unwrap();
    file.check(Path::new("p.toml"), 2)
}

#[test]
fn a_mode_names_each_operand_by_width_or_format() {
    let m = check("w_bits = 8\na_format = \"fp16\"").unwrap();
    assert_eq!((m.w, m.a), (f("8"), f("fp16")));
    let m = check("w_bits = 8\nw_format = \"fp8e5m2\"\na_bits = 16").unwrap();
    assert_eq!((m.w, m.a), (f("fp8e5m2"), f("16")));
    let m = check("w_format = \"fp32\"\na_format = \"int8\"").unwrap();
    assert_eq!((m.w, m.a), (Format::FULL, f("8")));
}

#[test]
fn an_unknown_format_name_is_refused_by_field_and_value() {
    let e = check("w_format = \"fp9\"\na_bits = 8").unwrap_err();
    assert!(matches!(e, HardwareError::ModeFormatUnknown { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("p.toml: field `compute.modes[2].w_format` must name a format")
            && msg.contains("fp8e4m3")
            && msg.contains("got `fp9`"),
        "{msg}"
    );
}

#[test]
fn a_mode_format_must_be_one_a_mode_computes_in() {
    for (fields, field) in [
        ("w_format = \"int4g32\"\na_bits = 8", "w_format"),
        ("w_format = \"int16\"\na_bits = 8", "w_format"),
        ("w_bits = 8\na_format = \"int4g128\"", "a_format"),
    ] {
        let e = check(fields).unwrap_err();
        assert!(
            matches!(e, HardwareError::ModeFormatNotComputed { .. }),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains(&format!("field `compute.modes[2].{field}`")),
            "{e}"
        );
    }
}

#[test]
fn bits_and_format_must_agree_on_width() {
    let e = check("w_bits = 16\nw_format = \"fp8e4m3\"\na_bits = 8").unwrap_err();
    assert!(matches!(e, HardwareError::ModeFormatWidth { bits: 16, .. }));
    assert!(e.to_string().contains("8 bits wide"), "{e}");
}

#[test]
fn an_operand_needs_bits_or_format() {
    let e = check("w_bits = 8").unwrap_err();
    assert!(matches!(e, HardwareError::ModeOperandMissing { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("`compute.modes[2].a_bits` or `compute.modes[2].a_format`"),
        "{e}"
    );
}

#[test]
fn activations_take_up_to_16_bits_weights_up_to_8() {
    assert_eq!(check("w_bits = 8\na_bits = 16").unwrap().a, f("16"));
    let e = check("w_bits = 16\na_bits = 8").unwrap_err();
    assert!(e.to_string().contains("must be 1..=8 or 32"), "{e}");
    let e = check("w_bits = 8\na_bits = 17").unwrap_err();
    assert!(e.to_string().contains("must be 1..=16 or 32"), "{e}");
}
