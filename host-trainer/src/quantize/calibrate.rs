//! Activation statistics over calibration images, and the ranges each method picks from them.
//!
//! Two passes over the images (evaluation mode): the first finds each observed value's
//! minimum and maximum, the second builds histograms of its positive and negative parts
//! ([`BINS`] bins over `[0, max |x|]`). The ranges then come from the statistics alone:
//!
//! - `minmax`: `[min, max]`;
//! - `percentile-P`: on each side, the smallest bound that leaves at most `(100 - P)%` of all
//!   values outside;
//! - `entropy`: the threshold `T` over `|x|` whose 8-bit re-binning of the clipped histogram
//!   has the smallest Kullback-Leibler divergence from it (128 levels for signed values, 256
//!   for non-negative ones), then `[max(min, -T), min(max, T)]`.
//!
//! Calibration images should look like what the device will see: frames from the deployment
//! camera, cropped by the edge's detector, beat training images (lighting, sensor noise and
//! crop framing shift activation ranges), and a few hundred are enough.

use tch::{Kind, Tensor};

use super::plan::QuantPlan;
use super::{QuantError, RangeMethod};
use crate::model::graph::{Network, NodeHook, Op};

/// Histogram bins per side.
pub const BINS: usize = 2048;

#[derive(Debug, Clone)]
struct Stats {
    min: f32,
    max: f32,
    count: f64,
    positive: Vec<f64>,
    negative: Vec<f64>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            count: 0.0,
            positive: vec![0.0; BINS],
            negative: vec![0.0; BINS],
        }
    }

    fn absmax(&self) -> f32 {
        self.min.abs().max(self.max.abs()).max(1e-12)
    }
}

/// Observed activation statistics of a network on calibration images.
#[derive(Debug, Clone)]
pub struct Calibration {
    stats: Vec<Option<Stats>>,
    /// Number of calibration images.
    pub samples: usize,
}

/// A [`NodeHook`] recording statistics of the observed nodes.
struct Recorder<'a> {
    stats: &'a mut [Option<Stats>],
    /// Linear layers' biases: their range is taken before the bias is added.
    biases: Vec<Option<Tensor>>,
    histograms: bool,
}

impl NodeHook for Recorder<'_> {
    fn output(&mut self, i: usize, y: Tensor) -> Tensor {
        let Some(Some(s)) = self.stats.get_mut(i) else {
            return y;
        };
        let v = match &self.biases[i] {
            Some(b) => &y - b,
            None => y.shallow_clone(),
        };
        let v = v.detach().to_device(tch::Device::Cpu).to_kind(Kind::Float);
        if self.histograms {
            let top = s.absmax() as f64;
            let pos = v.masked_select(&v.gt(0.0));
            let neg = -v.masked_select(&v.lt(0.0));
            for (t, hist) in [(pos, &mut s.positive), (neg, &mut s.negative)] {
                if t.numel() == 0 {
                    continue;
                }
                let bins = (t * (BINS as f64 / top))
                    .floor()
                    .clamp(0.0, (BINS - 1) as f64)
                    .to_kind(Kind::Int64);
                let h = Vec::<i64>::try_from(bins.bincount::<Tensor>(None, BINS as i64))
                    .unwrap_or_default();
                for (acc, c) in hist.iter_mut().zip(h) {
                    *acc += c as f64;
                }
            }
        } else {
            s.min = s.min.min(v.min().double_value(&[]) as f32);
            s.max = s.max.max(v.max().double_value(&[]) as f32);
            s.count += v.numel() as f64;
        }
        y
    }
}

impl Calibration {
    /// Runs `inputs` (`[N, C, H, W]`, preprocessed) through `net` in batches of `batch` and
    /// records the values `plan` observes.
    pub fn collect(
        net: &Network,
        plan: &QuantPlan,
        inputs: &Tensor,
        batch: usize,
    ) -> Result<Calibration, QuantError> {
        let n = inputs.size().first().copied().unwrap_or(0);
        if n == 0 {
            return Err(QuantError::NoCalibration);
        }
        let mut stats: Vec<Option<Stats>> = vec![None; net.graph.nodes.len()];
        for &i in &plan.observed {
            stats[i] = Some(Stats::new());
        }
        let biases: Vec<Option<Tensor>> = net
            .graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| match node.op {
                Op::Linear { .. } => net.params[i].get(1).map(|b| b.detach()),
                _ => None,
            })
            .collect();
        let batch = batch.max(1) as i64;
        for histograms in [false, true] {
            let mut hook = Recorder {
                stats: &mut stats,
                biases: biases
                    .iter()
                    .map(|b| b.as_ref().map(Tensor::shallow_clone))
                    .collect(),
                histograms,
            };
            tch::no_grad(|| {
                let mut start = 0;
                while start < n {
                    let len = batch.min(n - start);
                    let x = inputs.narrow(0, start, len);
                    let _ = net.forward_hooked(&x, false, &mut hook);
                    start += len;
                }
            });
        }
        Ok(Calibration {
            stats,
            samples: n as usize,
        })
    }

    /// The range `method` picks for node `i`, if it was observed.
    pub fn range(&self, i: usize, method: RangeMethod) -> Option<(f32, f32)> {
        let s = self.stats.get(i)?.as_ref()?;
        if !s.min.is_finite() || !s.max.is_finite() {
            return None;
        }
        let width = s.absmax() / BINS as f32;
        Some(match method {
            RangeMethod::MinMax => (s.min, s.max),
            RangeMethod::Percentile(p) => {
                let outside = s.count * (1.0 - p / 100.0).max(0.0);
                let hi = percentile_bound(&s.positive, outside, width).min(s.max);
                let lo = -percentile_bound(&s.negative, outside, width).min(-s.min);
                (lo, hi)
            }
            RangeMethod::Entropy => {
                let combined: Vec<f64> = s
                    .positive
                    .iter()
                    .zip(&s.negative)
                    .map(|(a, b)| a + b)
                    .collect();
                let levels = if s.min < 0.0 { 128 } else { 256 };
                let t = entropy_threshold(&combined, levels) as f32 * width;
                (s.min.max(-t), s.max.min(t))
            }
        })
    }

    /// Ranges of every node under `method` (`None` for nodes not observed).
    pub fn ranges(&self, method: RangeMethod) -> Vec<Option<(f32, f32)>> {
        (0..self.stats.len())
            .map(|i| self.range(i, method))
            .collect()
    }
}

/// The smallest bound (in bins times `width`) that leaves at most `outside` values of `hist`
/// above it.
fn percentile_bound(hist: &[f64], outside: f64, width: f32) -> f32 {
    let mut above = 0.0;
    for (k, c) in hist.iter().enumerate().rev() {
        if above + c > outside {
            return (k + 1) as f32 * width;
        }
        above += c;
    }
    0.0
}

/// The number of bins of `hist` (from 0) to keep so that re-binning them into `levels` levels
/// loses least information (smallest KL divergence), the rest clipped into the last kept bin.
pub fn entropy_threshold(hist: &[f64], levels: usize) -> usize {
    let total: f64 = hist.iter().sum();
    if total <= 0.0 || hist.len() <= levels {
        return hist.len();
    }
    let mut best = (f64::INFINITY, hist.len());
    for keep in (levels..=hist.len()).step_by(4) {
        // Reference: the kept bins, with everything beyond added to the last one.
        let mut p: Vec<f64> = hist[..keep].to_vec();
        p[keep - 1] += hist[keep..].iter().sum::<f64>();
        // Candidate: the kept bins merged into `levels` groups, each group's mass spread
        // evenly over its non-empty bins.
        let mut q = vec![0.0; keep];
        for g in 0..levels {
            let (a, b) = (
                g * keep / levels,
                ((g + 1) * keep / levels).max(g * keep / levels + 1),
            );
            let mass: f64 = hist[a..b].iter().sum();
            let nonzero = hist[a..b].iter().filter(|&&c| c > 0.0).count();
            if nonzero > 0 {
                for k in a..b {
                    if hist[k] > 0.0 {
                        q[k] = mass / nonzero as f64;
                    }
                }
            }
        }
        let (ps, qs): (f64, f64) = (p.iter().sum(), q.iter().sum());
        if qs <= 0.0 {
            continue;
        }
        let mut kl = 0.0;
        for (&pi, &qi) in p.iter().zip(&q) {
            if pi > 0.0 {
                let (pi, qi) = (pi / ps, (qi / qs).max(1e-12));
                kl += pi * (pi / qi).ln();
            }
        }
        if kl < best.0 {
            best = (kl, keep);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_leaves_the_requested_tail_outside() {
        let mut hist = vec![0.0; 100];
        for (k, h) in hist.iter_mut().enumerate() {
            *h = if k < 90 { 10.0 } else { 1.0 };
        }
        // 10 values in bins 90..100: keeping all but 5 puts the bound at bin 95.
        assert_eq!(percentile_bound(&hist, 5.0, 1.0), 95.0);
        assert_eq!(percentile_bound(&hist, 0.0, 1.0), 100.0);
    }

    #[test]
    fn entropy_clips_a_long_sparse_tail() {
        // An exponentially decaying bulk (as after a ReLU) and one far outlier: keeping the
        // whole range would spend most levels on the empty tail, so the threshold cuts it.
        let mut hist: Vec<f64> = (0..BINS)
            .map(|k| (1e6 * (-(k as f64) / 60.0).exp()).floor())
            .collect();
        hist[BINS - 1] = 1.0;
        let keep = entropy_threshold(&hist, 256);
        assert!((256..1024).contains(&keep), "kept {keep} bins");
        // A uniform histogram keeps everything.
        assert_eq!(entropy_threshold(&vec![5.0; BINS], 128), BINS);
    }
}
