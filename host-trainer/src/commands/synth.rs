//! `emotion-train synth`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use emotion_shared::NUM_CLASSES;
use emotion_shared::render::ClassProportions;
use emotion_trainer::data::synth;
use emotion_trainer::train::progress;

/// Options of `emotion-train synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output CSV in the Kaggle FER2013 layout (emotion,pixels,Usage).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of faces.
    #[arg(long, default_value_t = 8000)]
    pub count: usize,
    /// Random seed: the same seed writes the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Class proportions: `fer2013` (happy 25%, disgust 1.5%, ...), `uniform`, or seven
    /// comma-separated weights in class order (angry,disgust,fear,happy,sad,surprise,neutral).
    #[arg(long, default_value = "fer2013")]
    pub proportions: String,
    /// Shares of Training,PublicTest,PrivateTest.
    #[arg(long, default_value = "0.8,0.1,0.1")]
    pub split: String,
}

fn parse_weights<const N: usize>(s: &str, what: &str) -> Result<[f64; N]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|t| t.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{what} {s:?}: expected {N} comma-separated numbers"))?;
    let arr: [f64; N] = v.try_into().map_err(|v: Vec<f64>| {
        anyhow::anyhow!("{what} {s:?} has {} numbers, expected {N}", v.len())
    })?;
    if arr.iter().any(|x| !x.is_finite() || *x < 0.0) || arr.iter().sum::<f64>() <= 0.0 {
        bail!("{what} {s:?}: numbers must be >= 0 and not all zero");
    }
    Ok(arr)
}

/// Runs `emotion-train synth`.
pub fn run(args: SynthArgs) -> Result<()> {
    let proportions = match args.proportions.as_str() {
        "fer2013" => ClassProportions::FER2013_TRAIN,
        "uniform" => ClassProportions::new([1.0; NUM_CLASSES])?,
        other => ClassProportions::new(parse_weights::<NUM_CLASSES>(other, "--proportions")?)?,
    };
    let shares = parse_weights::<3>(&args.split, "--split")?;
    if args.count < 10 {
        bail!(
            "--count {} is too small for three splits (at least 10)",
            args.count
        );
    }
    let bar = progress(args.count as u64, "rendering");
    let t0 = std::time::Instant::now();
    let set = synth::generate(args.count, proportions, args.seed, shares, &|d| {
        bar.set_position(d as u64)
    });
    bar.finish_and_clear();
    synth::write_csv(&set, &args.out)?;
    println!(
        "wrote {} synthetic faces to {} in {:.1} s (seed {})",
        set.len(),
        args.out.display(),
        t0.elapsed().as_secs_f64(),
        args.seed
    );
    print!("{}", set.summary());
    Ok(())
}
