use super::*;

/// HAQ's table as committed (tests/data/haq/README.md).
pub(crate) const HAQ_TABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/haq/qmobilenetv2_imagenet100_batch16_latency_table.npy"
);

/// A .npy file of version `major`.0 with `header` (padded as NumPy pads it) and `values`.
fn npy(major: u8, header: &str, values: &[i64]) -> Vec<u8> {
    let len_bytes = if major == 1 { 2 } else { 4 };
    let unpadded = 8 + len_bytes + header.len() + 1;
    let header = format!("{header}{}\n", " ".repeat((64 - unpadded % 64) % 64));
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([major, 0]);
    let len = header.len() as u32;
    out.extend(&len.to_le_bytes()[..len_bytes]);
    out.extend(header.as_bytes());
    for v in values {
        out.extend(v.to_le_bytes());
    }
    out
}

const GOOD: &str = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }";

fn parse(bytes: &[u8]) -> Result<NpyI64, NpyError> {
    NpyI64::parse(bytes, Path::new("t.npy"))
}

/// DESIGN.md records the table's sum at 8/8, computed with NumPy: 39,624,933 cycles.
#[test]
fn reads_haqs_table() {
    let t = NpyI64::load(Path::new(HAQ_TABLE)).unwrap();
    assert_eq!(t.shape, [53, 8, 8]);
    let sum: i64 = (0..53).map(|l| t.values[l * 64 + 7 * 8 + 7]).sum();
    assert_eq!(sum, 39_624_933);
}

#[test]
fn versions_one_two_and_three_parse_alike() {
    let values = [1, -2, 3, 4, 5, i64::MAX];
    for major in [1, 2, 3] {
        let t = parse(&npy(major, GOOD, &values)).unwrap();
        assert_eq!(
            (t.shape.as_slice(), t.values.as_slice()),
            (&[2, 3][..], &values[..])
        );
    }
    let scalar = parse(&npy(
        1,
        "{'descr': '<i8', 'fortran_order': False, 'shape': ()}",
        &[7],
    ));
    assert_eq!(scalar.unwrap().values, [7]);
}

#[test]
fn a_file_without_the_magic_is_refused() {
    let mut bytes = npy(1, GOOD, &[0; 6]);
    bytes[1] = b'X';
    let e = parse(&bytes).unwrap_err();
    assert!(matches!(e, NpyError::Magic { .. }), "{e}");
    assert!(e.to_string().starts_with("t.npy: not a .npy file"), "{e}");
}

#[test]
fn the_version_must_be_one_two_or_three() {
    let mut bytes = npy(1, GOOD, &[0; 6]);
    bytes[6] = 4;
    let e = parse(&bytes).unwrap_err().to_string();
    assert!(e.contains("must be 1.0, 2.0 or 3.0, got 4.0"), "{e}");
}

#[test]
fn a_file_cut_inside_its_header_names_the_part() {
    let bytes = npy(1, GOOD, &[0; 6]);
    let e = parse(&bytes[..20]).unwrap_err();
    assert!(
        matches!(
            e,
            NpyError::Truncated {
                part: "header",
                need: 118,
                have: 10,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn descr_must_be_little_endian_int64() {
    let header = GOOD.replace("<i8", "<f4");
    let e = parse(&npy(1, &header, &[0; 6])).unwrap_err().to_string();
    assert!(
        e.contains("header field `descr` must be '<i8'") && e.ends_with("got '<f4'"),
        "{e}"
    );
}

#[test]
fn fortran_order_must_be_false() {
    let header = GOOD.replace("False", "True");
    let e = parse(&npy(1, &header, &[0; 6])).unwrap_err();
    assert!(
        matches!(&e, NpyError::Field { field: "fortran_order", value, .. } if value == "True"),
        "{e}"
    );
}

#[test]
fn the_shape_must_be_a_tuple_of_non_negative_integers() {
    for bad in ["(2, -3)", "[2, 3]", "(2, x)", "(,)"] {
        let header = GOOD.replace("(2, 3)", bad);
        let e = parse(&npy(1, &header, &[0; 6])).unwrap_err();
        assert!(
            matches!(e, NpyError::Field { field: "shape", .. }),
            "{bad}: {e}"
        );
    }
}

#[test]
fn the_header_must_have_exactly_the_three_keys() {
    for bad in [
        "{'descr': '<i8', 'shape': (2, 3)}",
        "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), 'x': 1}",
        "{'descr': '<i8', 'descr': '<i8', 'fortran_order': False, 'shape': (2, 3)}",
        "'descr': '<i8'",
    ] {
        let e = parse(&npy(1, bad, &[0; 6])).unwrap_err();
        assert!(matches!(e, NpyError::Header { .. }), "{bad}: {e}");
    }
}

#[test]
fn the_data_must_be_exactly_the_shapes_values() {
    for n in [5, 7] {
        let e = parse(&npy(1, GOOD, &vec![0; n])).unwrap_err();
        let found = n * 8;
        assert!(
            matches!(e, NpyError::DataLength { expected: 48, found: f, .. } if f == found),
            "{e}"
        );
    }
    let huge = GOOD.replace("(2, 3)", "(4294967296, 4294967296, 4294967296)");
    let e = parse(&npy(1, &huge, &[])).unwrap_err();
    assert!(matches!(e, NpyError::Field { field: "shape", .. }), "{e}");
}

/// No cut or corruption of a real file panics: every prefix, and every single-byte change of
/// the header, is either parsed or refused with an error.
#[test]
fn no_prefix_or_header_byte_change_panics() {
    let bytes = std::fs::read(HAQ_TABLE).unwrap();
    for len in 0..200 {
        assert!(parse(&bytes[..len]).is_err());
    }
    for i in 0..128 {
        for v in [0u8, b'(', b')', b',', b'\'', b'{', b'}', 0xff, b'9'] {
            let mut b = bytes.clone();
            b[i] = v;
            let _ = parse(&b);
        }
    }
}

#[test]
fn npy_headers_align_to_64_bytes_and_name_dtype_and_shape() {
    for shape in [vec![3], vec![2, 5], vec![1, 3, 32, 32]] {
        let n: usize = shape.iter().product();
        let bytes = write("<f4", &shape, &vec![0u8; 4 * n]);
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + len) % 64, 0);
        assert_eq!(bytes.len(), 10 + len + 4 * n);
        let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
        assert!(header.ends_with('\n') && header.contains("'descr': '<f4'"));
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        assert!(header.contains(&dims.join(", ")), "{header}");
    }
    let one = write("<u4", &[7], &[0; 28]);
    assert!(std::str::from_utf8(&one[10..64]).unwrap().contains("(7,)"));
}

#[test]
fn what_the_writer_writes_the_reader_reads() {
    let values: Vec<i64> = vec![-3, 0, 7, i64::MAX, i64::MIN, 42];
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let read = parse(&write("<i8", &[2, 3], &data)).unwrap();
    assert_eq!(
        read,
        NpyI64 {
            shape: vec![2, 3],
            values
        }
    );
}
