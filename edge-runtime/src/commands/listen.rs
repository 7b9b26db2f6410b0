//! `emotion-edge listen`: the reference serial client.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use emotion_edge::tools::listen::{ListenOptions, listen};

/// Options of `emotion-edge listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
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
}

/// One JSON object per valid line on stdout, bad lines on stderr.
pub fn run(args: ListenArgs) -> Result<()> {
    let stop = super::stop_flag()?;
    let name = args.port.display().to_string();
    let options = ListenOptions {
        baud: args.baud,
        count: args.count,
        idle_timeout: Duration::from_secs(args.idle_timeout),
    };
    let mut failed = None;
    listen(&args.port, &options, &stop, |line| match line {
        Ok(m) => match serde_json::to_string(&m) {
            Ok(json) => println!("{json}"),
            Err(e) => failed = Some(e),
        },
        Err(e) => eprintln!("{name}: bad line ({}): {e}", e.kind()),
    })?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
