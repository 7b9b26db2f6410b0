//! A trained model on disk: `NAME.safetensors` (every tensor of the network, named as in the
//! graph) beside `model.json` (what is needed to rebuild the graph and feed it).

use std::path::{Path, PathBuf};

use emotion_shared::preprocess::PreprocessSpec;
use serde::{Deserialize, Serialize};
use tch::{Device, nn};

use super::Arch;
use super::graph::{Network, Shape};
use super::head::HeadSpec;

/// Everything needed to rebuild a network and prepare its input.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    /// Architecture name as `--arch` takes it.
    pub arch: String,
    /// Input shape (without batch).
    pub input: Shape,
    /// Classifier head.
    pub head: HeadSpec,
    /// Number of classes.
    pub classes: i64,
    /// The preprocessing contract the model was trained with.
    pub preprocess: PreprocessSpec,
    /// Backbone weights the training started from, and their sha256, if any.
    #[serde(default)]
    pub backbone_weights: Option<(String, String)>,
}

/// A network with its variables, ready to run.
#[derive(Debug)]
pub struct LoadedModel {
    /// The variables.
    pub vs: nn::VarStore,
    /// The network.
    pub net: Network,
    /// Its description.
    pub meta: ModelMeta,
}

/// Errors loading a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The description does not make sense.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl ModelMeta {
    /// `arch` at its default input size with its default head, the seven emotions and the
    /// preprocessing that goes with it ([`Arch::preprocess_at`]).
    pub fn for_arch(arch: Arch) -> ModelMeta {
        Self::for_arch_at(arch, arch.default_input())
    }

    /// [`ModelMeta::for_arch`] at another input size.
    pub fn for_arch_at(arch: Arch, input: Shape) -> ModelMeta {
        let (w, h) = (input.w as u32, input.h as u32);
        ModelMeta {
            arch: arch.to_string(),
            input,
            head: arch.default_head(),
            classes: emotion_shared::NUM_CLASSES as i64,
            preprocess: arch.preprocess_at(w, h),
            backbone_weights: None,
        }
    }

    /// The architecture.
    pub fn arch(&self) -> Result<Arch, String> {
        self.arch.parse()
    }

    /// Builds the network (fresh parameters) on `device`.
    pub fn build(&self, device: Device) -> Result<LoadedModel, String> {
        let arch = self.arch()?;
        let vs = nn::VarStore::new(device);
        let graph = arch.graph(self.input, &self.head, self.classes);
        let net = Network::new(&vs.root(), graph);
        Ok(LoadedModel {
            vs,
            net,
            meta: self.clone(),
        })
    }
}

/// Writes `weights` (a `.safetensors` path) and `model.json` next to it.
pub fn save(model: &LoadedModel, weights: &Path) -> Result<(), CheckpointError> {
    model.vs.save(weights).map_err(|e| CheckpointError::Read {
        path: weights.to_path_buf(),
        reason: format!("writing: {e}"),
    })?;
    let meta_path = meta_path_for(weights);
    let json = serde_json::to_vec_pretty(&model.meta).map_err(|e| CheckpointError::Invalid {
        path: meta_path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&meta_path, json).map_err(|e| CheckpointError::Read {
        path: meta_path,
        reason: format!("writing: {e}"),
    })
}

/// `model.json` in the same folder as `weights`.
pub fn meta_path_for(weights: &Path) -> PathBuf {
    weights
        .parent()
        .unwrap_or(Path::new("."))
        .join("model.json")
}

/// The training run folder of a checkpoint argument: the folder itself, or the folder of a
/// `.safetensors` file (where its `model.json`, `train.json` and `history.json` are).
pub fn run_dir_of(checkpoint: &Path) -> PathBuf {
    if checkpoint.is_dir() {
        checkpoint.to_path_buf()
    } else {
        meta_path_for(checkpoint)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// Loads a checkpoint: a `.safetensors` file (with `model.json` beside it) or a training
/// output folder (its `best.safetensors`).
pub fn load(path: &Path, device: Device) -> Result<LoadedModel, CheckpointError> {
    let weights = if path.is_dir() {
        path.join("best.safetensors")
    } else {
        path.to_path_buf()
    };
    let meta_path = meta_path_for(&weights);
    let bytes = std::fs::read(&meta_path).map_err(|e| CheckpointError::Read {
        path: meta_path.clone(),
        reason: format!("{e} (a checkpoint needs the model.json that training writes beside it)"),
    })?;
    let meta: ModelMeta = serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Invalid {
        path: meta_path.clone(),
        reason: e.to_string(),
    })?;
    let mut model = meta
        .build(device)
        .map_err(|reason| CheckpointError::Invalid {
            path: meta_path.clone(),
            reason,
        })?;
    model.vs.load(&weights).map_err(|e| CheckpointError::Read {
        path: weights.clone(),
        reason: format!("{e} (truncated, or from another architecture?)"),
    })?;
    Ok(model)
}
