//! Importing published pretrained face-identification weights into our models, as
//! safetensors files that `emotion-train train --weights` loads:
//!
//! - [`keras_h5`]: the VGGFace2 ResNet50 that keras-vggface publishes
//!   (`rcmalli_vggface_tf_resnet50.h5`, `rcmalli_vggface_tf_notop_resnet50.h5`), HDF5 as
//!   Keras 2 `save_weights` writes it;
//! - [`dlib`]: dlib's CC0 face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`,
//!   shipped in the PyPI package `face-recognition-models`), from dlib's binary serialisation.
//!
//! Every tensor of the target backbone must be filled exactly once from the file; a missing,
//! extra or mis-shaped tensor is an error that names it. [`Imported`] collects the tensors and
//! checks that against the model before anything is written.

pub mod dlib;
pub mod keras_h5;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::{Device, Tensor};

use crate::model::checkpoint::LoadedModel;

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read as the expected format.
    #[error("{path}: {reason}")]
    Format {
        /// The weight file.
        path: PathBuf,
        /// What is wrong, naming the layer or tensor.
        reason: String,
    },
    /// A tensor of the model is not in the file.
    #[error("{path}: no weights for `{tensor}` of the {arch} model ({missing} tensors missing)")]
    Missing {
        /// The weight file.
        path: PathBuf,
        /// The first missing tensor.
        tensor: String,
        /// How many are missing.
        missing: usize,
        /// Target architecture.
        arch: String,
    },
    /// The file has a tensor the model has no place for.
    #[error("{path}: `{tensor}` has no counterpart in the {arch} model")]
    Extra {
        /// The weight file.
        path: PathBuf,
        /// The tensor (our name).
        tensor: String,
        /// Target architecture.
        arch: String,
    },
    /// A tensor's shape differs from the model's.
    #[error("{path}: `{tensor}` has shape {found:?}, the model needs {expected:?}")]
    Shape {
        /// The weight file.
        path: PathBuf,
        /// The tensor (our name).
        tensor: String,
        /// Shape in the file (after layout conversion).
        found: Vec<i64>,
        /// Shape in the model.
        expected: Vec<i64>,
    },
    /// The same tensor came twice.
    #[error("{path}: `{tensor}` is filled twice")]
    Duplicate {
        /// The weight file.
        path: PathBuf,
        /// The tensor (our name).
        tensor: String,
    },
    /// Writing the safetensors file failed.
    #[error("writing {path}: {reason}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Tensors read from a weight file, by our variable names, checked against a model.
#[derive(Debug)]
pub struct Imported {
    source: PathBuf,
    arch: String,
    expected: BTreeMap<String, Vec<i64>>,
    tensors: BTreeMap<String, Tensor>,
}

impl Imported {
    /// An empty import into the backbone (everything but the `head/` tensors) of `model`.
    pub fn new(source: &Path, model: &LoadedModel) -> Imported {
        let expected = model
            .vs
            .variables()
            .into_iter()
            .filter(|(name, _)| !name.starts_with("head/"))
            .map(|(name, t)| (name, t.size()))
            .collect();
        Imported {
            source: source.to_path_buf(),
            arch: model.meta.arch.clone(),
            expected,
            tensors: BTreeMap::new(),
        }
    }

    /// Adds `tensor` as our variable `name`, checking that the model has it, with this shape,
    /// and that it was not filled before.
    pub fn insert(&mut self, name: String, tensor: Tensor) -> Result<(), ImportError> {
        let Some(expected) = self.expected.get(&name) else {
            return Err(ImportError::Extra {
                path: self.source.clone(),
                tensor: name,
                arch: self.arch.clone(),
            });
        };
        if tensor.size() != *expected {
            return Err(ImportError::Shape {
                path: self.source.clone(),
                tensor: name,
                found: tensor.size(),
                expected: expected.clone(),
            });
        }
        if self.tensors.contains_key(&name) {
            return Err(ImportError::Duplicate {
                path: self.source.clone(),
                tensor: name,
            });
        }
        self.tensors
            .insert(name, tensor.to_device(Device::Cpu).contiguous());
        Ok(())
    }

    /// Checks that every backbone tensor was filled and returns them.
    pub fn finish(self) -> Result<BTreeMap<String, Tensor>, ImportError> {
        let missing: Vec<&String> = self
            .expected
            .keys()
            .filter(|k| !self.tensors.contains_key(*k))
            .collect();
        if let Some(first) = missing.first() {
            return Err(ImportError::Missing {
                path: self.source.clone(),
                tensor: (*first).clone(),
                missing: missing.len(),
                arch: self.arch.clone(),
            });
        }
        Ok(self.tensors)
    }
}

/// Writes imported tensors as a safetensors file.
pub fn write_safetensors(
    tensors: &BTreeMap<String, Tensor>,
    out: &Path,
) -> Result<(), ImportError> {
    let list: Vec<(&str, &Tensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    Tensor::write_safetensors(&list, out).map_err(|e| ImportError::Write {
        path: out.to_path_buf(),
        reason: e.to_string(),
    })
}
