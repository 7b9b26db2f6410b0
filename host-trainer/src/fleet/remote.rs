//! What the rollout does on a device, each over one `ssh` connection with the system's client
//! (`BatchMode=yes`: keys and agent only, nothing is asked for): put a bundle into the inbox
//! atomically, read `emotion-edge status`, ask for `emotion-edge rollback`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::FleetError;
use super::inventory::Host;
use emotion_shared::store_layout::StoreLayout;

/// `s` quoted for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script a device runs to receive a bundle: unpack the tar on stdin into a hidden
/// directory of the inbox `dir`, then rename it to `name`, so the device never sees half a
/// bundle. Prints the final path.
pub fn receive_script(dir: &str, name: &str) -> String {
    format!(
        "set -eu\n\
         umask 002\n\
         inbox={dir}\n\
         name={name}\n\
         [ -d \"$inbox\" ] || {{ echo \"no inbox $inbox on $(hostname): is emotion-edge installed?\" >&2; exit 3; }}\n\
         [ -e \"$inbox/$name\" ] && {{ echo \"$inbox/$name already exists\" >&2; exit 4; }}\n\
         tmp=\"$inbox/{staging}\"\n\
         rm -rf \"$tmp\"\n\
         mkdir \"$tmp\"\n\
         trap 'rm -rf \"$tmp\"' EXIT\n\
         tar -xf - -C \"$tmp\"\n\
         mv \"$tmp\" \"$inbox/$name\"\n\
         trap - EXIT\n\
         echo \"$inbox/$name\"\n",
        dir = shell_quote(dir),
        name = shell_quote(name),
        // The remote shell's process id tells concurrent pushes apart.
        staging = StoreLayout::staging_name("$name", "$$"),
    )
}

/// Runs `script` with `sh -c` on `address` through `ssh` (with `options` as `-o`), feeding
/// `input`; returns its standard output.
pub fn ssh_run(
    ssh: &str,
    options: &[String],
    address: &str,
    script: &str,
    input: &[u8],
) -> Result<String, FleetError> {
    let fail = |message: String| FleetError::Remote {
        host: address.to_string(),
        message,
    };
    let mut cmd = Command::new(ssh);
    cmd.args(["-o", "BatchMode=yes"]);
    for o in options {
        cmd.args(["-o", o]);
    }
    cmd.arg(address)
        .arg(format!("sh -c {}", shell_quote(script)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        fail(format!(
            "cannot start `{ssh}` (is an SSH client installed?): {e}"
        ))
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A remote side that fails early closes the pipe: its stderr says why.
        let _ = stdin.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("waiting for `{ssh}`: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "{} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_on(host: &Host, script: &str, input: &[u8]) -> Result<String, FleetError> {
    ssh_run(&host.ssh, &host.ssh_options, &host.address, script, input).map_err(|e| match e {
        FleetError::Remote { message, .. } => FleetError::Remote {
            host: host.name.clone(),
            message,
        },
        e => e,
    })
}

/// Puts the bundle archive `tar` into `host`'s inbox as `name`; returns the path there.
pub fn push(host: &Host, name: &str, tar: &[u8]) -> Result<String, FleetError> {
    run_on(host, &receive_script(&host.inbox, name), tar).map(|s| s.trim().to_string())
}

/// The running model as `emotion-edge status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningModel {
    /// `name version (fp32|int8)`.
    pub id: String,
    /// SHA-256 of the ONNX file.
    pub sha256: String,
}

/// A refused bundle as `emotion-edge status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Inbox name.
    pub bundle: String,
    /// Why.
    pub reason: String,
}

/// What the rollout reads from `emotion-edge status` (other fields are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// Running, alive and current.
    pub healthy: bool,
    /// The model of the last frame.
    pub model: Option<RunningModel>,
    /// The last refused bundle.
    pub last_rejected: Option<Refusal>,
}

/// `emotion-edge status --store STORE` on `host`.
pub fn status(host: &Host) -> Result<DeviceStatus, FleetError> {
    let script = format!(
        "exec {} status --store {}",
        shell_quote(&host.edge),
        shell_quote(&host.store)
    );
    let text = run_on(host, &script, &[])?;
    serde_json::from_str(&text).map_err(|e| FleetError::Remote {
        host: host.name.clone(),
        message: format!(
            "`emotion-edge status` printed something else than its JSON ({e}): {text}"
        ),
    })
}

/// `emotion-edge rollback --store STORE --wait SECONDS` on `host`; returns what it said.
pub fn rollback(host: &Host, wait_s: u64) -> Result<String, FleetError> {
    let script = format!(
        "exec {} rollback --store {} --wait {wait_s}",
        shell_quote(&host.edge),
        shell_quote(&host.store)
    );
    run_on(host, &script, &[]).map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        let s = receive_script("/in box", "m'1");
        assert!(s.contains(r"inbox='/in box'"), "{s}");
        assert!(s.contains(r"name='m'\''1'"), "{s}");
    }

    #[test]
    fn status_reads_what_it_needs_from_the_edge() {
        let text = r#"{"schema":1,"healthy":true,"alive":true,"model":{"id":"m 1 (fp32)",
            "name":"m","version":"1","sha256":"ab","signer":"unsigned"},"frames":3,
            "last_rejected":{"bundle":"v2","reason":"bad","unix":5}}"#;
        let s: DeviceStatus = serde_json::from_str(text).expect("parses");
        assert_eq!(s.model.expect("model").sha256, "ab");
        assert_eq!(s.last_rejected.expect("refusal").bundle, "v2");
    }
}
