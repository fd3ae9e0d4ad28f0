//! Policies: `LayerBits { w, a }` (one `Format` per operand) and `Policy`, with the string form
//! `8/8,4/4,fp8e4m3/int16` and the JSON form `{"model": .., "layers": [{"name", "w_bits",
//! "a_bits"}]}` (plus `w_format`/`a_format` where a format is not an integer).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Format, Operand, QuantError};

/// The weight and activation bitwidths of one quantizable layer. Ordered by weight bits, then
/// activation bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LayerBits {
    pub w: Format,
    pub a: Format,
}

impl LayerBits {
    pub fn new(w: Format, a: Format) -> Self {
        LayerBits { w, a }
    }

    pub fn uniform(b: Format) -> Self {
        LayerBits { w: b, a: b }
    }
}

impl fmt::Display for LayerBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.w, self.a)
    }
}

/// One `LayerBits` per quantizable layer, in model order: the one policy type from an agent's
/// proposal through the budget wall, the price, the fine-tune and the log, and back to the agent.
/// Ordered layer by layer (first layer most significant), so ordered sets of policies iterate
/// in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Policy(Vec<LayerBits>);

/// The JSON file form of a policy.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub model: String,
    pub layers: Vec<PolicyFileLayer>,
}

/// One layer of a policy file (and of best-policy.json): `w_bits`/`a_bits` hold each operand's
/// width in bits (32 unquantized), and `w_format`/`a_format` name a format that is not an
/// integer (`fp8e4m3` with `w_bits` 8), so a reader that knows only widths still reads them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFileLayer {
    pub name: String,
    pub w_bits: u8,
    pub a_bits: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w_format: Option<Format>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_format: Option<Format>,
}

impl PolicyFileLayer {
    /// The file form of one layer's formats.
    pub fn new(name: &str, bits: LayerBits) -> Self {
        let named = |f: Format| (!f.is_plain()).then_some(f);
        PolicyFileLayer {
            name: name.to_string(),
            w_bits: bits.w.width(),
            a_bits: bits.a.width(),
            w_format: named(bits.w),
            a_format: named(bits.a),
        }
    }

    /// The layer's formats: the named one where given (its width must agree with the
    /// `_bits` field), else the integer width; each checked against its operand.
    pub fn bits(&self) -> Result<LayerBits, QuantError> {
        let read = |bits: u8, format: Option<Format>, field: &'static str, operand| {
            let f = match format {
                Some(f) if f.width() != bits => {
                    return Err(QuantError::WidthMismatch {
                        layer: self.name.clone(),
                        field,
                        bits,
                        format: f.name(),
                        width: f.width(),
                    })
                }
                Some(f) => f,
                None => Format::new(bits)?,
            };
            check_operand(f, operand)
        };
        Ok(LayerBits {
            w: read(self.w_bits, self.w_format, "w_bits", Operand::Weight)?,
            a: read(self.a_bits, self.a_format, "a_bits", Operand::Activation)?,
        })
    }
}

/// `format`, if `operand` may take it.
fn check_operand(format: Format, operand: Operand) -> Result<Format, QuantError> {
    match format.allowed_for(operand) {
        true => Ok(format),
        false => Err(QuantError::WrongOperand {
            format: format.name(),
            operand,
        }),
    }
}

impl Policy {
    pub fn new(layers: Vec<LayerBits>) -> Self {
        Policy(layers)
    }

    pub fn uniform(n_layers: usize, bits: Format) -> Self {
        Policy(vec![LayerBits::uniform(bits); n_layers])
    }

    pub fn layers(&self) -> &[LayerBits] {
        &self.0
    }

    /// The layers' bits, for changing them in place (the budget wall, a mutation); the number
    /// of layers stays fixed.
    pub fn layers_mut(&mut self) -> &mut [LayerBits] {
        &mut self.0
    }

    /// The layers' bits in model order.
    pub fn iter(&self) -> std::slice::Iter<'_, LayerBits> {
        self.0.iter()
    }

    /// Layer `i`'s bits, if the policy has that many layers.
    pub fn get(&self, i: usize) -> Option<LayerBits> {
        self.0.get(i).copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `8/8,4/4,2/4,fp8e4m3/int16` (weight/activation per layer, `32` = unquantized;
    /// each operand any format `Format` reads that the operand may take).
    pub fn parse(text: &str) -> Result<Self, QuantError> {
        let mut layers = Vec::new();
        for (index, item) in text.split(',').enumerate() {
            let malformed = || QuantError::MalformedLayer {
                index,
                text: item.to_string(),
            };
            let (w, a) = item.trim().split_once('/').ok_or_else(malformed)?;
            // "8/" would otherwise read as the bitwidth "" and say it is not a number.
            for (part, operand, field) in [(w, "weight", "w_bits"), (a, "activation", "a_bits")] {
                if part.trim().is_empty() {
                    return Err(QuantError::MissingBits {
                        index,
                        text: item.trim().to_string(),
                        operand,
                        field,
                    });
                }
            }
            let in_layer = |e| QuantError::InLayer {
                index,
                source: Box::new(e),
            };
            let w =
                (w.parse().and_then(|f| check_operand(f, Operand::Weight))).map_err(in_layer)?;
            let a = (a
                .parse()
                .and_then(|f| check_operand(f, Operand::Activation)))
            .map_err(in_layer)?;
            layers.push(LayerBits { w, a });
        }
        Ok(Policy(layers))
    }

    /// Reads the JSON form and checks it names `model` and exactly `layer_names`, in order.
    pub fn from_json_file(
        path: &Path,
        model: &str,
        layer_names: &[&str],
    ) -> Result<Self, QuantError> {
        let text = std::fs::read_to_string(path).map_err(|source| QuantError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file: PolicyFile = serde_json::from_str(&text).map_err(|source| QuantError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        if file.model != model {
            return Err(QuantError::ModelMismatch {
                expected: model.to_string(),
                got: file.model,
            });
        }
        let names: Vec<&str> = file.layers.iter().map(|l| l.name.as_str()).collect();
        check_names(&names, layer_names)?;
        let layers = file.layers.iter().enumerate().map(|(index, l)| {
            l.bits().map_err(|e| QuantError::InLayer {
                index,
                source: Box::new(e),
            })
        });
        let layers = layers
            .collect::<Result<_, _>>()
            .map_err(|source| QuantError::InFile {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        Ok(Policy(layers))
    }

    /// The JSON form, naming each layer.
    pub fn to_file(&self, model: &str, layer_names: &[&str]) -> PolicyFile {
        PolicyFile {
            model: model.to_string(),
            layers: self
                .0
                .iter()
                .zip(layer_names)
                .map(|(b, n)| PolicyFileLayer::new(n, *b))
                .collect(),
        }
    }

    /// Errors unless there is exactly one entry per quantizable layer of `model`.
    pub fn check_len(&self, model: &str, n_layers: usize) -> Result<(), QuantError> {
        if self.0.len() != n_layers {
            return Err(QuantError::LengthMismatch {
                model: model.to_string(),
                expected: n_layers,
                got: self.0.len(),
            });
        }
        Ok(())
    }
}

impl FromIterator<LayerBits> for Policy {
    fn from_iter<I: IntoIterator<Item = LayerBits>>(iter: I) -> Self {
        Policy(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Policy {
    type Item = &'a LayerBits;
    type IntoIter = std::slice::Iter<'a, LayerBits>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Layer `i`'s bits; panics if `i` is not below `len()`, like slice indexing.
impl std::ops::Index<usize> for Policy {
    type Output = LayerBits;
    fn index(&self, i: usize) -> &LayerBits {
        &self.0[i]
    }
}

fn check_names(got: &[&str], expected: &[&str]) -> Result<(), QuantError> {
    if got.len() != expected.len() {
        return Err(QuantError::NamesMismatch {
            expected: expected.join(","),
            got: got.join(","),
        });
    }
    for (index, (g, e)) in got.iter().zip(expected).enumerate() {
        if g != e {
            return Err(QuantError::NameMismatch {
                index,
                expected: e.to_string(),
                got: g.to_string(),
            });
        }
    }
    Ok(())
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|b| b.to_string()).collect();
        write!(f, "{}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_string_form() {
        let p = Policy::parse("8/8,4/4,2/4,32/8, 1/32").unwrap();
        assert_eq!(p.len(), 5);
        assert_eq!(
            p.layers()[2],
            LayerBits::new(Format::new(2).unwrap(), Format::new(4).unwrap())
        );
        assert!(p.layers()[3].w.is_full());
        assert_eq!(p.to_string(), "8/8,4/4,2/4,32/8,1/32");
    }

    #[test]
    fn formats_parse_print_and_file_round_trip() {
        let p = Policy::parse("fp8e4m3/fp8e4m3,int8/int16,int4g32/bf16,32/fp16").unwrap();
        assert_eq!(p.to_string(), "fp8e4m3/fp8e4m3,8/16,int4g32/bf16,32/fp16");
        assert_eq!(Policy::parse(&p.to_string()).unwrap(), p);
        let names = ["a", "b", "c", "d"];
        let file = p.to_file("m", &names);
        let json = serde_json::to_value(&file).unwrap();
        assert_eq!(json["layers"][0]["w_bits"], 8);
        assert_eq!(json["layers"][0]["w_format"], "fp8e4m3");
        assert_eq!(json["layers"][1]["a_bits"], 16);
        assert!(
            json["layers"][1].get("a_format").is_none(),
            "integers stay plain: {json}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, json.to_string()).unwrap();
        assert_eq!(Policy::from_json_file(&path, "m", &names).unwrap(), p);
        // A width that disagrees with the named format is refused, naming layer and field.
        let bad = json.to_string().replacen("\"w_bits\":8", "\"w_bits\":4", 1);
        std::fs::write(&path, bad).unwrap();
        let err = Policy::from_json_file(&path, "m", &names)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.json") && err.contains("layer a") && err.contains("w_bits is 4"),
            "{err}"
        );
    }

    #[test]
    fn bits_outside_range_are_rejected() {
        for bad in [
            "0/8",
            "9/8",
            "8/17",
            "-1/8",
            "300/8",
            "8/int4g32",
            "int16/8",
            "fp9/8",
        ] {
            let err = Policy::parse(bad).unwrap_err().to_string();
            assert!(err.contains("layer 0"), "{bad}: {err}");
        }
        assert!(matches!(
            Format::new(0),
            Err(QuantError::BitsOutOfRange { value: 0 })
        ));
    }

    #[test]
    fn malformed_items_name_their_index() {
        let err = Policy::parse("8/8,48,4/4").unwrap_err();
        assert!(
            matches!(err, QuantError::MalformedLayer { index: 1, .. }),
            "{err}"
        );
        let err = Policy::parse("8/8,a/4").unwrap_err().to_string();
        assert!(err.contains("layer 1") && err.contains("\"a\""), "{err}");
        assert!(Policy::parse("").is_err());
    }

    #[test]
    fn a_missing_bitwidth_is_named() {
        let err = Policy::parse("8/8,8/").unwrap_err();
        assert!(
            matches!(
                err,
                QuantError::MissingBits {
                    index: 1,
                    field: "a_bits",
                    ..
                }
            ),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("layer 1") && text.contains("activation") && !text.contains("got \"\""),
            "{text}"
        );
        let err = Policy::parse(" /4").unwrap_err();
        assert!(
            matches!(
                err,
                QuantError::MissingBits {
                    index: 0,
                    field: "w_bits",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn json_layer_without_a_bits_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(
            &path,
            r#"{"model": "mlp", "layers": [{"name": "fc1", "w_bits": 8}]}"#,
        )
        .unwrap();
        let err = Policy::from_json_file(&path, "mlp", &["fc1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `a_bits`"), "{err}");
    }

    #[test]
    fn policies_order_layer_by_layer_weight_bits_first() {
        // Agents keep ordered sets of policies; their iteration order must be this one.
        let p = |t: &str| Policy::parse(t).unwrap();
        assert!(p("2/8") < p("4/2"), "weight bits first");
        assert!(p("4/2") < p("4/4"), "then activation bits");
        assert!(p("4/8,8/8") < p("8/2,2/2"), "first layer most significant");
        assert!(p("4/4") < p("4/4,2/2"), "a prefix first");
        assert!(p("8/8") < p("32/2"), "full precision above every bitwidth");
    }

    #[test]
    fn accessors_see_the_layers_in_model_order() {
        let mut p: Policy = Policy::parse("8/4,2/32").unwrap().iter().copied().collect();
        assert_eq!(
            (p[1], p.get(1), p.get(2)),
            (
                LayerBits::new(Format::new(2).unwrap(), Format::FULL),
                Some(p[1]),
                None
            )
        );
        p.layers_mut()[0].a = Format::new(2).unwrap();
        assert_eq!(
            (&p).into_iter().map(|b| b.to_string()).collect::<Vec<_>>(),
            ["8/2", "2/32"]
        );
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let p = Policy::parse("8/8,8/8").unwrap();
        let err = p.check_len("lenet5", 5).unwrap_err().to_string();
        assert!(
            err.contains("lenet5") && err.contains('5') && err.contains('2'),
            "{err}"
        );
        assert!(p.check_len("mlp", 2).is_ok());
    }

    #[test]
    fn json_form_checks_model_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        let names = ["fc1", "fc2"];
        let p = Policy::parse("8/4,2/32").unwrap();
        let text = serde_json::to_string(&p.to_file("mlp", &names)).unwrap();
        std::fs::write(&path, &text).unwrap();
        assert_eq!(Policy::from_json_file(&path, "mlp", &names).unwrap(), p);
        let err = Policy::from_json_file(&path, "lenet5", &names).unwrap_err();
        assert!(matches!(err, QuantError::ModelMismatch { .. }));
        let err = Policy::from_json_file(&path, "mlp", &["fc1", "fc3"]).unwrap_err();
        assert!(err.to_string().contains("fc3"), "{err}");
        let err = Policy::from_json_file(&path, "mlp", &["fc1"]).unwrap_err();
        assert!(matches!(err, QuantError::NamesMismatch { .. }));
        std::fs::write(&path, text.replace("\"w_bits\":8", "\"w_bits\":9")).unwrap();
        let err = Policy::from_json_file(&path, "mlp", &names)
            .unwrap_err()
            .to_string();
        assert!(err.contains("p.json"), "{err}");
    }
}
