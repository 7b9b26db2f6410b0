//! `emotion-edge rollback`: back to the store's previous model.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use emotion_edge::clock::SystemClock;
use emotion_edge::model_store::{ModelStore, RollbackRequest, StoreLayout};
use emotion_shared::store_layout::DEFAULT_STORE;

/// Options of `emotion-edge rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Model store directory (with inbox/, current/, previous/).
    #[arg(long, default_value = DEFAULT_STORE)]
    store: PathBuf,
    /// Seconds to wait for a running service to act on the request (0: do not wait).
    #[arg(long, default_value_t = 10)]
    wait: u64,
}

/// Requests the rollback and reports what the service did.
pub fn run(args: RollbackArgs) -> Result<()> {
    let layout = StoreLayout::new(args.store);
    let wait = Duration::from_secs(args.wait);
    match ModelStore::request_rollback(&layout, wait, &SystemClock)? {
        RollbackRequest::Done { from, to } => {
            println!("rollback requested: {} -> {to}", described(from.as_deref()));
            println!("rolled back: running {to}");
        }
        RollbackRequest::Refused { current } => bail!(
            "the service refused the rollback (current: {}); see its log",
            current.as_deref().unwrap_or("unreadable")
        ),
        RollbackRequest::Pending { from, to } => {
            println!("rollback requested: {} -> {to}", described(from.as_deref()));
            if args.wait > 0 {
                println!(
                    "no running service picked the request up within {} s: the next start \
                     will roll back",
                    args.wait
                );
            }
        }
    }
    Ok(())
}

fn described(model: Option<&str>) -> &str {
    model.unwrap_or("(no current model)")
}
