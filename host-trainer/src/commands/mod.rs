//! One module per `emotion-train` subcommand: argument parsing and reporting around the
//! library's work.

pub mod bench;
pub mod convert_detector;
pub mod distill;
pub mod eval;
pub mod export;
pub mod import;
pub mod keygen;
pub mod push;
pub mod starter;
pub mod synth;
pub mod train;
pub mod wrap;
