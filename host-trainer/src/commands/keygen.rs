//! `emotion-train keygen`: an ed25519 key pair for signing bundles (secret key file with mode
//! 0600, public key beside it with `.pub` appended), through `emotion_shared::bundle`.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use emotion_shared::bundle::{
    generate_keypair, key_fingerprint, write_public_key, write_secret_key,
};

/// Options of `emotion-train keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the secret key; the public key goes next to it with `.pub` appended.
    #[arg(long)]
    pub out: PathBuf,
}

/// The public key's path for secret key `out`: `out` with `.pub` appended.
pub fn public_path(out: &std::path::Path) -> PathBuf {
    let mut name = OsString::from(out.as_os_str());
    name.push(".pub");
    PathBuf::from(name)
}

/// Runs `emotion-train keygen`.
pub fn run(args: KeygenArgs) -> Result<()> {
    let key = generate_keypair().context("generating an ed25519 key pair")?;
    write_secret_key(&args.out, &key)
        .with_context(|| format!("writing the secret key {}", args.out.display()))?;
    let public = public_path(&args.out);
    write_public_key(&public, &key.verifying_key())
        .with_context(|| format!("writing the public key {}", public.display()))?;
    let fingerprint = key_fingerprint(&key.verifying_key());
    tracing::info!("new signing key {fingerprint}");
    println!(
        "secret key: {} (mode 0600; keep it off the devices)\npublic key: {} (install it on the devices)\nfingerprint: {fingerprint}",
        args.out.display(),
        public.display()
    );
    Ok(())
}
