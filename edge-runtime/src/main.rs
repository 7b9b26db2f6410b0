//! `emotion-edge`: the device side. See `emotion-edge --help`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use emotion_edge::classify::LoadedModel;
use emotion_edge::config::{Config, DisplayTarget, SourceKind};
use emotion_edge::detect::{self, DetectConfig, DetectorKind};
use emotion_edge::model_store::{self, ModelStore, verify_bundle};
use emotion_edge::pipeline::{Pipeline, crop_rgb};
use emotion_edge::sink::display::{DisplaySink, PngPanel, oled::OledPanel};
use emotion_edge::sink::json::JsonSink;
use emotion_edge::sink::serial::{SerialLimits, SerialPortOpener, SerialSink};
use emotion_edge::sink::{Sink, Sinks};
use emotion_edge::smooth::SmoothConfig;
use emotion_edge::source::files::FileSource;
use emotion_edge::source::mjpeg::MjpegSource;
use emotion_edge::source::synthetic::{SyntheticCamera, SyntheticConfig};
use emotion_edge::source::{FrameSource, decode};
use emotion_shared::bundle::{TrustPolicy, read_public_key};
use emotion_shared::preprocess::{FaceCrop, PixelFormat};
use emotion_shared::protocol::{Level, StreamDecoder};

/// Default place of the public key bundles are checked with.
const DEFAULT_PUBLIC_KEY: &str = "/etc/emotion-edge/bundle.pub";

/// Facial-emotion recognition on the device: camera -> faces -> emotions -> serial, display, JSON.
#[derive(Debug, Parser)]
#[command(name = "emotion-edge", version, about, long_about = None)]
struct Cli {
    /// Log filter, e.g. `info`, `debug`, `emotion_edge=trace` (also RUST_LOG).
    #[arg(long, global = true, default_value = "info", env = "RUST_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

/// How bundles are trusted.
#[derive(Debug, Args, Clone)]
struct TrustArgs {
    /// Public key bundles must be signed with [default: /etc/emotion-edge/bundle.pub].
    #[arg(long)]
    public_key: Option<PathBuf>,
    /// Accept unsigned bundles (development only).
    #[arg(long)]
    allow_unsigned: bool,
}

impl TrustArgs {
    fn policy(&self) -> Result<TrustPolicy> {
        trust_policy(self.public_key.as_deref(), self.allow_unsigned)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: read frames, classify faces, report over serial, display and JSON.
    Run(Box<RunArgs>),
    /// Classify faces in image files and print JSON (one object per image).
    Classify {
        /// Model bundle directory.
        #[arg(long)]
        bundle: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        /// Face detector.
        #[arg(long, value_enum, default_value = "full-frame")]
        detector: DetectorKind,
        /// Smallest face side in pixels (rustface).
        #[arg(long, default_value_t = 40)]
        min_face: u32,
        /// Images, folders or glob patterns.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Check a model bundle: signature, hashes, manifest, self-test.
    Verify {
        /// Model bundle directory.
        bundle: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Measure per-stage latency of a bundle and of the whole pipeline on synthetic frames.
    Bench {
        /// Model bundle directory.
        bundle: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        /// Frames to measure.
        #[arg(long, default_value_t = 200)]
        frames: u64,
        /// Frame width.
        #[arg(long, default_value_t = 640)]
        width: u32,
        /// Frame height.
        #[arg(long, default_value_t = 480)]
        height: u32,
        /// Face detector.
        #[arg(long, value_enum, default_value = "rustface")]
        detector: DetectorKind,
        /// Detect every N frames.
        #[arg(long, default_value_t = 1)]
        detect_every: u32,
        /// Also write the measured frames (JPEG) into this folder, for the Python baseline
        /// (`bench/fer_pipeline.py --frames DIR`) to measure the same frames.
        #[arg(long)]
        save_frames: Option<PathBuf>,
    },
    /// Decode the serial protocol from the other end of the line (the reference client):
    /// one JSON object per line on stdout, errors on stderr.
    Listen {
        /// Serial device, e.g. /dev/ttyUSB0.
        port: PathBuf,
        /// Baud rate.
        #[arg(long, default_value_t = 115_200)]
        baud: u32,
        /// Exit after this many valid lines (0: run until stopped).
        #[arg(long, default_value_t = 0)]
        count: u64,
        /// Exit after this many seconds without data (0: never).
        #[arg(long, default_value_t = 0)]
        idle_timeout: u64,
    },
    /// List cameras, serial ports and I2C buses found on this machine.
    Devices,
    /// Go back to the previous model of a store: the running service swaps it in between
    /// frames (or the next start does), after verifying it again.
    Rollback {
        /// Model store directory (with inbox/, current/, previous/).
        #[arg(long, default_value = "/var/lib/emotion-edge/models")]
        store: PathBuf,
        /// Seconds to wait for a running service to act on the request (0: do not wait).
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// TOML configuration file; command-line options override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Frame source.
    #[arg(long, value_enum)]
    source: Option<SourceKind>,
    /// Image files, folders or globs (implies --source files).
    #[arg(long = "file")]
    files: Vec<String>,
    /// V4L2 device (implies --source v4l2).
    #[arg(long)]
    camera: Option<String>,
    /// Model bundle directory (no live updates).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Model store root (live updates through its inbox/).
    #[arg(long)]
    store: Option<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
    /// Face detector.
    #[arg(long, value_enum)]
    detector: Option<DetectorKind>,
    /// Serial device for the wire protocol.
    #[arg(long)]
    serial: Option<String>,
    /// Serial baud rate.
    #[arg(long)]
    baud: Option<u32>,
    /// Display: ssd1306[:BUS[@ADDR]] or png:DIR.
    #[arg(long)]
    display: Option<String>,
    /// JSON lines: `-` for stdout or a file.
    #[arg(long)]
    json: Option<String>,
    /// Stop after N frames.
    #[arg(long)]
    max_frames: Option<u64>,
    /// Synthetic camera: number of faces.
    #[arg(long)]
    synthetic_faces: Option<u32>,
    /// Synthetic camera: frames per second (0: as fast as possible).
    #[arg(long)]
    synthetic_fps: Option<f32>,
    /// Synthetic camera: one face filling each frame (for `--detector full-frame`).
    #[arg(long)]
    synthetic_fill: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .with_context(|| format!("bad --log filter {:?}", cli.log))?,
        )
        .with_writer(std::io::stderr)
        .init();

    match cli.command {
        Command::Run(args) => run(*args),
        Command::Classify {
            bundle,
            trust,
            detector,
            min_face,
            images,
        } => classify(&bundle, &trust, detector, min_face, &images),
        Command::Verify { bundle, trust } => verify(&bundle, &trust),
        Command::Bench {
            bundle,
            trust,
            frames,
            width,
            height,
            detector,
            detect_every,
            save_frames,
        } => bench(
            &bundle,
            &trust,
            frames,
            (width, height),
            detector,
            detect_every,
            save_frames.as_deref(),
        ),
        Command::Listen {
            port,
            baud,
            count,
            idle_timeout,
        } => listen(&port, baud, count, idle_timeout),
        Command::Devices => devices(),
        Command::Rollback { store, wait } => rollback(&store, wait),
    }
}

/// Asks the store's watcher to roll back (the trigger file in the inbox) and waits for it.
fn rollback(store: &Path, wait: u64) -> Result<()> {
    use emotion_edge::model_store::{CURRENT, INBOX, PREVIOUS, ROLLBACK_TRIGGER};
    let model_of = |dir: &Path| -> Option<String> {
        let bytes = std::fs::read(dir.join("manifest.json")).ok()?;
        let m = emotion_shared::manifest::Manifest::from_json(&bytes).ok()?;
        Some(format!("{} {}", m.model.name, m.model.version))
    };
    let previous = store.join(PREVIOUS);
    let Some(target) = model_of(&previous) else {
        bail!(
            "{} holds no readable bundle: there is nothing to roll back to",
            previous.display()
        );
    };
    let before = model_of(&store.join(CURRENT));
    let trigger = store.join(INBOX).join(ROLLBACK_TRIGGER);
    std::fs::write(&trigger, b"requested by emotion-edge rollback\n").with_context(|| {
        format!(
            "cannot write {} (run as the service's user or root)",
            trigger.display()
        )
    })?;
    println!(
        "rollback requested: {} -> {target}",
        before.as_deref().unwrap_or("(no current model)")
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
    while wait > 0 && std::time::Instant::now() < deadline {
        if !trigger.exists() {
            let now = model_of(&store.join(CURRENT));
            if now.as_deref() == Some(target.as_str()) {
                println!("rolled back: running {target}");
                return Ok(());
            }
            bail!(
                "the service refused the rollback (current: {}); see its log",
                now.as_deref().unwrap_or("unreadable")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    if wait > 0 {
        println!(
            "no running service picked the request up within {wait} s: the next start will \
             roll back"
        );
    }
    Ok(())
}

fn trust_policy(public_key: Option<&Path>, allow_unsigned: bool) -> Result<TrustPolicy> {
    if allow_unsigned {
        tracing::warn!("accepting UNSIGNED model bundles (--allow-unsigned): for development only");
        return Ok(TrustPolicy::AllowUnsigned);
    }
    let path = public_key.unwrap_or(Path::new(DEFAULT_PUBLIC_KEY));
    let key = read_public_key(path).with_context(|| {
        format!(
            "cannot read the bundle public key {}: pass --public-key FILE (or --allow-unsigned for development)",
            path.display()
        )
    })?;
    Ok(TrustPolicy::require(key))
}

/// Stop flag set by SIGTERM and SIGINT.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .with_context(|| format!("cannot install the handler for signal {sig}"))?;
    }
    Ok(stop)
}

fn load_model(bundle: &Path, trust: &TrustArgs) -> Result<Arc<LoadedModel>> {
    let policy = trust.policy()?;
    let v = verify_bundle(bundle, &policy)
        .with_context(|| format!("model bundle {} refused", bundle.display()))?;
    tracing::info!(
        "model {} ({}; {} self-test(s) passed, max error {:.2e})",
        v.model.id(),
        v.signature,
        v.self_tests,
        v.max_error
    );
    Ok(v.model)
}

fn run(args: RunArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    // Command-line overrides.
    if let Some(k) = args.source {
        config.source.kind = k;
    }
    if !args.files.is_empty() {
        config.source.kind = SourceKind::Files;
        config.source.files = args.files.clone();
    }
    if let Some(cam) = &args.camera {
        config.source.kind = SourceKind::V4l2;
        #[cfg(feature = "v4l")]
        {
            config.source.v4l2.device = cam.clone();
        }
        #[cfg(not(feature = "v4l"))]
        bail!("--camera {cam}: this build has no V4L2 support (feature `v4l`)");
    }
    if let Some(b) = &args.bundle {
        config.model.bundle = Some(b.clone());
        config.model.store = None;
    }
    if let Some(s) = &args.store {
        config.model.store = Some(s.clone());
        config.model.bundle = None;
    }
    if let Some(k) = &args.trust.public_key {
        config.model.public_key = Some(k.clone());
    }
    if args.trust.allow_unsigned {
        config.model.allow_unsigned = true;
    }
    if config.model.public_key.is_none()
        && !config.model.allow_unsigned
        && Path::new(DEFAULT_PUBLIC_KEY).exists()
    {
        config.model.public_key = Some(DEFAULT_PUBLIC_KEY.into());
    }
    if let Some(d) = args.detector {
        config.detect.detector = d;
    }
    if let Some(p) = &args.serial {
        config.serial.port = Some(p.clone());
    }
    if let Some(b) = args.baud {
        config.serial.baud = b;
    }
    if let Some(d) = &args.display {
        config.display.target = Some(d.clone());
    }
    if let Some(j) = &args.json {
        config.json.path = Some(j.clone());
    }
    if let Some(m) = args.max_frames {
        config.max_frames = m;
    }
    if let Some(n) = args.synthetic_faces {
        config.source.synthetic.faces = n;
    }
    if let Some(f) = args.synthetic_fps {
        config.source.synthetic.fps = f;
    }
    if args.synthetic_fill {
        config.source.synthetic.fill = true;
    }
    config.validate()?;

    let stop = stop_flag()?;
    let policy = trust_policy(
        config.model.public_key.as_deref(),
        config.model.allow_unsigned,
    )?;

    // The model: a fixed bundle or a store with live updates.
    let (slot, watcher) = match (&config.model.bundle, &config.model.store) {
        (Some(bundle), _) => {
            let v = verify_bundle(bundle, &policy)
                .with_context(|| format!("model bundle {} refused", bundle.display()))?;
            tracing::info!("model {} ({})", v.model.id(), v.signature);
            (Arc::new(model_store::ModelSlot::new(v.model)), None)
        }
        (None, Some(root)) => {
            let (store, v) = ModelStore::open(root, policy)
                .with_context(|| format!("model store {}", root.display()))?;
            tracing::info!(inbox = %store.inbox().display(), "model {} ({}); watching for updates", v.model.id(), v.signature);
            let slot = store.slot();
            let (tx, rx) = std::sync::mpsc::channel();
            let poll = Duration::from_millis(if config.model.poll_ms == 0 {
                1000
            } else {
                config.model.poll_ms
            });
            let handle = model_store::spawn_watcher(store, poll, Arc::clone(&stop), tx);
            (slot, Some((handle, rx)))
        }
        (None, None) => bail!("no model: pass --bundle DIR or --store DIR"),
    };

    let sinks = build_sinks(&config)?;
    let detector = detect::build(&config.detect).context("face detector")?;
    let mut source = build_source(&config)?;
    let mut pipeline = Pipeline::new(detector, slot, config.smooth, sinks)?;
    pipeline.status(
        Level::Info,
        "start",
        &format!("emotion-edge {} started", env!("CARGO_PKG_VERSION")),
    );
    tracing::info!("source: {}", source.describe());
    let events = watcher.as_ref().map(|(_, rx)| rx);
    pipeline.set_watchdog(emotion_edge::service::Watchdog::from_env());
    emotion_edge::service::notify_ready();
    let stats = pipeline.run(source.as_mut(), &stop, config.max_frames, events);
    emotion_edge::service::notify_stopping();
    pipeline.status(
        Level::Info,
        "stop",
        &format!("stopped after {} frames", stats.frames),
    );
    pipeline.finish();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some((handle, _)) = watcher
        && handle.join().is_err()
    {
        tracing::error!("the model-store thread panicked");
    }
    tracing::info!(
        frames = stats.frames,
        corrupt = stats.corrupt,
        failed_faces = stats.failed_faces,
        swaps = stats.swaps,
        "done"
    );
    Ok(())
}

fn build_source(config: &Config) -> Result<Box<dyn FrameSource>> {
    Ok(match config.source.kind {
        SourceKind::Synthetic => Box::new(SyntheticCamera::new(config.source.synthetic.clone())),
        SourceKind::Files => Box::new(FileSource::new(&config.source.files, config.source.repeat)?),
        SourceKind::Stdin => Box::new(MjpegSource::new(std::io::stdin().lock(), "stdin")),
        #[cfg(feature = "v4l")]
        SourceKind::V4l2 => Box::new(emotion_edge::source::v4l2::V4l2Camera::new(
            config.source.v4l2.clone(),
        )),
        #[cfg(not(feature = "v4l"))]
        SourceKind::V4l2 => bail!("this build has no V4L2 support (cargo feature `v4l`)"),
    })
}

fn build_sinks(config: &Config) -> Result<Sinks> {
    let mut sinks = Sinks::new();
    if let Some(port) = &config.serial.port {
        sinks.push(Box::new(SerialSink::new(
            SerialPortOpener {
                path: port.clone(),
                baud: config.serial.baud,
            },
            SerialLimits {
                baud: config.serial.baud,
                max_fps: config.serial.max_fps,
            },
        )));
    }
    if let Some(target) = &config.display.target {
        let sink: Box<dyn Sink> = match DisplayTarget::parse(target)? {
            DisplayTarget::Png(dir) => Box::new(DisplaySink::new(
                PngPanel::new(&dir).with_context(|| format!("display folder {}", dir.display()))?,
                config.display.max_fps,
            )),
            DisplayTarget::Ssd1306 { bus, address } => Box::new(DisplaySink::new(
                OledPanel::new(bus, address),
                config.display.max_fps,
            )),
        };
        sinks.push(sink);
    }
    match config.json.path.as_deref() {
        None => {}
        Some("-") => sinks.push(Box::new(JsonSink::new(std::io::stdout(), "stdout"))),
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open JSON output file {path}"))?;
            sinks.push(Box::new(JsonSink::new(std::io::BufWriter::new(file), path)));
        }
    }
    if sinks.is_empty() {
        tracing::warn!("no output configured (--serial, --display, --json): results go nowhere");
    }
    Ok(sinks)
}

fn classify(
    bundle: &Path,
    trust: &TrustArgs,
    detector: DetectorKind,
    min_face: u32,
    images: &[String],
) -> Result<()> {
    let model = load_model(bundle, trust)?;
    let mut classifier = model.classifier()?;
    let mut det = detect::build(&DetectConfig {
        detector,
        min_face,
        every: 1,
        ..DetectConfig::default()
    })?;
    let paths = emotion_edge::source::files::expand(images)?;
    let mut failures = 0;
    for path in paths {
        let image = match emotion_edge::source::files::read_image(&path) {
            Ok(i) => i,
            Err(e) => {
                failures += 1;
                println!(
                    "{}",
                    serde_json::json!({"image": path.display().to_string(), "error": e.to_string()})
                );
                continue;
            }
        };
        let mut faces = Vec::new();
        for b in det.detect(&image) {
            let crop = crop_rgb(&image, b.x, b.y, b.w, b.h);
            let fc =
                FaceCrop::from_raw(crop.width(), crop.height(), PixelFormat::Rgb, crop.as_raw())?;
            let p = classifier.classify(fc)?;
            let probs: serde_json::Map<String, serde_json::Value> = emotion_shared::Emotion::ALL
                .iter()
                .map(|e| {
                    (
                        e.name().to_string(),
                        serde_json::json!(p.probabilities[e.index()]),
                    )
                })
                .collect();
            faces.push(serde_json::json!({
                "bbox": {"x": b.x, "y": b.y, "w": b.w, "h": b.h},
                "label": p.label.name(),
                "confidence": p.confidence,
                "probabilities": probs,
            }));
        }
        println!(
            "{}",
            serde_json::json!({"image": path.display().to_string(), "model": model.id(), "faces": faces})
        );
    }
    if failures > 0 {
        bail!("{failures} image(s) could not be read");
    }
    Ok(())
}

fn verify(bundle: &Path, trust: &TrustArgs) -> Result<()> {
    let policy = trust.policy()?;
    let v = verify_bundle(bundle, &policy)
        .with_context(|| format!("model bundle {} refused", bundle.display()))?;
    let m = v.model.manifest();
    println!("bundle    {}", bundle.display());
    println!("model     {}", v.model.id());
    println!("signature {}", v.signature);
    println!("input     {:?} ({:?})", m.input.shape, m.preprocess.color);
    println!("output    {:?} {:?}", m.output.shape, m.output.kind);
    println!(
        "self-test {} case(s) passed, max abs error {:.3e}",
        v.self_tests, v.max_error
    );
    for metric in &m.metrics {
        println!(
            "metric    {} = {:.4} ({} on {})",
            metric.name, metric.value, metric.split, metric.dataset
        );
    }
    println!("OK");
    Ok(())
}

/// min, median, p99 of durations, in milliseconds.
fn summary(mut d: Vec<Duration>) -> (f64, f64, f64) {
    if d.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    let p99 = ((d.len() as f64 * 0.99).ceil() as usize).clamp(1, d.len()) - 1;
    (ms(d[0]), ms(d[d.len() / 2]), ms(d[p99]))
}

fn bench(
    bundle: &Path,
    trust: &TrustArgs,
    frames: u64,
    (width, height): (u32, u32),
    detector: DetectorKind,
    every: u32,
    save_frames: Option<&Path>,
) -> Result<()> {
    let model = load_model(bundle, trust)?;
    // Pre-render the frames as JPEG, so decoding is measured like a webcam's MJPEG.
    let n = frames.max(1);
    let mut cam = SyntheticCamera::new(SyntheticConfig {
        width,
        height,
        faces: 1,
        frames: n.min(50),
        ..SyntheticConfig::default()
    });
    let mut jpegs = Vec::new();
    while let Some(f) = cam.next_frame()? {
        jpegs.push(decode::encode_jpeg(&f.image, 85));
    }
    if let Some(dir) = save_frames {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the frame folder {}", dir.display()))?;
        for (i, jpeg) in jpegs.iter().enumerate() {
            let path = dir.join(format!("frame-{i:03}.jpg"));
            std::fs::write(&path, jpeg).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let det = detect::build(&DetectConfig {
        detector,
        every,
        ..DetectConfig::default()
    })?;
    let mut sinks = Sinks::new();
    sinks.push(Box::new(JsonSink::new(std::io::sink(), "null")));
    let mut pipeline =
        Pipeline::with_model(det, Arc::clone(&model), SmoothConfig::default(), sinks)?;
    let mut stages: [Vec<Duration>; 7] = Default::default();
    let mut faces = 0usize;
    let start = Instant::now();
    for i in 0..n {
        let jpeg = &jpegs[(i as usize) % jpegs.len()];
        let t = Instant::now();
        let image = decode::decode_jpeg(jpeg)?;
        let decode_time = t.elapsed();
        let frame = emotion_edge::source::Frame {
            image,
            captured: Instant::now(),
            origin: "bench".into(),
            truth: None,
        };
        let p = pipeline.process(&frame);
        faces += p.faces.len();
        let total = decode_time
            + p.times.detect
            + p.times.preprocess
            + p.times.infer
            + p.times.smooth
            + p.times.sink;
        for (v, d) in stages.iter_mut().zip([
            decode_time,
            p.times.detect,
            p.times.preprocess,
            p.times.infer,
            p.times.smooth,
            p.times.sink,
            total,
        ]) {
            v.push(d);
        }
    }
    let wall = start.elapsed();
    println!(
        "model {} | {} frames {}x{} | detector {:?} every {} | {:.2} faces/frame",
        model.id(),
        n,
        width,
        height,
        detector,
        every,
        faces as f64 / n as f64
    );
    println!(
        "{:<11} {:>9} {:>9} {:>9}",
        "stage (ms)", "min", "median", "p99"
    );
    for (name, v) in [
        "decode",
        "detect",
        "preprocess",
        "infer",
        "smooth",
        "sink",
        "total",
    ]
    .iter()
    .zip(stages)
    {
        let (min, med, p99) = summary(v);
        println!("{name:<11} {min:>9.3} {med:>9.3} {p99:>9.3}");
    }
    println!(
        "throughput {:.1} FPS (wall clock, one thread)",
        n as f64 / wall.as_secs_f64()
    );
    // Model alone: preprocess + infer of a 48x48-ish crop.
    let mut c = model.classifier()?;
    let crop = image::RgbImage::from_pixel(96, 96, image::Rgb([128, 128, 128]));
    let mut infer = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        c.classify(FaceCrop::from_raw(96, 96, PixelFormat::Rgb, crop.as_raw())?)?;
        infer.push(t.elapsed());
    }
    let (min, med, p99) = summary(infer);
    println!(
        "model only (preprocess+infer, 96x96 crop): min {min:.3} median {med:.3} p99 {p99:.3} ms"
    );
    Ok(())
}

fn listen(port: &Path, baud: u32, count: u64, idle_timeout: u64) -> Result<()> {
    let stop = stop_flag()?;
    let name = port.display().to_string();
    let mut serial = serialport::new(&name, baud)
        .timeout(Duration::from_millis(200))
        .open_native()
        .with_context(|| format!("cannot open serial port {name} (check the device name and permissions: group dialout)"))?;
    let mut decoder = StreamDecoder::new();
    let mut buf = [0u8; 1024];
    let mut valid = 0u64;
    let mut last_data = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match serial.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => {
                last_data = Instant::now();
                for r in decoder.feed(&buf[..n]) {
                    match r {
                        Ok(m) => {
                            println!("{}", serde_json::to_string(&m)?);
                            valid += 1;
                            if count > 0 && valid >= count {
                                return Ok(());
                            }
                        }
                        Err(e) => eprintln!("{name}: bad line ({}): {e}", e.kind()),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => bail!("reading {name}: {e}"),
        }
        if idle_timeout > 0 && last_data.elapsed() > Duration::from_secs(idle_timeout) {
            bail!("no data on {name} for {idle_timeout} s");
        }
    }
    Ok(())
}

fn devices() -> Result<()> {
    println!("cameras (V4L2):");
    #[cfg(feature = "v4l")]
    {
        let cams = emotion_edge::source::v4l2::list_cameras();
        if cams.is_empty() {
            println!("  none");
        }
        for (path, name) in cams {
            println!("  {path}  {name}");
        }
    }
    #[cfg(not(feature = "v4l"))]
    println!("  (this build has no V4L2 support)");
    println!("serial ports:");
    match serialport::available_ports() {
        Ok(ports) if ports.is_empty() => println!("  none"),
        Ok(ports) => {
            for p in ports {
                println!("  {}  {:?}", p.port_name, p.port_type);
            }
        }
        Err(e) => println!("  cannot list: {e}"),
    }
    println!("I2C buses:");
    let mut buses: Vec<_> = glob::glob("/dev/i2c-*")
        .map(|g| g.flatten().collect())
        .unwrap_or_default();
    buses.sort();
    if buses.is_empty() {
        println!("  none (on a Raspberry Pi: enable I2C with raspi-config)");
    }
    for b in buses {
        println!("  {}", b.display());
    }
    println!(
        "face detector model: {}",
        if detect::EMBEDDED_MODEL_AVAILABLE {
            "SeetaFace frontal, built in"
        } else {
            "not built in (set detect.model in the config)"
        }
    );
    Ok(())
}
