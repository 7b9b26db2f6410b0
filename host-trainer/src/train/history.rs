//! The per-epoch training log: `history.csv` for spreadsheets and plots, `history.json` for
//! `--resume` and the curves PNG.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One epoch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (on augmented batches).
    pub train_accuracy: f64,
    /// Validation (PublicTest) accuracy.
    pub val_accuracy: f64,
    /// Validation macro-F1.
    pub val_macro_f1: f64,
    /// Training throughput.
    pub images_per_second: f64,
    /// Wall time of the epoch including validation.
    pub seconds: f64,
}

impl EpochRecord {
    /// One log line.
    pub fn line(&self) -> String {
        format!(
            "epoch {:>3}  loss {:.4}  train acc {:.3}  val acc {:.3}  val macro-F1 {:.3}  lr {:.2e}  {:.0} img/s",
            self.epoch,
            self.train_loss,
            self.train_accuracy,
            self.val_accuracy,
            self.val_macro_f1,
            self.lr,
            self.images_per_second
        )
    }
}

/// All epochs so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct History {
    /// In order.
    pub epochs: Vec<EpochRecord>,
}

impl History {
    /// Writes `history.json` and `history.csv` into `dir`.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("history.json"), json)?;
        let mut csv = String::from(
            "epoch,lr,train_loss,train_accuracy,val_accuracy,val_macro_f1,images_per_second,seconds\n",
        );
        for e in &self.epochs {
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                e.epoch,
                e.lr,
                e.train_loss,
                e.train_accuracy,
                e.val_accuracy,
                e.val_macro_f1,
                e.images_per_second,
                e.seconds
            ));
        }
        std::fs::write(dir.join("history.csv"), csv)
    }

    /// Reads `history.json`.
    pub fn load(path: &Path) -> std::io::Result<History> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }
}
