//! `emotion-train push`: a checked bundle into a device's model inbox, atomically.
//!
//! The bundle is opened first exactly as the device will (hashes, manifest, self-test data;
//! the signature with `--public-key`), so a broken bundle never leaves the workstation. Then:
//!
//! - **over SSH** (`[user@]host:[DIR]`, DIR defaulting to the installed store's inbox): one
//!   `ssh` connection with the system's client, so the user's keys, agent and
//!   `~/.ssh/config` apply and no password is ever stored or asked for (`BatchMode=yes`). The
//!   bundle travels as a tar stream on standard input; the remote side (POSIX `sh` and `tar`,
//!   present on every Raspberry Pi OS and JetPack image) unpacks it into a hidden directory in
//!   the inbox and renames it to its final name, so the device never sees half a bundle.
//! - **locally** (a directory path): the same, with a hidden copy and a rename.
//!
//! `--ssh PROGRAM` replaces `ssh` (e.g. a wrapper with extra options); the tests use a fake
//! transport that runs the remote command locally.
//!
//! With `--inventory FILE` instead of `--to`, the bundle goes to many devices in stages
//! (canary first, then waves, waiting for each device to run it, stopping at the first
//! refusal): [`emotion_trainer::fleet`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;
use emotion_shared::bundle::{Bundle, TrustPolicy, VerifiedBundle, read_public_key};
use emotion_shared::bundle_tar;
use emotion_shared::store_layout::StoreLayout;

/// Options of `emotion-train push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The bundle: a directory written by `emotion-train export`, or its `.tar`.
    pub bundle: PathBuf,
    /// Where to: `[user@]host:[DIR]` over SSH (DIR defaults to
    /// /var/lib/emotion-edge/models/inbox) or a local inbox directory.
    #[arg(
        long,
        required_unless_present = "inventory",
        conflicts_with = "inventory"
    )]
    pub to: Option<String>,
    /// Many devices: an inventory file (TOML: hosts, groups, per-host store and ssh
    /// options, rollout settings); canary group first, then waves.
    #[arg(long)]
    pub inventory: Option<PathBuf>,
    /// With --inventory: only the hosts of this group.
    #[arg(long, requires = "inventory")]
    pub group: Option<String>,
    /// With --inventory: roll the updated devices back when the rollout stops (also
    /// `rollback = true` in the inventory's [rollout]).
    #[arg(long, requires = "inventory")]
    pub rollback: bool,
    /// With --inventory: seconds each device has to run the new model [default: the
    /// inventory's rollout.timeout_s].
    #[arg(long, requires = "inventory")]
    pub timeout: Option<u64>,
    /// With --inventory: write the JSON report here.
    #[arg(long, requires = "inventory")]
    pub report: Option<PathBuf>,
    /// Check the bundle's signature with this public key before pushing.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// Push a bundle without a signature (devices refuse it unless configured otherwise).
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Name in the inbox (default: MODEL-VERSION-HASH from the manifest).
    #[arg(long)]
    pub name: Option<String>,
    /// SSH client program.
    #[arg(long, default_value = "ssh")]
    pub ssh: String,
    /// Extra `ssh -o` options, e.g. `-o Port=2222` (repeatable).
    #[arg(short = 'o', long = "ssh-option")]
    pub ssh_options: Vec<String>,
}

/// Where a push goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `[user@]host` and the inbox directory there.
    Ssh {
        /// `[user@]host`.
        host: String,
        /// Inbox directory on the host.
        dir: String,
    },
    /// A local inbox directory.
    Local(PathBuf),
}

impl Target {
    /// Parses `--to`: `host:dir`, `user@host:`, or a path (anything with a `/` before the first
    /// `:`, or no `:` at all).
    pub fn parse(to: &str) -> Result<Target> {
        match to.split_once(':') {
            Some((host, dir)) if !host.is_empty() && !host.contains('/') => {
                if host.starts_with('-') || host.chars().any(char::is_whitespace) {
                    bail!("--to {to:?}: `{host}` is not a host name");
                }
                let dir = if dir.is_empty() {
                    StoreLayout::installed().inbox().display().to_string()
                } else {
                    dir.to_string()
                };
                Ok(Target::Ssh {
                    host: host.to_string(),
                    dir,
                })
            }
            _ if to.is_empty() => bail!("--to is empty"),
            _ => Ok(Target::Local(PathBuf::from(to))),
        }
    }
}

use emotion_trainer::fleet::remote::{receive_script as remote_script, shell_quote};

/// Opens the bundle the device's way; a `.tar` is unpacked into `scratch` first.
fn open_bundle(args: &PushArgs, scratch: &Path) -> Result<(VerifiedBundle, PathBuf)> {
    let dir = if args.bundle.is_file() {
        let dir = scratch.join("bundle");
        bundle_tar::unpack(&args.bundle, &dir)
            .with_context(|| format!("unpacking {}", args.bundle.display()))?;
        dir
    } else {
        args.bundle.clone()
    };
    let policy = match &args.public_key {
        Some(p) => TrustPolicy::require(
            read_public_key(p)
                .with_context(|| format!("reading the public key {}", p.display()))?,
        ),
        None => TrustPolicy::AllowUnsigned,
    };
    let bundle = Bundle::open(&dir, &policy)
        .with_context(|| format!("checking the bundle {}", args.bundle.display()))?;
    let has_signature = dir.join(emotion_shared::bundle::SIGNATURE_FILE).exists();
    if !has_signature && !args.allow_unsigned {
        bail!(
            "{} is not signed: devices refuse unsigned bundles. Export it with --sign-key, or \
             pass --allow-unsigned if the device is configured to accept them",
            args.bundle.display()
        );
    }
    if has_signature && args.public_key.is_none() {
        tracing::warn!(
            "the signature was not checked here (no --public-key); the device checks it"
        );
    }
    Ok((bundle, dir))
}

/// A file-name-safe inbox name for the bundle.
fn inbox_name(bundle: &VerifiedBundle) -> String {
    let m = bundle.manifest();
    let raw = format!(
        "{}-{}-{}",
        m.model.name,
        m.model.version,
        &m.onnx.sha256.to_hex()[..12]
    );
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Runs `emotion-train push`.
pub fn run(args: PushArgs) -> Result<()> {
    let scratch = tempfile::tempdir().context("making a scratch directory")?;
    let (bundle, dir) = open_bundle(&args, scratch.path())?;
    let name = match &args.name {
        Some(n) if n.is_empty() || n.starts_with('.') || n.contains('/') => {
            bail!("--name {n:?}: a bundle name is a plain file name that does not start with `.`")
        }
        Some(n) => n.clone(),
        None => inbox_name(&bundle),
    };
    let mut tar = Vec::new();
    bundle_tar::pack_to(&dir, &mut tar).context("packing the bundle")?;
    if let Some(inventory) = &args.inventory {
        return run_fleet(&args, inventory, &bundle, name, &tar);
    }
    let to = args.to.clone().unwrap_or_default();
    let target = Target::parse(&to)?;
    match target {
        Target::Local(inbox) => push_local(&tar, &inbox, &name)?,
        Target::Ssh { host, dir: inbox } => push_ssh(&args, &host, &inbox, &name, &tar)?,
    }
    println!(
        "pushed {} {} ({} bytes, {}) as {name} to {}",
        bundle.manifest().model.name,
        bundle.manifest().model.version,
        tar.len(),
        bundle.signature(),
        to
    );
    Ok(())
}

/// The staged rollout to an inventory's devices: prints the table, writes the JSON report,
/// fails when the rollout stopped.
fn run_fleet(
    args: &PushArgs,
    inventory: &Path,
    bundle: &VerifiedBundle,
    name: String,
    tar: &[u8],
) -> Result<()> {
    use emotion_trainer::fleet;
    let mut inv = fleet::Inventory::load(inventory)?;
    if let Some(group) = &args.group {
        inv.only_group(group)?;
    }
    if args.rollback {
        inv.rollout.rollback = true;
    }
    let m = bundle.manifest();
    let release = fleet::Release {
        name,
        model: m.model.name.clone(),
        version: m.model.version.clone(),
        sha256: m.onnx.sha256.to_hex(),
    };
    let timing = fleet::Timing {
        timeout: std::time::Duration::from_secs(args.timeout.unwrap_or(inv.rollout.timeout_s)),
        poll: std::time::Duration::from_millis(500),
    };
    let report = fleet::rollout(&fleet::SshFleet, &inv, &release, tar, timing);
    print!("{}", report.table());
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing the report {}", path.display()))?;
    }
    if let Some(stop) = &report.stopped_at {
        bail!("the rollout stopped at {}: {}", stop.host, stop.reason);
    }
    Ok(())
}

/// Unpacks the bundle archive `tar` into a hidden directory of `inbox` and renames it to
/// `name`.
fn push_local(tar: &[u8], inbox: &Path, name: &str) -> Result<()> {
    if !inbox.is_dir() {
        bail!(
            "{} is not a directory: give the device's model inbox (STORE/inbox)",
            inbox.display()
        );
    }
    let dest = inbox.join(name);
    if dest.exists() {
        bail!("{} already exists", dest.display());
    }
    let tmp = inbox.join(StoreLayout::staging_name(name, std::process::id()));
    bundle_tar::unpack_from(tar, "bundle", &tmp)
        .with_context(|| format!("copying the bundle to {}", tmp.display()))?;
    std::fs::rename(&tmp, &dest).with_context(|| {
        let _ = std::fs::remove_dir_all(&tmp);
        format!("renaming {} to {}", tmp.display(), dest.display())
    })?;
    Ok(())
}

fn push_ssh(args: &PushArgs, host: &str, inbox: &str, name: &str, tar: &[u8]) -> Result<()> {
    let mut cmd = Command::new(&args.ssh);
    cmd.args(["-o", "BatchMode=yes"]);
    for o in &args.ssh_options {
        cmd.args(["-o", o]);
    }
    cmd.arg(host)
        .arg(format!(
            "sh -c {}",
            shell_quote(&remote_script(inbox, name))
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tracing::info!("{} {host}: unpacking into {inbox}/{name}", args.ssh);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting `{}` (is an SSH client installed?)", args.ssh))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A remote side that fails early closes the pipe: its stderr says why.
        let _ = stdin.write_all(tar);
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for `{}`", args.ssh))?;
    if !out.status.success() {
        bail!(
            "pushing to {host}:{inbox} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let placed = String::from_utf8_lossy(&out.stdout);
    tracing::info!("the device has {}", placed.trim());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_as_ssh_or_local() {
        assert_eq!(
            Target::parse("pi@raspberrypi:").unwrap(),
            Target::Ssh {
                host: "pi@raspberrypi".into(),
                dir: "/var/lib/emotion-edge/models/inbox".into()
            }
        );
        assert_eq!(
            Target::parse("jetson:/srv/models/inbox").unwrap(),
            Target::Ssh {
                host: "jetson".into(),
                dir: "/srv/models/inbox".into()
            }
        );
        assert_eq!(
            Target::parse("./store/inbox").unwrap(),
            Target::Local("./store/inbox".into())
        );
        assert_eq!(
            Target::parse("/abs/in:box").unwrap(),
            Target::Local("/abs/in:box".into())
        );
        assert!(Target::parse("-oProxyCommand=x:dir").is_err());
        assert!(Target::parse("").is_err());
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        let s = remote_script("/in box", "m'1");
        assert!(s.contains(r"inbox='/in box'"), "{s}");
        assert!(s.contains(r"name='m'\''1'"), "{s}");
    }
}
