//! Keras 2 HDF5 weight files onto our graphs by layer name: keras-vggface's ResNet50
//! (`Model.save_weights`) onto `vggface2-resnet50`, and the published FER2013 mini-Xception
//! (`fer`'s `emotion_model.hdf5`, a full `model.save` file) onto `fer2013-mini-xception`.
//! [`arch_of`] tells them apart by their layer names.
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
//! | `Conv2D` with bias     | `bias:0` `[out]`                          | `NAME.bias`                            |
//! | `SeparableConv2D`      | `depthwise_kernel:0` `[kh, kw, in, 1]`, `pointwise_kernel:0` `[1, 1, in, out]` | `NAME/depthwise.weight` `[in, 1, kh, kw]`, `NAME/pointwise.weight` `[out, in, 1, 1]` |
//!
//! Anything else with weights is an error naming it.

use std::path::Path;

use hdf5::types::{FixedAscii, VarLenAscii, VarLenUnicode};
use tch::Tensor;

use super::{ImportError, Imported};
use crate::model::Arch;
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

/// The architecture a Keras weight file is for, from its layer names: `fer2013-mini-xception`
/// for a file with `separable_conv2d_1` and `conv2d_7`, `vggface2-resnet50` for one with
/// keras-vggface's `conv1/7x7_s2`.
pub fn arch_of(path: &Path) -> Result<Arch, ImportError> {
    let format = |reason: String| ImportError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let (_file, root) = open(path)?;
    let layers = string_list(&root, "layer_names").map_err(format)?;
    let has = |name: &str| layers.iter().any(|l| l == name);
    if has("separable_conv2d_1") && has("conv2d_7") {
        Ok(Arch::FerMiniXception)
    } else if has("conv1/7x7_s2") {
        Ok(Arch::VggFace2Resnet50)
    } else {
        Err(format(format!(
            "neither keras-vggface's ResNet50 (layer conv1/7x7_s2) nor the FER2013 mini-Xception \
             (layers separable_conv2d_1 .. conv2d_7): its {} layers start with {:?}",
            layers.len(),
            layers.iter().take(4).collect::<Vec<_>>()
        )))
    }
}

/// Opens `path` and finds the group holding the layers (the root of a weights-only file,
/// `model_weights` of a full-model file).
fn open(path: &Path) -> Result<(hdf5::File, hdf5::Group), ImportError> {
    let format = |reason: String| ImportError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let file = hdf5::File::open(path).map_err(|e| {
        format(format!(
            "cannot open as HDF5 ({e}): is this the Keras .h5/.hdf5 file as published, complete?"
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
    Ok((file, root))
}

/// Reads the Keras file `path` into the backbone of `model` (`vggface2-resnet50` or
/// `fer2013-mini-xception`, see [`arch_of`]); returns the tensors by our names.
pub fn import(
    path: &Path,
    model: &LoadedModel,
) -> Result<std::collections::BTreeMap<String, Tensor>, ImportError> {
    let format = |reason: String| ImportError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let (_file, root) = open(path)?;
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
                ("bias", 1) => (format!("{layer}.bias"), t),
                ("depthwise_kernel", 4) => {
                    (format!("{layer}/depthwise.weight"), t.permute([2, 3, 0, 1]))
                }
                ("pointwise_kernel", 4) => {
                    (format!("{layer}/pointwise.weight"), t.permute([3, 2, 0, 1]))
                }
                ("gamma", 1) => (format!("{layer}.weight"), t),
                ("beta", 1) => (format!("{layer}.bias"), t),
                ("moving_mean", 1) => (format!("{layer}.running_mean"), t),
                ("moving_variance", 1) => (format!("{layer}.running_var"), t),
                (kind, rank) => {
                    return Err(format(format!(
                        "layer `{layer}`: unexpected weight `{wname}` ({kind}, rank {rank}): \
                         not a layer of {}",
                        model.meta.arch
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
