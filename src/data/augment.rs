//! Training-time augmentation of the FP32 baseline's batches: random shifts (the zero-padded
//! random crop of image classification recipes) and horizontal flips, drawn per example.

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{pixel, DataError, Split};

/// `[train] augment`: how each training image is moved before a step sees it. The default
/// moves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Each image moves by a whole number of pixels drawn uniformly from −shift..=shift, down
    /// and across apart; what moves in is 0 (black). The same as padding by `shift` zeros and
    /// cropping the image's size at a random offset.
    #[serde(default)]
    pub shift: usize,
    /// Mirror each image left to right with probability 1/2.
    #[serde(default)]
    pub flip: bool,
}

impl Augment {
    pub fn is_none(&self) -> bool {
        *self == Augment::default()
    }
}

/// One example's draw: output pixel (y, x) reads source (y + dy, x' + dx), where x' is x
/// mirrored when `flip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Move {
    dy: isize,
    dx: isize,
    flip: bool,
}

impl Move {
    /// Draws in a fixed order (dy, dx, flip), each only when its part of `aug` is on: the
    /// moves depend on the generator's seed and `aug` alone.
    fn draw(aug: &Augment, rng: &mut StdRng) -> Move {
        let s = aug.shift as i64;
        let mut offset = || rng.random_range(-s..=s) as isize;
        let (dy, dx) = match s {
            0 => (0, 0),
            _ => (offset(), offset()),
        };
        Move {
            dy,
            dx,
            flip: aug.flip && rng.random_bool(0.5),
        }
    }

    /// Writes the moved `src` (channels × h × w bytes) to `out` as pixel values.
    fn apply(&self, src: &[u8], (c, h, w): (usize, usize, usize), out: &mut Vec<f32>) {
        for ch in 0..c {
            let plane = &src[ch * h * w..(ch + 1) * h * w];
            for y in 0..h {
                let sy = y as isize + self.dy;
                for x in 0..w {
                    let mx = if self.flip { w - 1 - x } else { x };
                    let sx = mx as isize + self.dx;
                    let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                    out.push(match inside {
                        true => pixel(plane[sy as usize * w + sx as usize]),
                        false => 0.0,
                    });
                }
            }
        }
    }
}

impl Split {
    /// `batch`, each image moved by its own draw from `rng`; exactly `batch`, drawing nothing,
    /// when `aug` moves nothing. A shift must leave some of the image in view: less than its
    /// height and its width.
    pub fn augmented_batch(
        &self,
        indices: &[usize],
        aug: &Augment,
        rng: &mut StdRng,
        device: &Device,
    ) -> Result<(Tensor, Tensor), DataError> {
        if aug.is_none() {
            return self.batch(indices, device);
        }
        let (c, h, w) = self.shape;
        if aug.shift >= h.min(w) {
            return Err(DataError::ShiftTooLarge {
                shift: aug.shift,
                height: h,
                width: w,
            });
        }
        self.batch_with(indices, device, |image, xs| {
            Move::draw(aug, rng).apply(image, (c, h, w), xs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A 1×3×4 image whose pixel (y, x) is 10·y + x + 1 (no zeros, so a moved-in 0 shows).
    fn image() -> Vec<u8> {
        (0..3)
            .flat_map(|y| (0..4).map(move |x| (10 * y + x + 1) as u8))
            .collect()
    }

    fn moved(m: Move) -> Vec<u8> {
        let mut out = Vec::new();
        m.apply(&image(), (1, 3, 4), &mut out);
        out.iter().map(|&p| (p * 255.0).round() as u8).collect()
    }

    #[test]
    fn a_move_shifts_in_zeros_and_mirrors_rows() {
        let still = Move {
            dy: 0,
            dx: 0,
            flip: false,
        };
        assert_eq!(moved(still), image());
        // Output (y, x) reads source (y + 1, x − 1): the first column and last row are new.
        let shifted = Move {
            dy: 1,
            dx: -1,
            flip: false,
        };
        assert_eq!(moved(shifted), [0, 11, 12, 13, 0, 21, 22, 23, 0, 0, 0, 0]);
        let flipped = Move {
            dy: 0,
            dx: 0,
            flip: true,
        };
        assert_eq!(moved(flipped), [4, 3, 2, 1, 14, 13, 12, 11, 24, 23, 22, 21]);
    }

    #[test]
    fn draws_stay_within_the_shift_and_use_every_offset_and_both_flips() {
        let aug = Augment {
            shift: 2,
            flip: true,
        };
        let mut rng = StdRng::seed_from_u64(7);
        let moves: Vec<Move> = (0..2000).map(|_| Move::draw(&aug, &mut rng)).collect();
        for d in -2..=2 {
            assert!(moves.iter().any(|m| m.dy == d) && moves.iter().any(|m| m.dx == d));
        }
        assert!(moves.iter().all(|m| m.dy.abs() <= 2 && m.dx.abs() <= 2));
        let flips = moves.iter().filter(|m| m.flip).count();
        assert!((900..1100).contains(&flips), "{flips} flips of 2000");
        let none = Move::draw(&Augment::default(), &mut rng);
        assert_eq!(
            none,
            Move {
                dy: 0,
                dx: 0,
                flip: false
            }
        );
    }

    #[test]
    fn a_shift_as_wide_as_the_image_is_an_error() {
        let split = Split {
            images: image(),
            labels: vec![3],
            shape: (1, 3, 4),
        };
        let mut rng = StdRng::seed_from_u64(0);
        let aug = Augment {
            shift: 3,
            flip: false,
        };
        let err = split.augmented_batch(&[0], &aug, &mut rng, &Device::Cpu);
        let text = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("shift") && text.contains('3') && text.contains("3x4"),
            "{text}"
        );
        let ok = Augment {
            shift: 2,
            flip: true,
        };
        let (x, y) = split
            .augmented_batch(&[0, 0], &ok, &mut rng, &Device::Cpu)
            .unwrap();
        assert_eq!((x.dims(), y.dims()), (&[2, 1, 3, 4][..], &[2][..]));
        let pixels = |t: Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).unwrap();
        let (still, _) =
            (split.augmented_batch(&[0], &Augment::default(), &mut rng, &Device::Cpu)).unwrap();
        let (plain, _) = split.batch(&[0], &Device::Cpu).unwrap();
        assert_eq!(
            pixels(still),
            pixels(plain),
            "no augmentation is the plain batch"
        );
    }
}
