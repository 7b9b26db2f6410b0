//! A split of a [`FaceSet`] as tensors on the training device, and batches cut from it.
//!
//! The whole split stays as 48x48 `u8` (about 83 MB for all of FER2013), on the GPU when
//! training there. Each batch is gathered by index, turned into floats, augmented and resized
//! to the model's input size on the device (see [`super::augment`]): no 224x224 copy of the
//! data set ever exists.

use tch::{Device, Kind, Tensor};

use super::{FER_SIZE, FaceSet, Split};

/// One split on one device.
#[derive(Debug)]
pub struct SplitTensors {
    /// `[N, 48, 48]` `u8`.
    pub images: Tensor,
    /// `[N]` `i64` hard labels.
    pub labels: Tensor,
    /// `[N, 7]` `f32` soft targets, when the set has them.
    pub soft: Option<Tensor>,
    /// Labels on the host, for metrics and samplers.
    pub host_labels: Vec<u8>,
}

impl SplitTensors {
    /// The images of `split` in file order.
    pub fn new(set: &FaceSet, split: Split, device: Device) -> SplitTensors {
        let idx = set.indices(split);
        Self::from_indices(set, &idx, device)
    }

    /// The images at `idx` (indices into `set`).
    pub fn from_indices(set: &FaceSet, idx: &[usize], device: Device) -> SplitTensors {
        let n = idx.len();
        let mut pixels = Vec::with_capacity(n * FER_SIZE * FER_SIZE);
        let mut labels = Vec::with_capacity(n);
        for &i in idx {
            pixels.extend_from_slice(set.image(i));
            labels.push(set.labels[i]);
        }
        let images = Tensor::from_slice(&pixels)
            .view([n as i64, FER_SIZE as i64, FER_SIZE as i64])
            .to_device(device);
        let labels_t = Tensor::from_slice(&labels)
            .to_kind(Kind::Int64)
            .to_device(device);
        let soft = set.soft.as_ref().map(|soft| {
            let mut rows = Vec::with_capacity(n * emotion_shared::NUM_CLASSES);
            for &i in idx {
                let k = emotion_shared::NUM_CLASSES;
                rows.extend_from_slice(&soft[i * k..(i + 1) * k]);
            }
            Tensor::from_slice(&rows)
                .view([n as i64, emotion_shared::NUM_CLASSES as i64])
                .to_device(device)
        });
        SplitTensors {
            images,
            labels: labels_t,
            soft,
            host_labels: labels,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.host_labels.len()
    }

    /// True when the split is empty.
    pub fn is_empty(&self) -> bool {
        self.host_labels.is_empty()
    }

    /// The images at `idx` as `[B, 1, 48, 48]` floats in 0..255.
    pub fn gather(&self, idx: &Tensor) -> Tensor {
        self.images
            .index_select(0, idx)
            .unsqueeze(1)
            .to_kind(Kind::Float)
    }
}
