//! `emotion-edge status`: the running service's status file as JSON.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use emotion_edge::service::status;
use emotion_shared::store_layout::DEFAULT_STORE;

/// Options of `emotion-edge status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The service's model store: its status is `status.json` next to it.
    #[arg(long, default_value = DEFAULT_STORE)]
    store: PathBuf,
    /// The status file itself (the service's `[status] path`), instead of --store.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Fail (exit status 1, after printing) unless the service is running and current.
    #[arg(long)]
    check: bool,
}

/// Prints the status as one JSON object.
pub fn run(args: StatusArgs) -> Result<()> {
    let path = args
        .file
        .unwrap_or_else(|| status::default_path(&args.store));
    let view = status::read(&path)?;
    println!("{}", serde_json::to_string_pretty(&view)?);
    if args.check && !view.healthy {
        bail!(
            "the service is not healthy: running {}, process alive {}, last update {} s ago",
            view.report.running,
            view.alive,
            view.age_s
        );
    }
    Ok(())
}
