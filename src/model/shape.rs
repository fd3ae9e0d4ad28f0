//! `LayerShape`: what the cost model and the agent's state see of a quantizable layer.
//!
//! A conv or linear layer multiplies its input (`a` bits) by its stored weights (`w` bits). An
//! activation × activation matmul (a transformer's attention, `LayerKind::Matmul`) multiplies two
//! computed tensors, per head h of `groups` heads:
//!
//! ```text
//! (T × k) · (k × n) for h = 1..heads       first operand (T, heads·k) at a bits
//!                                          second operand heads·k·n values at w bits
//! MACs = heads · T · k · n                 output (T, heads·n)
//! ```
//!
//! stored as a grouped layer on `T` tokens (`in_ch` = heads·k, `out_ch` = heads·n, `groups` =
//! heads, `in_hw` = `out_hw` = (T, 1)), so MACs and the im2col-style reads follow the linear
//! layers' formulas. Its second operand is an activation, read per example like the input: it is
//! memory traffic (`operand_count`), not a stored parameter (`weight_count` and `params` are 0).

use crate::quant::{Format, Kind, Operand};
use serde::{Deserialize, Serialize};

/// The kind of a quantizable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    Conv,
    Linear,
    /// An activation × activation matmul (attention's QKᵀ or softmax × V): no weights.
    Matmul,
}

/// The static description of one quantizable layer, per example (batch size 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerShape {
    pub name: String,
    pub kind: LayerKind,
    pub in_ch: usize,
    pub out_ch: usize,
    /// Square kernel side; 1 for linear layers.
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    /// Input feature map (height, width); (1, 1) for linear layers.
    pub in_hw: (usize, usize),
    /// Output feature map (height, width); (1, 1) for linear layers.
    pub out_hw: (usize, usize),
    /// Weights plus biases.
    pub params: usize,
    /// Multiply-accumulates per example.
    pub macs: u64,
    /// Activation values per example that the joins charged to this layer move besides its
    /// output: a residual Add, a squeeze-and-excitation Mul or a Concat reads its other operands
    /// and writes its result (`model::joins`; 0 without one).
    #[serde(default)]
    pub residual: u64,
}

impl LayerShape {
    pub fn conv(
        name: &str,
        in_ch: usize,
        out_ch: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        in_hw: (usize, usize),
    ) -> Self {
        let out = |x: usize| (x + 2 * padding - kernel) / stride + 1;
        let out_hw = (out(in_hw.0), out(in_hw.1));
        let weights = out_ch * in_ch * kernel * kernel;
        LayerShape {
            name: name.to_string(),
            kind: LayerKind::Conv,
            in_ch,
            out_ch,
            kernel,
            stride,
            padding,
            groups: 1,
            in_hw,
            out_hw,
            params: weights + out_ch,
            macs: (weights * out_hw.0 * out_hw.1) as u64,
            residual: 0,
        }
    }

    /// The same conv split into `groups` groups: each output channel sees `in_ch / groups`
    /// input channels, so weights and MACs shrink by that factor.
    pub fn with_groups(mut self, groups: usize) -> Self {
        let groups = groups.max(1);
        self.groups = groups;
        let weights = self.weight_count();
        self.params = weights + self.out_ch;
        self.macs = (weights * self.out_hw.0 * self.out_hw.1) as u64;
        self
    }

    pub fn linear(name: &str, in_features: usize, out_features: usize) -> Self {
        LayerShape {
            name: name.to_string(),
            kind: LayerKind::Linear,
            in_ch: in_features,
            out_ch: out_features,
            kernel: 1,
            stride: 1,
            padding: 0,
            groups: 1,
            in_hw: (1, 1),
            out_hw: (1, 1),
            params: in_features * out_features + out_features,
            macs: (in_features * out_features) as u64,
            residual: 0,
        }
    }

    /// The same linear layer applied to each of `tokens` tokens (a transformer's): the weights
    /// are shared, inputs, outputs and MACs count every token (`in_hw` = `out_hw` = (tokens, 1)).
    pub fn per_token(mut self, tokens: usize) -> Self {
        self.in_hw = (tokens, 1);
        self.out_hw = (tokens, 1);
        self.macs *= tokens as u64;
        self
    }

    /// An activation × activation matmul on `tokens` tokens (module doc): per head, the first
    /// operand's (tokens × k) by the second's (k × n).
    pub fn matmul(name: &str, tokens: usize, heads: usize, k: usize, n: usize) -> Self {
        LayerShape {
            name: name.to_string(),
            kind: LayerKind::Matmul,
            in_ch: heads * k,
            out_ch: heads * n,
            kernel: 1,
            stride: 1,
            padding: 0,
            groups: heads,
            in_hw: (tokens, 1),
            out_hw: (tokens, 1),
            params: 0,
            macs: (heads * tokens * k * n) as u64,
            residual: 0,
        }
    }

    /// Number of stored weights (without biases): what `w_bits` applies to on a conv or linear
    /// layer; 0 on a matmul, whose `w_bits` quantize its second operand (`operand_count`).
    pub fn weight_count(&self) -> usize {
        match self.kind {
            LayerKind::Matmul => 0,
            _ => self.out_ch * (self.in_ch / self.groups) * self.kernel * self.kernel,
        }
    }

    /// Number of stored biases: one per output channel of a conv or linear layer, none on a
    /// matmul.
    pub fn bias_count(&self) -> usize {
        match self.kind {
            LayerKind::Matmul => 0,
            _ => self.out_ch,
        }
    }

    /// Values per example of a matmul's second operand (K or V: `w_bits` apply to it), read
    /// from memory like an input; 0 on a conv or linear layer.
    pub fn operand_count(&self) -> usize {
        match self.kind {
            LayerKind::Matmul => (self.in_ch / self.groups.max(1)) * self.out_ch,
            _ => 0,
        }
    }

    /// Number of input activations per example: what `a_bits` applies to.
    pub fn input_count(&self) -> usize {
        self.in_ch * self.in_hw.0 * self.in_hw.1
    }

    /// Number of output values per example.
    pub fn output_count(&self) -> usize {
        self.out_ch * self.out_hw.0 * self.out_hw.1
    }

    /// Whether this layer's `operand` may take `format`: what the operand takes anywhere
    /// (`Format::allowed_for`), except that a matmul's `w` operand is a computed activation, so
    /// no group-wise format (whose groups run along a stored weight's inputs).
    pub fn takes(&self, operand: Operand, format: Format) -> bool {
        let grouped = matches!(format.kind(), Kind::GroupInt { .. });
        let activation_in_weight_place =
            self.kind == LayerKind::Matmul && operand == Operand::Weight;
        format.allowed_for(operand) && !(grouped && activation_in_weight_place)
    }

    /// True when every group has one input channel (depthwise convolution).
    pub fn is_depthwise(&self) -> bool {
        self.kind == LayerKind::Conv && self.groups > 1 && self.groups == self.in_ch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenet5_conv1_counts() {
        // conv 1->6, k5 on 28x28: out 24x24, 150 weights, 150*576 MACs.
        let s = LayerShape::conv("conv1", 1, 6, 5, 1, 0, (28, 28));
        assert_eq!(s.out_hw, (24, 24));
        assert_eq!(s.weight_count(), 150);
        assert_eq!(s.params, 156);
        assert_eq!(s.macs, 150 * 576);
        assert_eq!(s.input_count(), 784);
        assert_eq!(s.output_count(), 6 * 576);
    }

    #[test]
    fn linear_counts() {
        let s = LayerShape::linear("fc1", 256, 120);
        assert_eq!(s.macs, 30720);
        assert_eq!(s.params, 30840);
        assert_eq!(s.output_count(), 120);
    }

    #[test]
    fn linear_per_token_counts_every_token() {
        // 17 tokens of 64 features through a 64 -> 192 layer: 64*192 weights, 17 times the MACs.
        let s = LayerShape::linear("qkv", 64, 192).per_token(17);
        assert_eq!(s.weight_count(), 64 * 192);
        assert_eq!(s.macs, 17 * 64 * 192);
        assert_eq!((s.input_count(), s.output_count()), (17 * 64, 17 * 192));
    }

    #[test]
    fn matmul_counts_both_operands_and_stores_nothing() {
        // QKᵀ of 17 tokens, 4 heads of 16 features: per head (17 × 16)·(16 × 17), so
        // 4·17·16·17 MACs, Q and K 17·64 values each, scores 4·17·17.
        let s = LayerShape::matmul("b1.scores", 17, 4, 16, 17);
        assert_eq!(s.macs, 4 * 17 * 16 * 17);
        assert_eq!((s.input_count(), s.operand_count()), (17 * 64, 17 * 64));
        assert_eq!(s.output_count(), 4 * 17 * 17);
        assert_eq!((s.weight_count(), s.bias_count(), s.params), (0, 0, 0));
        // softmax × V: per head (17 × 17)·(17 × 16); V is 17·64 values, the output 17·64.
        let m = LayerShape::matmul("b1.mix", 17, 4, 17, 16);
        assert_eq!(m.macs, s.macs);
        assert_eq!((m.input_count(), m.operand_count()), (4 * 17 * 17, 17 * 64));
        assert_eq!(m.output_count(), 17 * 64);
    }
}
