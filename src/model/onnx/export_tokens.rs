//! The QDQ export of the token ops (`model::tokens`) in opset-13 operators (and their opset-21
//! forms where those differ): a sequence is an (N, T, D) tensor, the heads of attention a
//! Reshape to (N, T, heads, D / heads) and a Transpose, LayerNorm its ReduceMean arithmetic
//! (LayerNormalization is opset 17) and GELU its Erf form (Gelu is opset 20), as PyTorch writes
//! both at those opsets.

use super::super::proto::{attribute_proto::AttributeType, tensor_proto::DataType, AttributeProto};
use super::{int, Opset, Out};
use crate::model::graph::{Dims, Op};
use crate::model::{Model, ModelError};

/// An attribute of integers, negative ones included.
fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

impl Out {
    /// Token op `op` of node `i` on inputs `x` (names) shaped `dims`.
    pub(super) fn token_op(
        &mut self,
        model: &Model,
        i: usize,
        op: &Op,
        x: &[String],
        dims: &[Dims],
    ) -> Result<String, ModelError> {
        let src = dims[0];
        let param = |suffix: &str| -> Result<(Vec<usize>, Vec<f32>), ModelError> {
            let t = model
                .node_tensor(i, suffix)
                .ok_or_else(|| ModelError::Layer {
                    layer: format!("node {i}"),
                    what: format!("{} has no parameter {suffix}", op.kind()),
                })?;
            Ok((t.dims().to_vec(), t.flatten_all()?.to_vec1()?))
        };
        let h = x[0].as_str();
        Ok(match *op {
            Op::Tokens => {
                let Dims::Map(c, hh, w) = src else {
                    return Err(bad(i, "tokens of a map"));
                };
                let shape = self.i64s("shape", &[0, c as i64, (hh * w) as i64]);
                let flat = self.node("Reshape", &[h, &shape], vec![]);
                self.node("Transpose", &[&flat], vec![ints("perm", &[0, 2, 1])])
            }
            Op::ClassToken { .. } => {
                let (_, v) = param("weight")?;
                let d = v.len();
                let cls = self.f32s("class_token", &[1, 1, d], &v);
                // The token repeated over the batch: Expand to (N, 1, D), N read off the input.
                let shape = self.node("Shape", &[h], vec![]);
                let first = self.i64s("index", &[0]);
                let batch = self.node("Gather", &[&shape, &first], vec![int("axis", 0)]);
                let rest = self.i64s("shape", &[1, d as i64]);
                let target = self.node("Concat", &[&batch, &rest], vec![int("axis", 0)]);
                let expanded = self.node("Expand", &[&cls, &target], vec![]);
                self.node("Concat", &[&expanded, h], vec![int("axis", 1)])
            }
            Op::PosEmbed { .. } => {
                let (dims, v) = param("weight")?;
                let pos = self.f32s("position", &[&[1], dims.as_slice()].concat(), &v);
                self.node("Add", &[h, &pos], vec![])
            }
            Op::LayerNorm { eps, .. } => {
                let ((_, g), (_, b)) = (param("weight")?, param("bias")?);
                let mean = self.mean_of_last(h);
                let centered = self.node("Sub", &[h, &mean], vec![]);
                let square = self.node("Mul", &[&centered, &centered], vec![]);
                let var = self.mean_of_last(&square);
                let eps = self.scalar_f32(eps);
                let shifted = self.node("Add", &[&var, &eps], vec![]);
                let sd = self.node("Sqrt", &[&shifted], vec![]);
                let normed = self.node("Div", &[&centered, &sd], vec![]);
                let (g, b) = (
                    self.f32s("gamma", &[g.len()], &g),
                    self.f32s("beta", &[b.len()], &b),
                );
                let scaled = self.node("Mul", &[&normed, &g], vec![]);
                self.node("Add", &[&scaled, &b], vec![])
            }
            Op::Gelu => {
                let root2 = self.scalar_f32(std::f32::consts::SQRT_2);
                let scaled = self.node("Div", &[h, &root2], vec![]);
                let erf = self.node("Erf", &[&scaled], vec![]);
                let one = self.scalar_f32(1.0);
                let shifted = self.node("Add", &[&erf, &one], vec![]);
                let gated = self.node("Mul", &[h, &shifted], vec![]);
                let half = self.scalar_f32(0.5);
                self.node("Mul", &[&gated, &half], vec![])
            }
            Op::Softmax => self.node("Softmax", &[h], vec![int("axis", -1)]),
            Op::Scores { heads, scale, .. } => {
                let q = self.heads(h, src, heads, &[0, 2, 1, 3])?;
                // Keys transposed within each head: (N, heads, D / heads, T).
                let k = self.heads(&x[1], dims[1], heads, &[0, 2, 3, 1])?;
                let dot = self.node("MatMul", &[&q, &k], vec![]);
                let scale = self.scalar_f32(scale);
                self.node("Mul", &[&dot, &scale], vec![])
            }
            Op::Mix { heads, .. } => {
                let Some(&Dims::Seq(t, d)) = dims.get(1) else {
                    return Err(bad(i, "values of a sequence"));
                };
                let v = self.heads(&x[1], Dims::Seq(t, d), heads, &[0, 2, 1, 3])?;
                let mixed = self.node("MatMul", &[h, &v], vec![]);
                let back = self.node("Transpose", &[&mixed], vec![ints("perm", &[0, 2, 1, 3])]);
                let shape = self.i64s("shape", &[0, t as i64, d as i64]);
                self.node("Reshape", &[&back, &shape], vec![])
            }
            Op::Token { index } => {
                let at = self.init(
                    "index",
                    &[],
                    DataType::Int64,
                    (index as i64).to_le_bytes().into(),
                );
                self.node("Gather", &[h, &at], vec![int("axis", 1)])
            }
            _ => return Err(bad(i, "a token op")),
        })
    }

    /// ReduceMean over the last axis, kept: its axes are an attribute up to opset 17 and an
    /// input from opset 18.
    fn mean_of_last(&mut self, x: &str) -> String {
        let keep = int("keepdims", 1);
        match self.opset {
            Opset::V13 => self.node("ReduceMean", &[x], vec![ints("axes", &[-1]), keep]),
            Opset::V21 => {
                let axes = self.i64s("axes", &[-1]);
                self.node("ReduceMean", &[x, &axes], vec![keep])
            }
        }
    }

    /// A sequence (N, T, D) split into heads, (N, T, heads, D / heads), then permuted.
    fn heads(
        &mut self,
        x: &str,
        src: Dims,
        heads: usize,
        perm: &[i64],
    ) -> Result<String, ModelError> {
        let Dims::Seq(t, d) = src else {
            return Err(bad(0, "heads of a sequence"));
        };
        let shape = self.i64s("shape", &[0, t as i64, heads as i64, (d / heads) as i64]);
        let split = self.node("Reshape", &[x, &shape], vec![]);
        Ok(self.node("Transpose", &[&split], vec![ints("perm", perm)]))
    }

    /// A linear layer on the (tokens, features) of `x`: the tokens as rows of one Gemm, (N·T, D),
    /// then back to (N, T, O). Gemm, as the flat layers are written, rather than MatMul: ONNX
    /// Runtime's extended optimizations rewrite a MatMul of a DequantizeLinear weight into
    /// MatMulNBits, which also quantizes the activations it multiplies and so moves the logits.
    pub(super) fn token_linear(
        &mut self,
        x: &str,
        weight: &str,
        bias: &str,
        (tokens, features): (usize, usize),
        out: usize,
    ) -> String {
        let rows = self.i64s("shape", &[-1, features as i64]);
        let rows = self.node("Reshape", &[x, &rows], vec![]);
        let y = self.node("Gemm", &[&rows, weight, bias], vec![int("transB", 1)]);
        let back = self.i64s("shape", &[-1, tokens as i64, out as i64]);
        self.node("Reshape", &[&y, &back], vec![])
    }
}

pub(super) fn bad(node: usize, what: &str) -> ModelError {
    ModelError::Layer {
        layer: format!("node {node}"),
        what: format!("cannot export: needs {what}"),
    }
}
