//! Class imbalance: FER2013 has 7,215 happy training faces and 436 disgusted ones. A model
//! trained on that as it is learns to say "happy" (the seed's first finding). Two remedies:
//! weight the loss per class, or draw batches class-balanced.

use emotion_shared::NUM_CLASSES;

/// How to counter class imbalance (`--balance`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Plain cross-entropy on the data as it is.
    None,
    /// Per-class loss weights (see [`ClassWeighting`]).
    Weights,
    /// Sample each batch so that every class is drawn equally often.
    Sampler,
}

/// How per-class loss weights are computed (`--class-weights`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ClassWeighting {
    /// `N / (K * n_c)`: inverse frequency.
    Inverse,
    /// Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples":
    /// `(1 - beta) / (1 - beta^n_c)` with beta = 0.999, normalised to mean 1.
    EffectiveNumber,
}

/// Loss weight per class, normalised so that the mean over classes present is 1. Classes
/// without samples get weight 0.
pub fn class_weights(counts: &[usize; NUM_CLASSES], how: ClassWeighting) -> [f64; NUM_CLASSES] {
    let mut w = [0.0; NUM_CLASSES];
    for (c, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        w[c] = match how {
            ClassWeighting::Inverse => 1.0 / n as f64,
            ClassWeighting::EffectiveNumber => {
                let beta: f64 = 0.999;
                (1.0 - beta) / (1.0 - beta.powi(n as i32))
            }
        };
    }
    let present = counts.iter().filter(|&&n| n > 0).count().max(1);
    let mean = w.iter().sum::<f64>() / present as f64;
    if mean > 0.0 {
        for v in &mut w {
            *v /= mean;
        }
    }
    w
}

/// Per-sample drawing weights for a class-balanced sampler: `1 / n_class`.
pub fn sampler_weights(labels: &[u8], counts: &[usize; NUM_CLASSES]) -> Vec<f64> {
    labels
        .iter()
        .map(|&l| 1.0 / counts[l as usize].max(1) as f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_classes_weigh_more_and_weights_average_one() {
        let counts = [3995, 436, 4097, 7215, 4830, 3171, 4965];
        for how in [ClassWeighting::Inverse, ClassWeighting::EffectiveNumber] {
            let w = class_weights(&counts, how);
            let mean = w.iter().sum::<f64>() / 7.0;
            assert!((mean - 1.0).abs() < 1e-9, "{how:?} mean {mean}");
            assert!(w[1] > w[0] && w[0] > w[3], "{how:?} {w:?}");
        }
        let inv = class_weights(&counts, ClassWeighting::Inverse);
        assert!((inv[1] / inv[3] - 7215.0 / 436.0).abs() < 1e-9);
    }

    #[test]
    fn missing_classes_get_no_weight() {
        let w = class_weights(&[10, 0, 10, 10, 10, 10, 10], ClassWeighting::Inverse);
        assert_eq!(w[1], 0.0);
        assert!((w[0] - 1.0).abs() < 1e-12);
    }
}
