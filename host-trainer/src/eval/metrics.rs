//! Classification metrics from a confusion matrix: accuracy, per-class precision, recall and
//! F1, macro-F1, and the matrix as a terminal table.

use emotion_shared::{Emotion, NUM_CLASSES};
use serde::Serialize;

/// `counts[true][predicted]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Row: true class; column: predicted class.
    pub counts: [[u64; NUM_CLASSES]; NUM_CLASSES],
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassScores {
    /// Of the images predicted as this class, the share that are.
    pub precision: f64,
    /// Of the images of this class, the share found.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Images of this class.
    pub support: u64,
}

/// The summary numbers of a confusion matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Share of images classified correctly.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1 scores (classes with support only).
    pub macro_f1: f64,
    /// Per class, in FER2013 order.
    pub per_class: Vec<ClassScores>,
    /// The matrix.
    pub confusion: Confusion,
}

impl Confusion {
    /// Counts one prediction.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth][predicted] += 1;
    }

    /// Builds the matrix from parallel slices.
    pub fn from_pairs(truth: &[u8], predicted: &[u8]) -> Confusion {
        let mut c = Confusion::default();
        for (&t, &p) in truth.iter().zip(predicted) {
            c.add(t as usize, p as usize);
        }
        c
    }

    /// Images counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Accuracy, per-class scores and macro-F1.
    pub fn metrics(&self) -> Metrics {
        let total = self.total();
        let correct: u64 = (0..NUM_CLASSES).map(|i| self.counts[i][i]).sum();
        let mut per_class = Vec::with_capacity(NUM_CLASSES);
        for c in 0..NUM_CLASSES {
            let tp = self.counts[c][c] as f64;
            let support: u64 = self.counts[c].iter().sum();
            let predicted: u64 = (0..NUM_CLASSES).map(|t| self.counts[t][c]).sum();
            let precision = if predicted > 0 {
                tp / predicted as f64
            } else {
                0.0
            };
            let recall = if support > 0 {
                tp / support as f64
            } else {
                0.0
            };
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            per_class.push(ClassScores {
                precision,
                recall,
                f1,
                support,
            });
        }
        let present: Vec<_> = per_class.iter().filter(|s| s.support > 0).collect();
        let macro_f1 = if present.is_empty() {
            0.0
        } else {
            present.iter().map(|s| s.f1).sum::<f64>() / present.len() as f64
        };
        Metrics {
            accuracy: if total > 0 {
                correct as f64 / total as f64
            } else {
                0.0
            },
            macro_f1,
            per_class,
            confusion: self.clone(),
        }
    }

    /// The matrix as an aligned text table with row and column names.
    pub fn table(&self) -> String {
        let mut out = format!("{:>14}", "true \\ pred");
        for e in Emotion::ALL {
            out.push_str(&format!("{:>9}", e.name()));
        }
        out.push('\n');
        for (t, row) in self.counts.iter().enumerate() {
            out.push_str(&format!("{:>14}", Emotion::ALL[t].name()));
            for v in row {
                out.push_str(&format!("{v:>9}"));
            }
            out.push('\n');
        }
        out
    }
}

impl Metrics {
    /// Per-class precision, recall, F1 and support as a text table, then accuracy and
    /// macro-F1.
    pub fn report(&self) -> String {
        let mut out = format!(
            "{:>10} {:>9} {:>9} {:>9} {:>9}\n",
            "class", "precision", "recall", "f1", "support"
        );
        for (e, s) in Emotion::ALL.iter().zip(&self.per_class) {
            out.push_str(&format!(
                "{:>10} {:>9.3} {:>9.3} {:>9.3} {:>9}\n",
                e.name(),
                s.precision,
                s.recall,
                s.f1,
                s.support
            ));
        }
        out.push_str(&format!(
            "accuracy {:.4}   macro-F1 {:.4}   ({} images)\n",
            self.accuracy,
            self.macro_f1,
            self.confusion.total()
        ));
        out
    }

    /// The lowest recall among classes with support, and its class: the collapse detector.
    pub fn worst_recall(&self) -> (Emotion, f64) {
        let mut worst = (Emotion::Angry, f64::INFINITY);
        for (e, s) in Emotion::ALL.iter().zip(&self.per_class) {
            if s.support > 0 && s.recall < worst.1 {
                worst = (*e, s.recall);
            }
        }
        worst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_example() {
        // 4 happy (3 right, 1 as sad), 2 sad (both right), 2 angry (both called happy).
        let truth = [3u8, 3, 3, 3, 4, 4, 0, 0];
        let pred = [3u8, 3, 3, 4, 4, 4, 3, 3];
        let m = Confusion::from_pairs(&truth, &pred).metrics();
        assert!((m.accuracy - 5.0 / 8.0).abs() < 1e-12);
        let happy = m.per_class[3];
        assert!((happy.precision - 0.6).abs() < 1e-12);
        assert!((happy.recall - 0.75).abs() < 1e-12);
        let sad = m.per_class[4];
        assert!((sad.f1 - 0.8).abs() < 1e-12);
        assert_eq!(m.per_class[0].f1, 0.0);
        // Macro over the three classes present: (2/3 + 0.8 + 0) / 3.
        let happy_f1 = 2.0 * 0.6 * 0.75 / 1.35;
        assert!((m.macro_f1 - (happy_f1 + 0.8) / 3.0).abs() < 1e-12);
        assert_eq!(m.worst_recall(), (Emotion::Angry, 0.0));
        let table = m.confusion.table();
        assert!(
            table.contains("angry") && table.lines().count() == 8,
            "{table}"
        );
    }
}
