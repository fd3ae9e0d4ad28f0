use super::*;
use crate::hardware::BUILTIN_PROFILE_DIR;
use crate::model::Arch;
use crate::npy::tests::HAQ_TABLE;

fn bits(w: u8, a: u8) -> LayerBits {
    LayerBits::new(Format::new(w).unwrap(), Format::new(a).unwrap())
}

fn table(shape: Vec<usize>, values: Vec<i64>) -> Result<CycleTable, HardwareError> {
    CycleTable::from_npy(NpyI64 { shape, values }, Path::new("t.npy"))
}

fn bismo_cloud() -> Profile {
    Profile::load(&Path::new(BUILTIN_PROFILE_DIR).join("bismo-cloud.toml")).unwrap()
}

/// Entries read with Python's struct module from the file: [0, 7, 7] = 1,620,752 and the fc's
/// [52, 7, 0] = 40,000 (w = 8, a = 1) against [52, 0, 7] = 5,007 (w = 1, a = 8): the fc
/// streams its weights, so its cycles follow w — the second index is the weight width.
#[test]
fn haqs_table_is_indexed_layer_w_a() {
    let t = CycleTable::load(Path::new(HAQ_TABLE)).unwrap();
    assert_eq!((t.layers(), t.widths()), (53, 8));
    assert_eq!(t.cycles(0, bits(8, 8)), Some(1_620_752));
    assert_eq!(t.cycles(52, bits(8, 1)), Some(40_000));
    assert_eq!(t.cycles(52, bits(1, 8)), Some(5_007));
    assert_eq!(t.cycles(52, bits(32, 32)), t.cycles(52, bits(8, 8)));
    assert_eq!(t.cycles(53, bits(8, 8)), None);
}

#[test]
fn a_table_must_be_layers_by_w_by_a() {
    let e = table(vec![2, 4], vec![1; 8]).unwrap_err();
    assert!(e.to_string().contains("three dimensions"), "{e}");
    let e = table(vec![1, 2, 3], vec![1; 6]).unwrap_err();
    assert!(e.to_string().contains("equal w and a"), "{e}");
    let e = table(vec![1, 9, 9], vec![1; 81]).unwrap_err();
    assert!(e.to_string().contains("got [1, 9, 9]"), "{e}");
    let e = table(vec![0, 2, 2], vec![]).unwrap_err();
    assert!(e.to_string().contains("at least one layer"), "{e}");
}

/// A zero would price a layer as free; the error names the entry by index and by bits.
#[test]
fn every_entry_must_be_positive() {
    let mut values = vec![5; 8];
    values[6] = 0;
    let e = table(vec![2, 2, 2], values).unwrap_err();
    assert!(
        e.to_string().contains(
            "entry [1, 1, 0] (layer 1, w_bits 2, a_bits 1) must be greater than zero, got 0"
        ),
        "{e}"
    );
}

/// The converter's rows: latency is cycles at the clock, 32/32 is priced as 8/8, energy is the
/// base profile's estimate; every (w, a) of the profile and 32/32 is present.
#[test]
fn rows_turn_cycles_into_microseconds() {
    let t = CycleTable::load(Path::new(HAQ_TABLE)).unwrap();
    let layers = Arch::Mobilenetv2.layer_shapes((3, 224, 224), 1000).unwrap();
    let profile = bismo_cloud();
    let rows = cycle_table_rows(&t, &layers, &profile, 200e6).unwrap();
    assert_eq!(rows.len(), 53 * 65);
    let row = |l: usize, w: u8, a: u8| {
        let name = &layers[l].name;
        rows.iter()
            .find(|r| &r.layer == name && (r.w_bits, r.a_bits) == (w, a))
            .unwrap()
    };
    // 1,620,752 cycles at 200 MHz = 8,103.76 us
    assert!((row(0, 8, 8).latency_us - 8103.76).abs() < 1e-6);
    assert_eq!(row(0, 32, 32).latency_us, row(0, 8, 8).latency_us);
    let energy = profile.model_cost(&layers[3], bits(4, 2)).unwrap().energy_j;
    assert_eq!(row(3, 4, 2).energy_uj, energy * 1e6);
    assert_eq!(
        (row(52, 1, 1).macs, row(52, 1, 1).params),
        (1_280_000, 1_281_000)
    );
}

#[test]
fn a_table_of_another_model_is_refused() {
    let t = CycleTable::load(Path::new(HAQ_TABLE)).unwrap();
    let layers = Arch::Mobilenet.layer_shapes((3, 32, 32), 10).unwrap();
    let e = cycle_table_rows(&t, &layers, &bismo_cloud(), 200e6).unwrap_err();
    assert!(
        e.to_string().contains("has 53 layers but the model has 12"),
        "{e}"
    );
}

#[test]
fn a_profile_wider_than_the_table_is_refused() {
    let t = table(vec![1, 4, 4], vec![1; 16]).unwrap();
    let layers = Arch::Mlp.layer_shapes((1, 28, 28), 10).unwrap();
    let e = cycle_table_rows(&t, &layers[..1], &bismo_cloud(), 200e6).unwrap_err();
    assert!(
        matches!(&e, HardwareError::CycleTableWidths { widths: 4, bits, .. } if bits == "1/5"),
        "{e}"
    );
}
