//! keras-vggface's ResNet50 weight files (HDF5 as Keras 2 `Model.save_weights` writes it)
//! onto our `vggface2-resnet50`.
//!
//! The file: root attribute `layer_names` (every layer in model order, with or without
//! weights); one group per layer (names with `/` nest, so every weight is looked up as
//! `file[layer][weight_name]` from the attributes, never by building paths); each layer's
//! attribute `weight_names` (fixed-length ASCII strings as h5py 2 wrote them, or
//! variable-length strings as TensorFlow 2 writes them; an empty list is an empty float
//! array). A full-model file (`model.save`) keeps the same structure under `model_weights`,
//! which is accepted too.
//!
//! Mapping, by layer name (our layer names are keras-vggface's):
//!
//! | Keras layer            | weights                                   | ours                                   |
//! |------------------------|-------------------------------------------|----------------------------------------|
//! | `Conv2D` (`use_bias=False`) | `kernel:0` `[kh, kw, in, out]` (HWIO) | `NAME.weight` `[out, in, kh, kw]` (OIHW) |
//! | `BatchNormalization`   | `gamma:0`, `beta:0`, `moving_mean:0`, `moving_variance:0` | `NAME.weight`, `.bias`, `.running_mean`, `.running_var` (epsilon 1e-3 in both) |
//! | `Dense` `classifier` (top file only) | `kernel:0` `[2048, 8631]`, `bias:0` | skipped: the 8631 VGGFace2 identities are not emotions; our head is new |
//!
//! Anything else with weights is an error naming it.

use std::path::Path;

use hdf5::types::{FixedAscii, VarLenAscii, VarLenUnicode};
use tch::Tensor;

use super::{ImportError, Imported};
use crate::model::checkpoint::LoadedModel;

/// The identity classifier of the `top` file, skipped on import.
pub const IDENTITY_CLASSIFIER: &str = "classifier";

/// A string-list attribute (fixed or variable length); an empty numeric array is an empty
/// list.
fn string_list(loc: &hdf5::Location, attr: &str) -> Result<Vec<String>, String> {
    let a = loc
        .attr(attr)
        .map_err(|e| format!("no `{attr}` attribute ({e}): not a Keras weight file"))?;
    if a.size() == 0 {
        return Ok(Vec::new());
    }
    if let Ok(v) = a.read_raw::<FixedAscii<1024>>() {
        return Ok(v.iter().map(|s| s.as_str().to_string()).collect());
    }
    if let Ok(v) = a.read_raw::<VarLenUnicode>() {
        return Ok(v.iter().map(|s| s.as_str().to_string()).collect());
    }
    a.read_raw::<VarLenAscii>()
        .map(|v| v.iter().map(|s| s.as_str().to_string()).collect())
        .map_err(|e| format!("`{attr}` is not a list of strings: {e}"))
}

/// What a Keras weight name (`layer/kernel:0`, `kernel:0`) is: the part after the last `/`,
/// without `:0`.
fn weight_kind(weight_name: &str) -> &str {
    let last = weight_name.rsplit('/').next().unwrap_or(weight_name);
    last.split(':').next().unwrap_or(last)
}

/// Reads the keras-vggface ResNet50 file `path` into the backbone of `model` (which must be
/// `vggface2-resnet50`); returns the tensors by our names.
pub fn import(
    path: &Path,
    model: &LoadedModel,
) -> Result<std::collections::BTreeMap<String, Tensor>, ImportError> {
    let format = |reason: String| ImportError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let file = hdf5::File::open(path).map_err(|e| {
        format(format!(
            "cannot open as HDF5 ({e}): is this the .h5 file keras-vggface publishes, complete?"
        ))
    })?;
    // Weights-only files have the layer groups at the root; full-model files under
    // `model_weights`.
    let root: hdf5::Group = if file.attr("layer_names").is_ok() {
        (*file).clone()
    } else {
        file.group("model_weights").map_err(|_| {
            format(
                "no `layer_names` attribute and no `model_weights` group: not a Keras weight file"
                    .into(),
            )
        })?
    };
    let layers = string_list(&root, "layer_names").map_err(format)?;
    if layers.is_empty() {
        return Err(format("`layer_names` is empty".into()));
    }
    let mut imported = Imported::new(path, model);
    for layer in &layers {
        let group = root
            .group(layer)
            .map_err(|e| format(format!("layer `{layer}` is listed but has no group: {e}")))?;
        let names = string_list(&group, "weight_names")
            .map_err(|e| format(format!("layer `{layer}`: {e}")))?;
        if names.is_empty() {
            continue;
        }
        if layer == IDENTITY_CLASSIFIER {
            tracing::info!(
                "skipping `{layer}` (the VGGFace2 identity classifier; the emotion head is new)"
            );
            continue;
        }
        for wname in &names {
            let ds = group
                .dataset(wname)
                .map_err(|e| format(format!("layer `{layer}`: weight `{wname}` missing: {e}")))?;
            let shape: Vec<i64> = ds.shape().iter().map(|&d| d as i64).collect();
            let values: Vec<f32> = ds.read_raw::<f32>().map_err(|e| {
                format(format!(
                    "layer `{layer}`: weight `{wname}` unreadable (truncated file?): {e}"
                ))
            })?;
            let expected: i64 = shape.iter().product();
            if values.len() as i64 != expected {
                return Err(format(format!(
                    "layer `{layer}`: weight `{wname}` has {} values for shape {shape:?}",
                    values.len()
                )));
            }
            let t = Tensor::from_slice(&values).view(shape.as_slice());
            let (ours, t) = match (weight_kind(wname), shape.len()) {
                ("kernel", 4) => (format!("{layer}.weight"), t.permute([3, 2, 0, 1])),
                ("gamma", 1) => (format!("{layer}.weight"), t),
                ("beta", 1) => (format!("{layer}.bias"), t),
                ("moving_mean", 1) => (format!("{layer}.running_mean"), t),
                ("moving_variance", 1) => (format!("{layer}.running_var"), t),
                (kind, rank) => {
                    return Err(format(format!(
                        "layer `{layer}`: unexpected weight `{wname}` ({kind}, rank {rank}): \
                         this is not the keras-vggface ResNet50"
                    )));
                }
            };
            imported.insert(ours, t)?;
        }
    }
    imported.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_kinds_come_from_the_last_name_part() {
        assert_eq!(weight_kind("conv1/7x7_s2/kernel:0"), "kernel");
        assert_eq!(weight_kind("moving_variance:0"), "moving_variance");
        assert_eq!(weight_kind("conv2_1_1x1_reduce/bn/gamma:0"), "gamma");
    }
}
