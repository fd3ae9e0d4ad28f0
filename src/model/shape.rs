//! `LayerShape`: what the cost model and the agent's state see of a quantizable layer.

use serde::{Deserialize, Serialize};

/// The kind of a quantizable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    Conv,
    Linear,
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

    /// Number of weights (without biases): what `w_bits` applies to.
    pub fn weight_count(&self) -> usize {
        self.out_ch * (self.in_ch / self.groups) * self.kernel * self.kernel
    }

    /// Number of input activations per example: what `a_bits` applies to.
    pub fn input_count(&self) -> usize {
        self.in_ch * self.in_hw.0 * self.in_hw.1
    }

    /// Number of output values per example.
    pub fn output_count(&self) -> usize {
        self.out_ch * self.out_hw.0 * self.out_hw.1
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
}
