//! A model ready to train, from what a user asks for ([`ModelRequest`]): the architecture at
//! an input size with a head, started from published backbone weights (`--weights`, a
//! safetensors file from `emotion-train import-weights`) or from every weight of an earlier run
//! (`--init-from`).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tch::Device;

use super::Arch;
use super::checkpoint::{self, CheckpointError, LoadedModel, ModelMeta};
use super::graph::Shape;
use super::head::HeadSpec;

/// What to build.
#[derive(Debug, Clone, Copy)]
pub struct ModelRequest<'a> {
    /// The architecture.
    pub arch: Arch,
    /// Square input side; `None`: the architecture's default.
    pub input_size: Option<u32>,
    /// Head spec (see [`HeadSpec::parse`]); `None`: the architecture's default.
    pub head: Option<&'a str>,
    /// Backbone weights to load (the head stays freshly initialised).
    pub weights: Option<&'a Path>,
    /// A trained run (or checkpoint) of the same architecture, input and head to copy every
    /// weight from.
    pub init_from: Option<&'a Path>,
}

/// Why the model cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The input side is below what the networks take.
    #[error("--input-size {0} is too small (at least 32)")]
    InputTooSmall(u32),
    /// The head spec does not parse.
    #[error("--head: {0}")]
    Head(String),
    /// The network cannot be built.
    #[error("building the network: {0}")]
    Build(String),
    /// The weights file cannot be read or loaded.
    #[error("backbone weights {path}: {reason}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The weights are for another network.
    #[error("{path} does not fit {arch}: {missing} backbone tensors are missing, e.g. {example}")]
    WeightsDoNotFit {
        /// The file.
        path: PathBuf,
        /// The architecture asked for.
        arch: Arch,
        /// How many backbone tensors it lacks.
        missing: usize,
        /// One of them.
        example: String,
    },
    /// The run to start from cannot be loaded.
    #[error("loading --init-from {path}: {source}")]
    InitFrom {
        /// The run.
        path: PathBuf,
        /// Why.
        source: CheckpointError,
    },
    /// The run to start from is another network.
    #[error("--init-from {path} is {found}; this run is {wanted}")]
    InitFromMismatch {
        /// The run.
        path: PathBuf,
        /// What it is (architecture, input, head).
        found: String,
        /// What this run is.
        wanted: String,
    },
    /// Copying the weights failed.
    #[error("copying the weights of {path}: {reason}")]
    Copy {
        /// The run.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl ModelRequest<'_> {
    /// The description of the requested model (input, head, preprocessing), before weights.
    pub fn meta(&self) -> Result<ModelMeta, SetupError> {
        let arch = self.arch;
        let mut input = arch.default_input();
        if let Some(side) = self.input_size {
            if side < 32 {
                return Err(SetupError::InputTooSmall(side));
            }
            input = Shape {
                c: input.c,
                h: i64::from(side),
                w: i64::from(side),
            };
        }
        let head = match self.head {
            Some(h) => HeadSpec::parse(h).map_err(SetupError::Head)?,
            None => arch.default_head(),
        };
        Ok(ModelMeta {
            preprocess: arch.preprocess_at(input.w as u32, input.h as u32),
            arch: arch.to_string(),
            input,
            head,
            classes: emotion_shared::NUM_CLASSES as i64,
            backbone_weights: None,
        })
    }

    /// The model on `device`, with its weights loaded as asked.
    pub fn build(&self, device: Device) -> Result<LoadedModel, SetupError> {
        let mut meta = self.meta()?;
        if self.weights.is_none() && self.arch.is_backbone() {
            tracing::warn!(
                "{} without --weights starts from random weights: it knows no faces. Import \
                 the published weights with `emotion-train import-weights`",
                self.arch
            );
        }
        let mut model = meta.build(device).map_err(SetupError::Build)?;
        if let Some(w) = self.weights {
            let weights_err = |reason: String| SetupError::Weights {
                path: w.to_path_buf(),
                reason,
            };
            let bytes = std::fs::read(w).map_err(|e| weights_err(e.to_string()))?;
            let sha = hex::encode(Sha256::digest(&bytes));
            let missing = model
                .vs
                .load_partial(w)
                .map_err(|e| weights_err(e.to_string()))?;
            let missing_backbone: Vec<_> =
                missing.iter().filter(|n| !n.starts_with("head/")).collect();
            if let Some(example) = missing_backbone.first() {
                return Err(SetupError::WeightsDoNotFit {
                    path: w.to_path_buf(),
                    arch: self.arch,
                    missing: missing_backbone.len(),
                    example: example.to_string(),
                });
            }
            meta.backbone_weights = Some((w.display().to_string(), sha));
            model.meta = meta.clone();
        }
        if let Some(init) = self.init_from {
            let from = checkpoint::load(init, device).map_err(|source| SetupError::InitFrom {
                path: init.to_path_buf(),
                source,
            })?;
            if from.meta.arch != meta.arch
                || from.meta.input != meta.input
                || from.meta.head != meta.head
            {
                let describe =
                    |m: &ModelMeta| format!("a {} at {:?} with head {:?}", m.arch, m.input, m.head);
                return Err(SetupError::InitFromMismatch {
                    path: init.to_path_buf(),
                    found: describe(&from.meta),
                    wanted: describe(&meta),
                });
            }
            model.vs.copy(&from.vs).map_err(|e| SetupError::Copy {
                path: init.to_path_buf(),
                reason: e.to_string(),
            })?;
            model.meta.backbone_weights = from.meta.backbone_weights.clone();
            tracing::info!("starting from the weights of {}", init.display());
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_what_is_wrong() {
        let req = ModelRequest {
            arch: Arch::MiniXception,
            input_size: Some(16),
            head: None,
            weights: None,
            init_from: None,
        };
        assert!(matches!(req.meta(), Err(SetupError::InputTooSmall(16))));
        let meta = ModelRequest {
            input_size: Some(64),
            ..req
        }
        .meta()
        .expect("meta");
        assert_eq!((meta.input.h, meta.input.w), (64, 64));
        assert_eq!(meta.preprocess, Arch::MiniXception.preprocess_at(64, 64));
        let e = ModelRequest {
            input_size: None,
            weights: Some(Path::new("/nonexistent/w.safetensors")),
            ..req
        }
        .build(Device::Cpu)
        .expect_err("no such file")
        .to_string();
        assert!(e.contains("/nonexistent/w.safetensors"), "{e}");
    }
}
