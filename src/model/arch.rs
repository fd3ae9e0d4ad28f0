//! The model zoo: each architecture as a list of steps, from which the quantizable layers'
//! `LayerShape`s follow for any input size.

use serde::{Deserialize, Serialize};

use super::shape::LayerShape;

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
}

/// One step of a network. ReLU follows every quantizable layer but the last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Conv {
        name: &'static str,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    Linear {
        name: &'static str,
        out: usize,
    },
    /// Max pool, square window, stride = window.
    Pool(usize),
    Flatten,
}

const fn conv(name: &'static str, out: usize, kernel: usize, padding: usize) -> Step {
    Step::Conv {
        name,
        out,
        kernel,
        stride: 1,
        padding,
    }
}

const fn fc(name: &'static str, out: usize) -> Step {
    Step::Linear { name, out }
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Mlp => "mlp",
            Arch::Lenet5 => "lenet5",
            Arch::Cnn6 => "cnn6",
        }
    }

    pub fn steps(self, classes: usize) -> Vec<Step> {
        match self {
            Arch::Mlp => vec![
                Step::Flatten,
                fc("fc1", 300),
                fc("fc2", 100),
                fc("fc3", classes),
            ],
            Arch::Lenet5 => vec![
                conv("conv1", 6, 5, 0),
                Step::Pool(2),
                conv("conv2", 16, 5, 0),
                Step::Pool(2),
                Step::Flatten,
                fc("fc1", 120),
                fc("fc2", 84),
                fc("fc3", classes),
            ],
            Arch::Cnn6 => vec![
                conv("conv1", 16, 3, 1),
                conv("conv2", 16, 3, 1),
                Step::Pool(2),
                conv("conv3", 32, 3, 1),
                conv("conv4", 32, 3, 1),
                Step::Pool(2),
                Step::Flatten,
                fc("fc1", 128),
                fc("fc2", classes),
            ],
        }
    }

    /// The quantizable layers for inputs of shape (channels, height, width).
    pub fn layer_shapes(
        self,
        input: (usize, usize, usize),
        classes: usize,
    ) -> Result<Vec<LayerShape>, ShapeError> {
        let (mut c, mut h, mut w) = input;
        let mut flat: Option<usize> = None;
        let mut shapes = Vec::new();
        for step in self.steps(classes) {
            match step {
                Step::Conv {
                    name,
                    out,
                    kernel,
                    stride,
                    padding,
                } => {
                    if h + 2 * padding < kernel || w + 2 * padding < kernel {
                        return Err(ShapeError::TooSmall {
                            arch: self.name(),
                            layer: name,
                            h,
                            w,
                        });
                    }
                    let s = LayerShape::conv(name, c, out, kernel, stride, padding, (h, w));
                    (c, h, w) = (out, s.out_hw.0, s.out_hw.1);
                    shapes.push(s);
                }
                Step::Pool(k) => {
                    if h < k || w < k {
                        return Err(ShapeError::TooSmall {
                            arch: self.name(),
                            layer: "pool",
                            h,
                            w,
                        });
                    }
                    (h, w) = (h / k, w / k);
                }
                Step::Flatten => flat = Some(c * h * w),
                Step::Linear { name, out } => {
                    let input = flat.unwrap_or(c * h * w);
                    shapes.push(LayerShape::linear(name, input, out));
                    flat = Some(out);
                }
            }
        }
        Ok(shapes)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("{arch}: input of {h}x{w} is too small for layer {layer}")]
    TooSmall {
        arch: &'static str,
        layer: &'static str,
        h: usize,
        w: usize,
    },
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

    #[test]
    fn too_small_input_is_an_error() {
        assert!(Arch::Lenet5.layer_shapes((1, 8, 8), 10).is_err());
    }
}
