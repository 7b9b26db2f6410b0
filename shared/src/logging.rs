//! Log output for both binaries (feature `logging`): `tracing` events as text on standard
//! error, filtered by `--log`/`RUST_LOG`, with ANSI colours only when standard error is a
//! terminal and `NO_COLOR` is unset or empty (<https://no-color.org>), so a log file or the
//! journal gets plain lines.

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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

/// Parses a `--log` filter: a default level and `target=level` directives, comma-separated
/// (`info`, `warn,emotion_edge=debug`, `emotion_edge::mqtt=trace`). Levels: `off`, `error`,
/// `warn`, `info`, `debug`, `trace`. (tracing-subscriber's `Targets`: `RUST_LOG`'s target
/// syntax without its span and field filters, and without the regex engine those need.)
pub fn parse_filter(filter: &str) -> Result<Targets, LogFilterError> {
    filter.parse::<Targets>().map_err(|e| LogFilterError {
        filter: filter.to_string(),
        reason: e.to_string(),
    })
}

/// Installs the global subscriber with `filter` (see [`parse_filter`]).
pub fn init(filter: &str) -> Result<(), LogFilterError> {
    let targets = parse_filter(filter)?;
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .finish()
        .with(targets)
        .init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use tracing::Level;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
    }

    #[test]
    fn filters_set_a_default_and_levels_per_target() {
        let t = parse_filter("warn,emotion_edge=debug,emotion_edge::mqtt=trace").unwrap();
        assert!(t.would_enable("emotion_edge::pipeline", &Level::DEBUG));
        assert!(!t.would_enable("emotion_edge::pipeline", &Level::TRACE));
        assert!(t.would_enable("emotion_edge::mqtt", &Level::TRACE));
        assert!(t.would_enable("tract_core", &Level::WARN));
        assert!(!t.would_enable("tract_core", &Level::INFO));
        let info = parse_filter("info").unwrap();
        assert!(info.would_enable("anything", &Level::INFO));
        assert!(!info.would_enable("anything", &Level::DEBUG));
        assert!(
            !parse_filter("off")
                .unwrap()
                .would_enable("emotion_edge", &Level::ERROR)
        );
    }

    #[test]
    fn a_bad_filter_is_refused_with_its_text() {
        let e = parse_filter("emotion_edge=loud").unwrap_err();
        assert_eq!(e.filter, "emotion_edge=loud");
        assert!(e.to_string().contains("emotion_edge=loud"), "{e}");
    }
}
