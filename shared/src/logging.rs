//! Log output for both binaries (feature `logging`): `tracing` events as text on standard
//! error, filtered by `--log`/`RUST_LOG`, with ANSI colours only when standard error is a
//! terminal and `NO_COLOR` is unset or empty (<https://no-color.org>), so a log file or the
//! journal gets plain lines.

use std::io::IsTerminal;

/// A `--log` filter that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("bad --log filter {filter:?}: {reason}")]
pub struct LogFilterError {
    /// The filter as given.
    pub filter: String,
    /// What tracing-subscriber said.
    pub reason: String,
}

/// Whether log lines get colour codes: only on a terminal, and never with `NO_COLOR` set.
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The `--log` option both binaries take (global to their subcommands).
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log filter, e.g. `info`, `debug`, `emotion_edge=trace` (also RUST_LOG).
    #[arg(long, global = true, default_value = "info", env = "RUST_LOG")]
    pub log: String,
}

impl LogArgs {
    /// Installs the global subscriber with this filter (see [`init`]).
    pub fn init(&self) -> Result<(), LogFilterError> {
        init(&self.log)
    }
}

/// Installs the global subscriber with `filter` (e.g. `info`, `emotion_edge=debug`).
pub fn init(filter: &str) -> Result<(), LogFilterError> {
    let env_filter =
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| LogFilterError {
            filter: filter.to_string(),
            reason: e.to_string(),
        })?;
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
    }
}
