//! `emotion-edge`: the device side. See `emotion-edge --help`. Each subcommand is a module of
//! [`commands`] that parses its options and calls the library.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod commands;

/// Facial-emotion recognition on the device: camera -> faces -> emotions -> serial, display, JSON.
#[derive(Debug, Parser)]
#[command(name = "emotion-edge", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    log: emotion_shared::logging::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: read frames, classify faces, report over serial, display and JSON.
    Run(Box<commands::run::RunArgs>),
    /// Classify faces in image files and print JSON (one object per image).
    Classify(commands::classify::ClassifyArgs),
    /// Check a model bundle: signature, hashes, manifest, self-test.
    Verify(commands::verify::VerifyArgs),
    /// Measure per-stage latency of a bundle and of the whole pipeline on synthetic frames.
    Bench(commands::bench::BenchArgs),
    /// Decode the serial protocol from the other end of the line (the reference client):
    /// one JSON object per line on stdout, errors on stderr.
    Listen(commands::listen::ListenArgs),
    /// List cameras, serial ports and I2C buses found on this machine.
    Devices,
    /// Go back to the previous model of a store: the running service swaps it in between
    /// frames (or the next start does), after verifying it again.
    Rollback(commands::rollback::RollbackArgs),
    /// Print the running service's status (model, uptime, FPS, frames, faces, lost
    /// messages, last error) as JSON, from the file it keeps current.
    Status(commands::status::StatusArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    cli.log.init()?;
    match cli.command {
        Command::Run(args) => commands::run::run(*args),
        Command::Classify(args) => commands::classify::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Listen(args) => commands::listen::run(args),
        Command::Devices => {
            println!("{}", emotion_edge::tools::devices::find());
            Ok(())
        }
        Command::Rollback(args) => commands::rollback::run(args),
        Command::Status(args) => commands::status::run(args),
    }
}
