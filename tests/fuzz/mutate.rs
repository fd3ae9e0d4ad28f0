//! The inputs of a harness: arbitrary bytes, or a valid seed file put through a list of
//! mutations (byte flips, truncations, duplicated, deleted and swapped lines, numbers replaced by
//! huge, negative, NaN, infinite or empty values, fields reordered, big-endian u32 header
//! fields overwritten). Random bytes alone never get past the header of a CSV or a TOML file;
//! the mutations of a valid seed are where the parsers' rules are exercised.

use proptest::prelude::*;

/// Values a number in a seed is replaced with.
const NUMBERS: &[&str] = &[
    "",
    "0",
    "-0",
    "-1",
    "1",
    "2",
    "8",
    "9",
    "32",
    "33",
    "255",
    "256",
    "0.5",
    "-0.5",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "+inf",
    "1e308",
    "-1e308",
    "1.7976931348623157e308",
    "5e-324",
    "1e309",
    "-1e309",
    "1e-320",
    "1e18",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999999999999",
    "0x10",
    "1_000",
    "1.",
    ".",
    "e",
];

/// Tokens inserted into text: the separators and quotes the formats give meaning to.
const TOKENS: &[&str] = &[
    ",",
    "\"",
    "\n",
    "\r\n",
    "=",
    "[",
    "]",
    "{",
    "}",
    "[[",
    "]]",
    ":",
    "/",
    "#",
    " ",
    "\t",
    "\0",
    "'''",
    "\"\"\"",
    "\\",
    "é",
    "\u{feff}",
    "null",
    "true",
    "-",
    "false",
    "none",
    "+",
    "zero_grad",
    "w_",
    "a_",
    "robust_eps_",
    "pgd_",
    "extends",
];

/// Values written over a big-endian u32 field of a binary header.
const U32S: &[u32] = &[
    0,
    1,
    2,
    3,
    10,
    28,
    255,
    256,
    60_000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

/// A position in a file, a line or a list, taken modulo its current length.
#[derive(Debug, Clone, Copy)]
pub struct Pos(pub u32);

impl Pos {
    fn index(self, len: usize) -> usize {
        self.0 as usize % len
    }
}

/// One edit of a file's bytes.
#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit {
        at: Pos,
        bit: u8,
    },
    SetByte {
        at: Pos,
        value: u8,
    },
    Truncate {
        at: Pos,
    },
    Insert {
        at: Pos,
        token: &'static str,
    },
    DuplicateLine {
        line: Pos,
    },
    DeleteLine {
        line: Pos,
    },
    SwapLines {
        a: Pos,
        b: Pos,
    },
    ReplaceNumber {
        nth: Pos,
        with: &'static str,
    },
    /// Swaps two comma-separated fields of one line (a CSV header or row, a TOML array).
    SwapFields {
        line: Pos,
        a: Pos,
        b: Pos,
    },
    SetU32 {
        at: Pos,
        value: u32,
    },
    /// A big-endian u32 written over one of the first eight aligned words (a binary header's
    /// fields: IDX's magic and sizes), or the file cut right after one of them.
    HeaderU32 {
        word: u8,
        value: u32,
    },
    CutAfterWord {
        word: u8,
    },
}

/// A harness input: arbitrary bytes, or mutations of the harness's seed.
#[derive(Debug, Clone)]
pub enum Input {
    Bytes(Vec<u8>),
    Mutated(Vec<Mutation>),
}

impl Input {
    /// The bytes this input stands for, given the seed.
    pub fn apply(&self, seed: &[u8]) -> Vec<u8> {
        match self {
            Input::Bytes(b) => b.clone(),
            Input::Mutated(ms) => {
                let mut out = seed.to_vec();
                for m in ms {
                    m.apply(&mut out);
                }
                out
            }
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let i = || any::<u32>().prop_map(Pos);
    prop_oneof![
        1 => (i(), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        1 => (i(), any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        1 => i().prop_map(|at| Mutation::Truncate { at }),
        1 => (i(), proptest::sample::select(TOKENS)).prop_map(|(at, token)| Mutation::Insert { at, token }),
        1 => i().prop_map(|line| Mutation::DuplicateLine { line }),
        1 => i().prop_map(|line| Mutation::DeleteLine { line }),
        1 => (i(), i()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        3 => (i(), proptest::sample::select(NUMBERS))
            .prop_map(|(nth, with)| Mutation::ReplaceNumber { nth, with }),
        1 => (i(), i(), i()).prop_map(|(line, a, b)| Mutation::SwapFields { line, a, b }),
        1 => (i(), proptest::sample::select(U32S)).prop_map(|(at, value)| Mutation::SetU32 { at, value }),
        1 => (0..8u8, proptest::sample::select(U32S))
            .prop_map(|(word, value)| Mutation::HeaderU32 { word, value }),
        1 => (0..8u8).prop_map(|word| Mutation::CutAfterWord { word }),
    ]
}

/// Arbitrary bytes (a fifth of the inputs) or one to nine mutations of the seed.
pub fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..600).prop_map(Input::Bytes),
        // Mostly one or two edits: each one is likely to break the file on its own.
        2 => proptest::collection::vec(mutation(), 1..2).prop_map(Input::Mutated),
        1 => proptest::collection::vec(mutation(), 2..4).prop_map(Input::Mutated),
        1 => proptest::collection::vec(mutation(), 4..10).prop_map(Input::Mutated),
    ]
}

/// The byte ranges of the lines of `b`, each with its newline.
fn lines(b: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < b.len() {
        out.push(start..b.len());
    }
    out
}

/// The byte ranges of the numbers of `b`: runs of digits, signs, dots and exponents holding a
/// digit.
fn numbers(b: &[u8]) -> Vec<std::ops::Range<usize>> {
    let numeric = |c: u8| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E');
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && numeric(b[i]) {
            i += 1;
        }
        if b[start..i].iter().any(u8::is_ascii_digit) {
            out.push(start..i);
        }
        i = i.max(start + 1);
    }
    out
}

impl Mutation {
    fn apply(&self, b: &mut Vec<u8>) {
        match self {
            Mutation::FlipBit { at, bit } if !b.is_empty() => {
                let at = at.index(b.len());
                b[at] ^= 1 << bit;
            }
            Mutation::SetByte { at, value } if !b.is_empty() => {
                let at = at.index(b.len());
                b[at] = *value;
            }
            Mutation::Truncate { at } => b.truncate(at.index(b.len() + 1)),
            Mutation::Insert { at, token } => {
                let at = at.index(b.len() + 1);
                b.splice(at..at, token.bytes());
            }
            Mutation::DuplicateLine { line } => {
                let ls = lines(b);
                if !ls.is_empty() {
                    let r = ls[line.index(ls.len())].clone();
                    let copy = b[r.clone()].to_vec();
                    b.splice(r.start..r.start, copy);
                }
            }
            Mutation::DeleteLine { line } => {
                let ls = lines(b);
                if !ls.is_empty() {
                    b.drain(ls[line.index(ls.len())].clone());
                }
            }
            Mutation::SwapLines { a, b: other } => {
                let ls = lines(b);
                if !ls.is_empty() {
                    let (x, y) = (a.index(ls.len()), other.index(ls.len()));
                    let mut order: Vec<usize> = (0..ls.len()).collect();
                    order.swap(x, y);
                    *b = order
                        .iter()
                        .flat_map(|&k| b[ls[k].clone()].to_vec())
                        .collect();
                }
            }
            Mutation::ReplaceNumber { nth, with } => {
                let ns = numbers(b);
                if !ns.is_empty() {
                    b.splice(ns[nth.index(ns.len())].clone(), with.bytes());
                }
            }
            Mutation::SwapFields { line, a, b: other } => swap_fields(b, *line, *a, *other),
            Mutation::SetU32 { at, value } if b.len() >= 4 => {
                let at = at.index(b.len() - 3);
                b[at..at + 4].copy_from_slice(&value.to_be_bytes());
            }
            Mutation::HeaderU32 { word, value } => {
                let at = 4 * usize::from(*word);
                if b.len() >= at + 4 {
                    b[at..at + 4].copy_from_slice(&value.to_be_bytes());
                }
            }
            Mutation::CutAfterWord { word } => b.truncate(4 * (usize::from(*word) + 1)),
            _ => {}
        }
    }
}

fn swap_fields(b: &mut Vec<u8>, line: Pos, x: Pos, y: Pos) {
    let ls = lines(b);
    if ls.is_empty() {
        return;
    }
    let r = ls[line.index(ls.len())].clone();
    let text = &b[r.clone()];
    let newline = text.ends_with(b"\n");
    let body = &text[..text.len() - usize::from(newline)];
    let mut fields: Vec<&[u8]> = body.split(|&c| c == b',').collect();
    let (i, j) = (x.index(fields.len()), y.index(fields.len()));
    fields.swap(i, j);
    let mut out = fields.join(&b","[..]);
    if newline {
        out.push(b'\n');
    }
    b.splice(r, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_found_and_replaced() {
        let idx = Pos;
        assert_eq!(numbers(b"a = 1.5e-3, b = x, c = -2").len(), 2);
        let mut b = b"x = 12\ny = 7\n".to_vec();
        Mutation::ReplaceNumber {
            nth: idx(1),
            with: "NaN",
        }
        .apply(&mut b);
        assert_eq!(b, b"x = 12\ny = NaN\n");
    }
}
