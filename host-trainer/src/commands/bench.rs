//! `emotion-train bench`: training throughput (images per second) of one architecture on
//! random data, the same step as `train` (forward, weighted cross-entropy, backward, gradient
//! clipping, AdamW), for comparison with PyTorch on the same machine
//! (`bench/torch_training.py` takes the same options).

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use emotion_trainer::device::{self, DeviceChoice};
use emotion_trainer::model::Arch;
use emotion_trainer::model::checkpoint::ModelMeta;
use emotion_trainer::model::graph::Shape;
use emotion_trainer::train::optim::{Optimizer, OptimizerKind};
use tch::{Kind, Tensor};

/// Options of `emotion-train bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Architecture.
    #[arg(long, default_value = "mini-xception")]
    pub arch: Arch,
    /// Input side in pixels (default: the architecture's own).
    #[arg(long)]
    pub size: Option<i64>,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: i64,
    /// Timed steps.
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// First block to train (default: everything).
    #[arg(long)]
    pub unfreeze_from: Option<String>,
    /// libtorch intra-op threads.
    #[arg(long, default_value_t = 2)]
    pub threads: i32,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `emotion-train bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    tch::set_num_threads(args.threads);
    let dev = device::resolve(args.device).map_err(anyhow::Error::msg)?;
    let mut input = args.arch.default_input();
    if let Some(s) = args.size {
        input = Shape {
            c: input.c,
            h: s,
            w: s,
        };
    }
    let meta = ModelMeta::for_arch_at(args.arch, input);
    let mut model = meta.build(dev).map_err(anyhow::Error::msg)?;
    let first = match &args.unfreeze_from {
        Some(b) => Some(
            args.arch
                .resolve_block(&model.net.graph, b)
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    model.net.freeze_before(first);
    let (backbone, head) = model.net.trainable_groups();
    let mut opt = Optimizer::new(
        OptimizerKind::Adamw,
        vec![(backbone, 1.0), (head, 1.0)],
        1e-4,
    );
    tch::manual_seed(42);
    let x = Tensor::randn([args.batch, input.c, input.h, input.w], (Kind::Float, dev));
    let y = Tensor::randint(7, [args.batch], (Kind::Int64, dev));
    let mut times = Vec::with_capacity(args.steps);
    for step in 0..args.warmup + args.steps {
        let t0 = Instant::now();
        let loss = model.net.forward_t(&x, true).cross_entropy_for_logits(&y);
        opt.zero_grad();
        loss.backward();
        opt.clip_grad_norm(5.0);
        opt.step(3e-3);
        if dev.is_cuda() {
            tch::Cuda::synchronize(0);
        }
        if step >= args.warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    let ips = args.batch as f64 / median;
    let (params, trainable) = (model.net.graph.params(), model.net.trainable_params());
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "runtime": "emotion-train (tch)",
                "arch": args.arch.to_string(),
                "input": [input.c, input.h, input.w],
                "batch": args.batch,
                "threads": args.threads,
                "params": params,
                "trainable": trainable,
                "median_step_ms": median * 1e3,
                "images_per_second": ips,
            })
        );
    } else {
        println!(
            "{} {}x{}x{} batch {} | {params} parameters, {trainable} trainable | {} threads",
            args.arch, input.c, input.h, input.w, args.batch, args.threads
        );
        println!(
            "median step {:.1} ms over {} steps: {ips:.1} images/s",
            median * 1e3,
            times.len()
        );
    }
    Ok(())
}
