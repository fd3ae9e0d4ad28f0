//! Activation clips from observed values: one clip per bitwidth for one layer's input (max, a
//! percentile, or the MSE-optimal clip). Running the model to observe them is `crate::calib`'s.

use serde::{Deserialize, Serialize};

use super::fake::quantize_act_values;

/// How the activation clip is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "method")]
pub enum ClipMethod {
    /// The largest value seen.
    Max,
    /// The given percentile (0 < p <= 100) of the values seen.
    Percentile { p: f32 },
    /// The clip among 100 fractions of the max that minimizes the squared quantization error.
    Mse,
}

/// Up to this many values are used per layer (evenly strided), so calibration stays fast.
const MAX_SAMPLES: usize = 200_000;

/// Clip for bits 1..=8 of one layer's input, index `bits - 1`.
pub type LayerClips = [f32; 8];

/// Calibrates the clip for every bitwidth 1..=8 from the observed `values` of one layer input.
pub fn calibrate_layer(values: &[f32], method: ClipMethod) -> LayerClips {
    let stride = values.len().div_ceil(MAX_SAMPLES).max(1);
    let mut sample: Vec<f32> = values.iter().step_by(stride).copied().collect();
    let max = sample.iter().fold(0f32, |m, &v| m.max(v));
    match method {
        ClipMethod::Max => [max; 8],
        ClipMethod::Percentile { p } => {
            sample.sort_by(f32::total_cmp);
            let rank = ((p / 100.0) * (sample.len().saturating_sub(1)) as f32).round() as usize;
            [sample.get(rank).copied().unwrap_or(0.0).max(0.0); 8]
        }
        ClipMethod::Mse => std::array::from_fn(|i| mse_clip(&sample, max, i as u8 + 1)),
    }
}

fn mse_clip(sample: &[f32], max: f32, bits: u8) -> f32 {
    if max <= 0.0 {
        return 0.0;
    }
    let err = |clip: f32| -> f64 {
        let q = quantize_act_values(sample, bits, clip);
        q.iter()
            .zip(sample)
            .map(|(a, b)| ((a - b.max(0.0)) as f64).powi(2))
            .sum()
    };
    (1..=100)
        .map(|k| max * k as f32 / 100.0)
        .map(|c| (c, err(c)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
        .unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_and_percentile() {
        let v: Vec<f32> = (0..=100).map(|i| i as f32).collect();
        assert_eq!(calibrate_layer(&v, ClipMethod::Max), [100.0; 8]);
        // rank round(0.9 * 100) = 90 in the sorted values 0..=100
        assert_eq!(
            calibrate_layer(&v, ClipMethod::Percentile { p: 90.0 })[0],
            90.0
        );
    }

    #[test]
    fn mse_clips_an_outlier_at_low_bits() {
        // 100,000 values over [0,1) and one outlier at 100. At 2 bits, clip 100 rounds every
        // small value to 0 (error ~ sum v^2 ~ 33,333); clip 1 costs the outlier 99^2 = 9,801
        // plus ~100,000 * (1/3)^2 / 12 ~ 926 of rounding: a clip near 1 wins.
        let mut v: Vec<f32> = (0..100_000).map(|i| i as f32 / 100_000.0).collect();
        v.push(100.0);
        let clips = calibrate_layer(&v, ClipMethod::Mse);
        assert!(clips[1] < 10.0, "{clips:?}");
        assert!(clips.iter().all(|&c| c > 0.0 && c <= 100.0));
    }
}
