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

/// The secret key of `--key`/`--sign-key` (from `emotion-train keygen`), if one was given.
pub fn signing_key(
    path: Option<&std::path::Path>,
) -> anyhow::Result<Option<emotion_shared::bundle::SigningKey>> {
    use anyhow::Context as _;
    path.map(|p| {
        emotion_shared::bundle::read_secret_key(p)
            .with_context(|| format!("reading the signing key {}", p.display()))
    })
    .transpose()
}
