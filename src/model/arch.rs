//! The model zoo: each architecture as a `Graph`, from which the quantizable layers'
//! `LayerShape`s follow for any input size.

use serde::{Deserialize, Serialize};

use super::graph::{Graph, Op, ShapeError};
use super::shape::LayerShape;
use super::vit;

/// The architectures bitsearch can build, selected by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// 784-300-100-10 fully connected.
    Mlp,
    /// conv 6 k5, pool, conv 16 k5, pool, fc 120, 84, 10.
    Lenet5,
    /// Four 3x3 convs (16, 16, 32, 32; pool after the 2nd and 4th), fc 128, 10: a deeper CNN for
    /// scaling studies with six quantizable layers.
    Cnn6,
    /// He et al. 2016's CIFAR ResNet-20: a 3x3 conv (16), three stages of three basic blocks
    /// (16, 32, 64 channels; the 2nd and 3rd stages start at stride 2 with the parameter-free
    /// "option A" shortcut), global average pool, fc: 19 convs with BatchNorm and one fc.
    Resnet20,
    /// A small MobileNet-v1-style network: a 3x3 conv (16), five depthwise-separable blocks
    /// (a 3x3 depthwise conv, then a 1x1 conv; 32, 64 at stride 2, 64, 128 at stride 2, 128),
    /// each conv with BatchNorm and ReLU6, global average pool, fc: 11 convs and one fc.
    Mobilenet,
    /// Sandler et al. 2018's MobileNetV2 at width 1.0, as torchvision and HAQ build it: a 3x3
    /// conv (32, stride 2), 17 inverted-residual blocks (the first with expand ratio 1: a 3x3
    /// depthwise conv and a 1x1 projection; the others a 1x1 expansion by 6, the depthwise conv
    /// and the projection; a residual add where stride is 1 and channels match), a 1x1 conv to
    /// 1280, global average pool, fc: 52 convs and one fc. Sized for 224x224 images.
    Mobilenetv2,
    /// A small vision transformer (`vit.rs`): patches of side ⌈min(H, W) / 4⌉ (7 on 28×28,
    /// 8 on 32×32: a 4×4 grid of 16 tokens and the class token), 64 features, 4 heads, 3
    /// pre-norm blocks with an MLP of 128, the head on the class token: 14 linear layers
    /// after the patch embedding's conv.
    Vit,
}

/// The zoo ViT's size; the patch follows the input (`Arch::Vit`).
const ZOO_VIT: vit::VitSize = vit::VitSize {
    patch: 0,
    dim: 64,
    heads: 4,
    depth: 3,
    mlp_ratio: 2,
};

/// A sequential network's steps, before they become a graph.
enum Step {
    Conv(&'static str, usize, usize, usize),
    Fc(&'static str, usize),
    Pool(usize),
    Flatten,
}

fn conv_op(name: &str, out: usize, kernel: usize, stride: usize, padding: usize) -> Op {
    Op::Conv {
        name: name.to_string(),
        out,
        kernel,
        stride,
        padding,
        groups: 1,
    }
}

/// A chain of steps with a ReLU after every layer but the last (whose output is the logits).
fn sequential(name: &str, steps: &[Step]) -> Graph {
    let mut g = Graph::new(name);
    let layers = steps
        .iter()
        .filter(|s| matches!(s, Step::Conv(..) | Step::Fc(..)))
        .count();
    let mut seen = 0;
    for step in steps {
        match *step {
            Step::Conv(name, out, kernel, padding) => {
                g.then(conv_op(name, out, kernel, 1, padding))
            }
            Step::Fc(name, out) => g.then(Op::Linear {
                name: name.to_string(),
                out,
            }),
            Step::Pool(k) => g.then(Op::MaxPool {
                k,
                stride: k,
                pad: 0,
                ceil: false,
            }),
            Step::Flatten => g.then(Op::Flatten),
        };
        if matches!(step, Step::Conv(..) | Step::Fc(..)) {
            seen += 1;
            if seen < layers {
                g.then(Op::Relu);
            }
        }
    }
    g
}

/// The head of the CIFAR-style networks: global average pool, flatten, one fc.
fn classifier(g: &mut Graph, classes: usize) {
    g.then(Op::GlobalAvgPool);
    g.then(Op::Flatten);
    g.then(Op::Linear {
        name: "fc".to_string(),
        out: classes,
    });
}

/// Howard et al. 2017's depthwise-separable blocks, scaled down for 28–32 pixel images.
fn mobilenet(name: &str, classes: usize) -> Graph {
    let mut g = Graph::new(name);
    let conv_bn_relu6 = |g: &mut Graph, op: Op| {
        g.then(op);
        g.then(Op::BatchNorm);
        g.then(Op::Relu6);
    };
    conv_bn_relu6(&mut g, conv_op("conv", 16, 3, 1, 1));
    let mut channels = 16;
    for (i, (out, stride)) in [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1)]
        .into_iter()
        .enumerate()
    {
        let dw = Op::Conv {
            name: format!("b{}.dw", i + 1),
            out: channels,
            kernel: 3,
            stride,
            padding: 1,
            groups: channels,
        };
        conv_bn_relu6(&mut g, dw);
        conv_bn_relu6(&mut g, conv_op(&format!("b{}.pw", i + 1), out, 1, 1, 0));
        channels = out;
    }
    classifier(&mut g, classes);
    g
}

/// One `(expand ratio t, output channels c, blocks n, first stride s)` row per stage of
/// MobileNetV2 (Sandler et al. 2018, Table 2).
const MOBILENETV2_STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// MobileNetV2, width 1.0: block `bN` names its convs `bN.expand` (absent at t = 1), `bN.dw`
/// and `bN.project`; the projection is linear (BatchNorm, no ReLU6).
fn mobilenetv2(name: &str, classes: usize) -> Graph {
    let mut g = Graph::new(name);
    let conv_bn_relu6 = |g: &mut Graph, op: Op| {
        g.then(op);
        g.then(Op::BatchNorm);
        g.then(Op::Relu6)
    };
    let mut x = conv_bn_relu6(&mut g, conv_op("conv", 32, 3, 2, 1));
    let (mut channels, mut block) = (32, 0);
    for (t, out, n, first_stride) in MOBILENETV2_STAGES {
        for i in 0..n {
            block += 1;
            let stride = if i == 0 { first_stride } else { 1 };
            let hidden = channels * t;
            if t != 1 {
                conv_bn_relu6(
                    &mut g,
                    conv_op(&format!("b{block}.expand"), hidden, 1, 1, 0),
                );
            }
            let dw = Op::Conv {
                name: format!("b{block}.dw"),
                out: hidden,
                kernel: 3,
                stride,
                padding: 1,
                groups: hidden,
            };
            conv_bn_relu6(&mut g, dw);
            g.then(conv_op(&format!("b{block}.project"), out, 1, 1, 0));
            let main = g.then(Op::BatchNorm);
            x = if stride == 1 && out == channels {
                g.push(Op::Add, &[main, x])
            } else {
                main
            };
            channels = out;
        }
    }
    conv_bn_relu6(&mut g, conv_op("last", 1280, 1, 1, 0));
    classifier(&mut g, classes);
    g
}

/// He et al.'s CIFAR ResNet with `blocks` basic blocks per stage (ResNet-20: 3).
fn cifar_resnet(name: &str, blocks: usize, classes: usize) -> Graph {
    let mut g = Graph::new(name);
    g.then(conv_op("conv", 16, 3, 1, 1));
    g.then(Op::BatchNorm);
    let mut x = g.then(Op::Relu);
    let mut channels = 16;
    for (stage, out) in [16, 32, 64].into_iter().enumerate() {
        for block in 0..blocks {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let prefix = format!("s{}b{}", stage + 1, block + 1);
            g.push(conv_op(&format!("{prefix}.conv1"), out, 3, stride, 1), &[x]);
            g.then(Op::BatchNorm);
            g.then(Op::Relu);
            g.then(conv_op(&format!("{prefix}.conv2"), out, 3, 1, 1));
            let main = g.then(Op::BatchNorm);
            let shortcut = if stride != 1 || out != channels {
                g.push(Op::ShortcutA { stride, out }, &[x])
            } else {
                x
            };
            g.push(Op::Add, &[main, shortcut]);
            x = g.then(Op::Relu);
            channels = out;
        }
    }
    classifier(&mut g, classes);
    g
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Mlp => "mlp",
            Arch::Lenet5 => "lenet5",
            Arch::Cnn6 => "cnn6",
            Arch::Resnet20 => "resnet20",
            Arch::Mobilenet => "mobilenet",
            Arch::Mobilenetv2 => "mobilenetv2",
            Arch::Vit => "vit",
        }
    }

    /// The network as a graph, for inputs shaped (channels, height, width) and `classes`
    /// outputs (only the ViT's patch depends on the input).
    pub fn graph(self, input: (usize, usize, usize), classes: usize) -> Graph {
        use Step::*;
        match self {
            Arch::Mlp => sequential(
                "mlp",
                &[Flatten, Fc("fc1", 300), Fc("fc2", 100), Fc("fc3", classes)],
            ),
            Arch::Lenet5 => sequential(
                "lenet5",
                &[
                    Conv("conv1", 6, 5, 0),
                    Pool(2),
                    Conv("conv2", 16, 5, 0),
                    Pool(2),
                    Flatten,
                    Fc("fc1", 120),
                    Fc("fc2", 84),
                    Fc("fc3", classes),
                ],
            ),
            Arch::Cnn6 => sequential(
                "cnn6",
                &[
                    Conv("conv1", 16, 3, 1),
                    Conv("conv2", 16, 3, 1),
                    Pool(2),
                    Conv("conv3", 32, 3, 1),
                    Conv("conv4", 32, 3, 1),
                    Pool(2),
                    Flatten,
                    Fc("fc1", 128),
                    Fc("fc2", classes),
                ],
            ),
            Arch::Resnet20 => cifar_resnet("resnet20", 3, classes),
            Arch::Mobilenet => mobilenet("mobilenet", classes),
            Arch::Mobilenetv2 => mobilenetv2("mobilenetv2", classes),
            Arch::Vit => {
                let patch = input.1.min(input.2).div_ceil(4).max(1);
                vit::vit("vit", vit::VitSize { patch, ..ZOO_VIT }, classes)
            }
        }
    }

    /// The quantizable layers for inputs of shape (channels, height, width).
    pub fn layer_shapes(
        self,
        input: (usize, usize, usize),
        classes: usize,
    ) -> Result<Vec<LayerShape>, ShapeError> {
        Ok(self.graph(input, classes).shapes(input)?.layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenet5_on_mnist_has_the_classic_shapes() {
        let s = Arch::Lenet5.layer_shapes((1, 28, 28), 10).unwrap();
        let names: Vec<&str> = s.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["conv1", "conv2", "fc1", "fc2", "fc3"]);
        assert_eq!(s[1].in_hw, (12, 12));
        assert_eq!((s[2].in_ch, s[2].out_ch), (256, 120));
        // conv2: 16*6*25 weights * 8*8 outputs = 153,600 MACs
        assert_eq!(s[1].macs, 153_600);
    }

    #[test]
    fn lenet5_input_size_follows_the_data() {
        let s = Arch::Lenet5.layer_shapes((3, 32, 32), 10).unwrap();
        assert_eq!((s[0].in_ch, s[2].in_ch), (3, 400));
    }

    #[test]
    fn mlp_and_cnn6_shapes() {
        let m = Arch::Mlp.layer_shapes((1, 28, 28), 10).unwrap();
        assert_eq!(
            m.iter().map(|l| (l.in_ch, l.out_ch)).collect::<Vec<_>>(),
            [(784, 300), (300, 100), (100, 10)]
        );
        let c = Arch::Cnn6.layer_shapes((1, 28, 28), 10).unwrap();
        assert_eq!(c.len(), 6);
        assert_eq!(c[4].in_ch, 32 * 7 * 7);
    }

    /// ResNet-20 on CIFAR-10: 19 convs and one fc, ~0.27 M parameters, and the residual
    /// adds' traffic on every block's second conv.
    #[test]
    fn resnet20_has_the_published_size() {
        let s = Arch::Resnet20.layer_shapes((3, 32, 32), 10).unwrap();
        assert_eq!(s.len(), 20);
        assert_eq!(
            s.iter()
                .filter(|l| l.kind == super::super::LayerKind::Conv)
                .count(),
            19
        );
        let params: usize = s.iter().map(|l| l.params).sum();
        assert!((268_000..275_000).contains(&params), "{params}");
        assert_eq!((s[7].in_ch, s[7].out_ch, s[7].out_hw), (16, 32, (16, 16)));
        assert_eq!(s[19].in_ch, 64);
        assert_eq!(s[2].residual, 2 * 16 * 32 * 32);
        assert_eq!(s[1].residual, 0);
    }

    #[test]
    fn mobilenet_is_depthwise_separable() {
        let s = Arch::Mobilenet.layer_shapes((3, 32, 32), 10).unwrap();
        assert_eq!(s.len(), 12);
        assert!(s[3].is_depthwise() && !s[4].is_depthwise());
        assert_eq!(
            (s[3].in_ch, s[3].weight_count(), s[3].out_hw),
            (32, 32 * 9, (16, 16))
        );
        assert_eq!((s[4].kernel, s[4].in_ch, s[4].out_ch), (1, 32, 64));
        assert_eq!(s[11].in_ch, 128);
    }

    /// MobileNetV2 at 224x224: torchvision's 53 quantizable layers in HAQ's order (stem,
    /// b1.dw, b1.project, then expand/dw/project per block, last, fc) and its MACs.
    #[test]
    fn mobilenetv2_has_torchvisions_layers() {
        let s = Arch::Mobilenetv2.layer_shapes((3, 224, 224), 1000).unwrap();
        assert_eq!(s.len(), 53);
        let names: Vec<&str> = s.iter().take(6).map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv",
                "b1.dw",
                "b1.project",
                "b2.expand",
                "b2.dw",
                "b2.project"
            ]
        );
        assert_eq!((s[0].out_ch, s[0].out_hw), (32, (112, 112)));
        assert!(s[4].is_depthwise() && s[4].out_hw == (56, 56));
        assert_eq!(
            (s[51].name.as_str(), s[51].in_ch, s[51].out_hw),
            ("last", 320, (7, 7))
        );
        assert_eq!((s[52].in_ch, s[52].out_ch), (1280, 1000));
        // torchvision's mobilenet_v2 (docs/torchvision.md): 299.5 M MACs in its convs and a
        // 10-class fc at 224x224; the 1000-class fc adds 1280 x 990.
        let macs: u64 = s.iter().map(|l| l.macs).sum();
        assert_eq!((macs - 1280 * 990) / 100_000, 2995, "{macs}");
        // The stride-1 blocks with matching channels add their input back (b3, b5, b6, ...).
        assert!(s[8].residual > 0 && s[5].residual == 0);
        // The zoo builds it as a trainable network too, at any input the strides allow.
        let small = super::super::Model::new(Arch::Mobilenetv2, (3, 32, 32), 10, 0).unwrap();
        assert_eq!(small.shapes().len(), 53);
    }

    /// The zoo ViT on Fashion-MNIST: 16 patch tokens of 7x7 and the class token, every linear
    /// layer per token but the head.
    #[test]
    fn vit_has_sixteen_patches_and_a_class_token() {
        let s = Arch::Vit.layer_shapes((1, 28, 28), 10).unwrap();
        assert_eq!(s.len(), 1 + 3 * 4 + 1);
        assert_eq!((s[0].kernel, s[0].stride, s[0].out_hw), (7, 7, (4, 4)));
        assert_eq!(
            (s[1].name.as_str(), s[1].in_hw, s[1].out_ch),
            ("b1.qkv", (17, 1), 192)
        );
        assert_eq!(s[3].macs, 17 * 64 * 128);
        assert_eq!((s[13].name.as_str(), s[13].in_hw), ("head", (1, 1)));
        let c = Arch::Vit.layer_shapes((3, 32, 32), 10).unwrap();
        assert_eq!((c[0].kernel, c[0].out_hw, c[1].in_hw), (8, (4, 4), (17, 1)));
    }

    #[test]
    fn too_small_input_is_an_error() {
        assert!(Arch::Lenet5.layer_shapes((1, 8, 8), 10).is_err());
    }
}
