//! `emotion-train wrap`: a third-party ONNX emotion classifier as a signed bundle (its classes
//! mapped onto ours inside the ONNX, self-tests computed in tract on given images).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use emotion_shared::NUM_CLASSES;
use emotion_shared::manifest::OutputKind;
use emotion_shared::preprocess::{ColorOrder, PreprocessSpec, ResizeMode, TensorLayout};
use emotion_trainer::export::wrap::{self, LabelSet, WrapOptions};

/// `--labels` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Labels {
    /// angry, disgust, fear, happy, sad, surprise, neutral (ours).
    Fer2013,
    /// neutral, happiness, surprise, sadness, anger, disgust, fear, contempt (emotion-ferplus-8).
    FerPlus,
    /// neutral, happy, sad, surprise, fear, disgust, anger, contempt.
    Affectnet,
}

/// `--color` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// One grey channel.
    Grey,
    /// R, G, B.
    Rgb,
    /// B, G, R.
    Bgr,
}

/// `--output` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Unnormalised scores.
    Logits,
    /// Probabilities summing to 1.
    Probabilities,
}

/// Options of `emotion-train wrap`.
#[derive(Debug, Args)]
pub struct WrapArgs {
    /// The ONNX classifier.
    pub model: PathBuf,
    /// Input size WxH, e.g. 64x64.
    #[arg(long)]
    pub input: String,
    /// Input colour.
    #[arg(long, value_enum)]
    pub color: Color,
    /// Factor on the raw 0..255 value (1 for raw pixels, 0.00392157 for [0, 1]).
    #[arg(long)]
    pub scale: f32,
    /// Mean subtracted after scaling, one value or one per channel (comma-separated).
    #[arg(long, default_value = "0")]
    pub mean: String,
    /// Standard deviation divided by, one value or one per channel.
    #[arg(long, default_value = "1")]
    pub std: String,
    /// What the model outputs.
    #[arg(long, value_enum)]
    pub output: Output,
    /// The model's class order; classes we do not have (contempt) are dropped.
    #[arg(long, value_enum)]
    pub labels: Labels,
    /// Seven comma-separated output indices for angry, disgust, fear, happy, sad, surprise,
    /// neutral (instead of the label set's map).
    #[arg(long)]
    pub map: Option<String>,
    /// Face crops (png/jpg) to compute the self-tests on.
    #[arg(long)]
    pub self_test_images: PathBuf,
    /// Signing key (emotion-train keygen).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The bundle folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Bundle name (default: the file stem).
    #[arg(long)]
    pub name: Option<String>,
    /// Bundle version.
    #[arg(long, default_value = "1.0.0")]
    pub version: String,
}

fn floats(s: &str, what: &str, channels: usize) -> Result<Vec<f32>> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--{what} {s:?} is not a comma-separated list of numbers"))?;
    match v.len() {
        1 => Ok(vec![v[0]; channels]),
        n if n == channels => Ok(v),
        n => bail!("--{what} has {n} values; give 1 or {channels}"),
    }
}

/// Runs `emotion-train wrap`.
pub fn run(args: WrapArgs) -> Result<()> {
    let (w, h) = args
        .input
        .split_once('x')
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)))
        .with_context(|| format!("--input {:?} is not WIDTHxHEIGHT", args.input))?;
    let color = match args.color {
        Color::Grey => ColorOrder::Grey,
        Color::Rgb => ColorOrder::Rgb,
        Color::Bgr => ColorOrder::Bgr,
    };
    let channels = color.channels();
    let preprocess = PreprocessSpec {
        width: w,
        height: h,
        color,
        resize: ResizeMode::Bilinear,
        scale: args.scale,
        mean: floats(&args.mean, "mean", channels)?,
        std: floats(&args.std, "std", channels)?,
        layout: TensorLayout::Nchw,
    };
    let map = match &args.map {
        None => None,
        Some(s) => {
            let v: Vec<usize> = s
                .split(',')
                .map(|x| x.trim().parse::<usize>())
                .collect::<Result<_, _>>()
                .with_context(|| format!("--map {s:?} is not a list of indices"))?;
            let arr: [usize; NUM_CLASSES] = v.try_into().map_err(|v: Vec<usize>| {
                anyhow::anyhow!("--map has {} indices; give {NUM_CLASSES}", v.len())
            })?;
            Some(arr)
        }
    };
    let key = super::signing_key(args.key.as_deref())?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.model
            .file_stem()
            .map_or_else(|| "wrapped".into(), |s| s.to_string_lossy().into_owned())
    });
    let report = wrap::wrap(&WrapOptions {
        model: args.model.clone(),
        preprocess,
        output: match args.output {
            Output::Logits => OutputKind::Logits,
            Output::Probabilities => OutputKind::Probabilities,
        },
        labels: match args.labels {
            Labels::Fer2013 => LabelSet::Fer2013,
            Labels::FerPlus => LabelSet::FerPlus,
            Labels::Affectnet => LabelSet::AffectNet,
        },
        map,
        self_test_images: args.self_test_images.clone(),
        out: args.out.clone(),
        key,
        name,
        version: args.version.clone(),
    })
    .with_context(|| format!("wrapping {}", args.model.display()))?;
    println!(
        "wrapped {} (input `{}`, output `{}`) -> {}: our classes from outputs {:?}{}",
        args.model.display(),
        report.io.0,
        report.io.1,
        report.bundle.display(),
        report.map,
        if report.dropped.is_empty() {
            String::new()
        } else {
            format!(", dropped {}", report.dropped.join(", "))
        }
    );
    for (name, top, values) in &report.cases {
        let v: Vec<String> = values.iter().map(|x| format!("{x:.3}")).collect();
        println!("self-test {name:<28} {:<9} [{}]", top.name(), v.join(" "));
    }
    Ok(())
}
