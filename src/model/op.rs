//! `Op`: the ops a `Graph` is made of, the quantizable layers among them, and which of them join
//! branches, map each value alone, or hold parameters of their own.

use serde::Serialize;

/// Whether a transformer's two activation × activation matmuls (`Op::Scores`, `Op::Mix`) are
/// quantizable layers of a policy, priced like any matmul (`[quant] attention`), or run in full
/// precision outside the policy. The float network is the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Attention {
    #[default]
    Float,
    Quantized,
}

impl Attention {
    pub fn is_float(&self) -> bool {
        *self == Attention::Float
    }
}

/// One op of a graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The input image (node 0 only).
    Input,
    /// A quantizable convolution with a bias: square kernel, `groups` divides both channel counts.
    Conv {
        name: String,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        groups: usize,
    },
    /// A quantizable fully connected layer with a bias, on a flat input or on every token of a
    /// sequence alike.
    Linear {
        name: String,
        out: usize,
    },
    /// Batch normalization of a conv's output (the conv's only consumer). Training uses batch
    /// statistics; everywhere else it is folded into the conv's weight and bias, the usual way
    /// to quantize such a pair (the device runs one conv).
    BatchNorm,
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
    /// 1 / (1 + e^−x).
    Sigmoid,
    /// PyTorch's hardsigmoid, min(max(x/6 + 1/2, 0), 1) (ONNX HardSigmoid with α = 1/6, β = 1/2).
    HardSigmoid,
    /// x · hardsigmoid(x) (MobileNetV3).
    HardSwish,
    /// x · sigmoid(x), also called Swish (EfficientNet).
    Silu,
    /// A BatchNorm that follows no conv (DenseNet's pre-activation), fixed at its running
    /// statistics: `y[c] = x[c]·scale[c] + shift[c]`. Not trained (fine-tuning leaves it).
    Affine {
        scale: Vec<f32>,
        shift: Vec<f32>,
    },
    /// Max pool over square windows, `pad` pixels of −∞ before and after each axis; `ceil`
    /// rounds the output size up (PyTorch's `ceil_mode`: the last window may hang past the edge
    /// but must start inside the input or its left padding).
    MaxPool {
        k: usize,
        stride: usize,
        pad: usize,
        ceil: bool,
    },
    /// Average pool over square windows (no padding).
    AvgPool {
        k: usize,
        stride: usize,
    },
    /// The mean of each channel, kept as (N, C, 1, 1).
    GlobalAvgPool,
    /// The sum of two inputs of the same shape (a residual connection).
    Add,
    /// The product of two inputs of the same shape, or of a feature map (C, H, W) and a
    /// per-channel gate (C, 1, 1) in either order (squeeze-and-excitation).
    Mul,
    /// The inputs' channels one after another (feature maps of one H×W, or flat vectors):
    /// SqueezeNet's, DenseNet's and ShuffleNet's branches joined.
    Concat,
    /// Channels `start .. start + len` of a feature map (one output of a channel Split).
    Channels {
        start: usize,
        len: usize,
    },
    /// ShuffleNet's channel shuffle with `groups` groups: the channels seen as a (groups, C /
    /// groups) matrix, transposed: output channel `j·groups + i` is input channel `i·(C /
    /// groups) + j`.
    ChannelShuffle {
        groups: usize,
    },
    /// (N, C, H, W) → (N, C·H·W).
    Flatten,
    /// A feature map's pixels as tokens, (C, H, W) → (H·W, C) (after a patch embedding's conv
    /// with kernel = stride = patch).
    Tokens,
    /// A learned class token put before the sequence: (T, D) → (T + 1, D).
    ClassToken {
        name: String,
    },
    /// A learned position embedding added to the sequence: (T, D) → (T, D).
    PosEmbed {
        name: String,
    },
    /// Layer normalization over the last axis with a trainable γ and β (not a quantized layer):
    /// `y = (x − mean) / √(var + eps) · γ + β`, the variance biased (PyTorch's).
    LayerNorm {
        name: String,
        eps: f32,
    },
    /// The exact GELU, x · Φ(x) = x · (1 + erf(x / √2)) / 2 (PyTorch's default).
    Gelu,
    /// Softmax over the last axis.
    Softmax,
    /// Multi-head attention scores, an activation × activation matmul: (q, k), both (T, D), →
    /// (heads, T, T) with `scale · q_h k_hᵀ` per head h (each head a D / heads slice of the
    /// features). `name` names it as a layer when `attention` quantizes it (`model::attention`).
    Scores {
        name: String,
        heads: usize,
        scale: f32,
        attention: Attention,
    },
    /// The attention weights applied to the values, the other activation × activation matmul:
    /// (a (heads, T, T), v (T, D)) → (T, D), head h's `a_h v_h` in its slice of the features.
    Mix {
        name: String,
        heads: usize,
        attention: Attention,
    },
    /// Token `index` of a sequence, (T, D) → D (the class token, for the head).
    Token {
        index: usize,
    },
    /// He et al.'s "option A" shortcut: every `stride`-th pixel, channels zero-padded to `out`
    /// (half before, half after), so a residual block can change size without parameters.
    ShortcutA {
        stride: usize,
        out: usize,
    },
}

impl Op {
    /// True for the layers a policy quantizes: every conv and linear layer, and the attention
    /// matmuls when quantized.
    pub fn is_layer(&self) -> bool {
        matches!(
            self,
            Op::Conv { .. }
                | Op::Linear { .. }
                | Op::Scores {
                    attention: Attention::Quantized,
                    ..
                }
                | Op::Mix {
                    attention: Attention::Quantized,
                    ..
                }
        )
    }

    /// True for the quantizable layers that multiply two computed tensors (no weights).
    pub fn is_matmul_layer(&self) -> bool {
        self.is_layer() && matches!(self, Op::Scores { .. } | Op::Mix { .. })
    }

    /// True for the ops that join several computed tensors; their activation traffic is priced
    /// on a layer that feeds them (`joins.rs`).
    pub fn is_join(&self) -> bool {
        matches!(self, Op::Add | Op::Mul | Op::Concat)
    }

    /// True for ops that map each value alone (the same shape out), which run in the pass of
    /// the layer before them and move no activations of their own.
    pub fn is_pointwise(&self) -> bool {
        matches!(
            self,
            Op::BatchNorm
                | Op::Affine { .. }
                | Op::Relu
                | Op::Relu6
                | Op::Sigmoid
                | Op::HardSigmoid
                | Op::HardSwish
                | Op::Silu
                | Op::Gelu
        )
    }

    /// The name of the parameters an op holds outside the quantizable layers (a LayerNorm's γ
    /// and β, a class token, a position embedding), if it holds any.
    pub fn param_name(&self) -> Option<&str> {
        match self {
            Op::LayerNorm { name, .. } | Op::ClassToken { name } | Op::PosEmbed { name } => {
                Some(name)
            }
            _ => None,
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv { .. } => "conv",
            Op::Linear { .. } => "linear",
            Op::BatchNorm => "batchnorm",
            Op::Relu => "relu",
            Op::Relu6 => "relu6",
            Op::Sigmoid => "sigmoid",
            Op::HardSigmoid => "hardsigmoid",
            Op::HardSwish => "hardswish",
            Op::Silu => "silu",
            Op::Affine { .. } => "affine",
            Op::MaxPool { .. } => "maxpool",
            Op::AvgPool { .. } => "avgpool",
            Op::GlobalAvgPool => "globalavgpool",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Concat => "concat",
            Op::Channels { .. } => "channels",
            Op::ChannelShuffle { .. } => "channelshuffle",
            Op::Flatten => "flatten",
            Op::ShortcutA { .. } => "shortcut",
            Op::Tokens => "tokens",
            Op::ClassToken { .. } => "classtoken",
            Op::PosEmbed { .. } => "posembed",
            Op::LayerNorm { .. } => "layernorm",
            Op::Gelu => "gelu",
            Op::Softmax => "softmax",
            Op::Scores { .. } => "scores",
            Op::Mix { .. } => "mix",
            Op::Token { .. } => "token",
        }
    }
}
