//! One module per `emotion-train` subcommand: argument parsing and reporting around the
//! library's work.

pub mod eval;
pub mod export;
pub mod keygen;
pub mod synth;
pub mod train;
