//! `emotion-edge run`: the service.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use emotion_edge::clock::SystemClock;
use emotion_edge::config::{Config, Overrides};
use emotion_edge::service::Service;

/// Options of `emotion-edge run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML configuration file; command-line options override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

/// Loads the configuration (defaults < file < options) and runs the service until it stops.
pub fn run(args: RunArgs) -> Result<()> {
    let config = Config::load(args.config.as_deref(), &args.overrides)?;
    let stop = super::stop_flag()?;
    let service = Service::from_config(&config, SystemClock::shared(), stop)
        .context("the service cannot start")?;
    service.run();
    Ok(())
}
