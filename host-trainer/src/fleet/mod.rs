//! Staged rollout of one bundle to many devices (`emotion-train push BUNDLE --inventory
//! FILE`): the [`inventory`] names the devices, their groups and how to reach them; the
//! canary group goes first, one device at a time, then the others in waves. After each wave
//! the rollout waits until every device of the wave reports the new model as running
//! (`emotion-edge status` over SSH: the ONNX file's sha256, in a healthy service). It stops
//! at the first device that refuses the bundle, fails to receive it or does not run it in
//! time; the devices after it are not touched, and with `rollback` the devices this rollout
//! updated go back to their previous model (`emotion-edge rollback`). The [`Report`] says for
//! every device what it ran before and after and what happened, as a table and as JSON.
//!
//! The device operations go through the [`Fleet`] trait ([`SshFleet`] over SSH; tests use
//! fakes), so the rollout's decisions are tested without devices.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub mod inventory;
pub mod remote;

pub use inventory::{Host, Inventory};
pub use remote::DeviceStatus;

/// Why a rollout could not run or a device operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The inventory file is unusable.
    #[error("inventory {path}: {message}")]
    Inventory {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A command on a device failed.
    #[error("{host}: {message}")]
    Remote {
        /// The host (its inventory name).
        host: String,
        /// What went wrong (the remote side's stderr).
        message: String,
    },
}

/// What the rollout does on a device.
pub trait Fleet {
    /// Puts the bundle archive `tar` into the host's inbox as `name`.
    fn push(&self, host: &Host, name: &str, tar: &[u8]) -> Result<String, FleetError>;
    /// The host's service status.
    fn status(&self, host: &Host) -> Result<DeviceStatus, FleetError>;
    /// Rolls the host back to its previous model.
    fn rollback(&self, host: &Host) -> Result<String, FleetError>;
}

/// The devices reached over SSH ([`remote`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SshFleet;

impl Fleet for SshFleet {
    fn push(&self, host: &Host, name: &str, tar: &[u8]) -> Result<String, FleetError> {
        remote::push(host, name, tar)
    }

    fn status(&self, host: &Host) -> Result<DeviceStatus, FleetError> {
        remote::status(host)
    }

    fn rollback(&self, host: &Host) -> Result<String, FleetError> {
        remote::rollback(host, 30)
    }
}

/// The bundle being rolled out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Its name in every inbox.
    pub name: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// SHA-256 of its ONNX file: what a device that runs it reports.
    pub sha256: String,
}

/// What happened on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Runs the new model.
    Updated,
    /// Ran it already; nothing was pushed.
    AlreadyRunning,
    /// Refused the bundle (the device's reason).
    Rejected,
    /// Did not run the new model within the timeout.
    Timeout,
    /// Could not be reached, or the bundle could not be delivered.
    Unreachable,
    /// Updated, then rolled back when the rollout stopped.
    RolledBack,
    /// Updated; the rollback failed.
    RollbackFailed,
    /// The rollout stopped before this device.
    NotReached,
}

/// One device's line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// Inventory name.
    pub host: String,
    /// Wave number (0: the first).
    pub wave: usize,
    /// What happened.
    pub outcome: Outcome,
    /// Details (the device's reason, the error).
    pub detail: String,
    /// The model it ran before (`id sha256[..12]`), when known.
    pub before: Option<String>,
    /// The model it runs now, as last seen.
    pub after: Option<String>,
    /// Seconds the device took.
    pub seconds: f64,
}

/// The result of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was rolled out.
    pub release: Release,
    /// Every device updated (or already running it).
    pub complete: bool,
    /// Where and why it stopped.
    pub stopped_at: Option<Stop>,
    /// One line per device, in rollout order.
    pub devices: Vec<DeviceReport>,
}

/// Where a rollout stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stop {
    /// The device.
    pub host: String,
    /// Its outcome.
    pub outcome: Outcome,
    /// Why.
    pub reason: String,
}

/// How long to wait and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Per device, for the new model to run.
    pub timeout: Duration,
    /// Between two status reads.
    pub poll: Duration,
}

fn describe(s: &DeviceStatus) -> Option<String> {
    s.model
        .as_ref()
        .map(|m| format!("{} {}", m.id, &m.sha256[..m.sha256.len().min(12)]))
}

/// Waits until `host` runs `release` (or refuses it, or time runs out).
fn wait_for(
    fleet: &dyn Fleet,
    host: &Host,
    release: &Release,
    timing: Timing,
) -> (Outcome, String, Option<String>) {
    let deadline = Instant::now() + timing.timeout;
    let mut last = None;
    let mut last_error = String::new();
    loop {
        match fleet.status(host) {
            Ok(s) => {
                last = describe(&s);
                if s.healthy && s.model.as_ref().is_some_and(|m| m.sha256 == release.sha256) {
                    return (Outcome::Updated, "running".into(), last);
                }
                if let Some(r) = s.last_rejected.filter(|r| r.bundle == release.name) {
                    return (Outcome::Rejected, r.reason, last);
                }
                last_error.clear();
            }
            Err(e) => last_error = e.to_string(),
        }
        if Instant::now() >= deadline {
            let detail = if last_error.is_empty() {
                format!(
                    "not running the new model after {} s",
                    timing.timeout.as_secs()
                )
            } else {
                format!(
                    "no status after {} s: {last_error}",
                    timing.timeout.as_secs()
                )
            };
            return (Outcome::Timeout, detail, last);
        }
        std::thread::sleep(timing.poll);
    }
}

/// Waits until `host` no longer runs `release` (after a rollback); what it runs then.
fn wait_off(fleet: &dyn Fleet, host: &Host, release: &Release, timing: Timing) -> Option<String> {
    let deadline = Instant::now() + timing.timeout;
    loop {
        let s = fleet.status(host).ok();
        let off = s
            .as_ref()
            .and_then(|s| s.model.as_ref())
            .is_some_and(|m| m.sha256 != release.sha256);
        if off || Instant::now() >= deadline {
            return s.as_ref().and_then(describe);
        }
        std::thread::sleep(timing.poll);
    }
}

/// Rolls `release` (the bundle archive `tar`) out to `inventory`'s hosts; see the module doc.
pub fn rollout(
    fleet: &dyn Fleet,
    inventory: &Inventory,
    release: &Release,
    tar: &[u8],
    timing: Timing,
) -> Report {
    let waves = inventory.waves();
    let mut devices: Vec<DeviceReport> = Vec::new();
    let mut stopped_at: Option<Stop> = None;
    for (wave_no, wave) in waves.iter().enumerate() {
        if stopped_at.is_some() {
            for &i in wave {
                devices.push(DeviceReport {
                    host: inventory.hosts[i].name.clone(),
                    wave: wave_no,
                    outcome: Outcome::NotReached,
                    detail: "the rollout stopped before this device".into(),
                    before: None,
                    after: None,
                    seconds: 0.0,
                });
            }
            continue;
        }
        tracing::info!(
            "wave {wave_no}: {}",
            wave.iter()
                .map(|&i| inventory.hosts[i].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        // Push to the whole wave, then wait for each device of it.
        let mut pending = Vec::new();
        for &i in wave {
            let host = &inventory.hosts[i];
            let t0 = Instant::now();
            let before = fleet.status(host).ok();
            let before_desc = before.as_ref().and_then(describe);
            let mut line = DeviceReport {
                host: host.name.clone(),
                wave: wave_no,
                outcome: Outcome::Updated,
                detail: String::new(),
                before: before_desc.clone(),
                after: before_desc,
                seconds: 0.0,
            };
            if before
                .as_ref()
                .and_then(|s| s.model.as_ref())
                .is_some_and(|m| m.sha256 == release.sha256)
            {
                line.outcome = Outcome::AlreadyRunning;
                line.detail = "runs this model already".into();
                devices.push(line);
                continue;
            }
            match fleet.push(host, &release.name, tar) {
                Ok(path) => {
                    tracing::info!("{}: delivered {path}", host.name);
                    pending.push((devices.len(), i, t0));
                }
                Err(e) => {
                    line.outcome = Outcome::Unreachable;
                    line.detail = e.to_string();
                }
            }
            devices.push(line);
        }
        for (at, i, t0) in pending {
            let host = &inventory.hosts[i];
            let (outcome, detail, after) = wait_for(fleet, host, release, timing);
            tracing::info!("{}: {outcome:?} {detail}", host.name);
            let line = &mut devices[at];
            line.outcome = outcome;
            line.detail = detail;
            line.after = after;
            line.seconds = t0.elapsed().as_secs_f64();
        }
        stopped_at = devices
            .iter()
            .find(|d| !matches!(d.outcome, Outcome::Updated | Outcome::AlreadyRunning))
            .map(|d| Stop {
                host: d.host.clone(),
                outcome: d.outcome.clone(),
                reason: d.detail.clone(),
            });
    }
    if stopped_at.is_some() && inventory.rollout.rollback {
        for line in devices.iter_mut().filter(|d| d.outcome == Outcome::Updated) {
            let Some(host) = inventory.hosts.iter().find(|h| h.name == line.host) else {
                continue;
            };
            match fleet.rollback(host) {
                Ok(said) => {
                    line.outcome = Outcome::RolledBack;
                    line.detail = said.lines().last().unwrap_or("rolled back").to_string();
                    line.after = wait_off(fleet, host, release, timing);
                }
                Err(e) => {
                    line.outcome = Outcome::RollbackFailed;
                    line.detail = e.to_string();
                }
            }
        }
    }
    Report {
        release: release.clone(),
        complete: stopped_at.is_none(),
        stopped_at,
        devices,
    }
}

impl Report {
    /// The summary table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<16} {:>4}  {:<16} {:<34} {:<34} {}\n",
            "HOST", "WAVE", "OUTCOME", "BEFORE", "AFTER", "DETAIL"
        );
        for d in &self.devices {
            let outcome = serde_json::to_value(&d.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<16} {:>4}  {:<16} {:<34} {:<34} {}\n",
                d.host,
                d.wave,
                outcome,
                d.before.as_deref().unwrap_or("-"),
                d.after.as_deref().unwrap_or("-"),
                d.detail
            ));
        }
        match &self.stopped_at {
            None => out.push_str(&format!(
                "rollout of {} {} complete\n",
                self.release.model, self.release.version
            )),
            Some(s) => out.push_str(&format!(
                "rollout of {} {} STOPPED at {}: {}\n",
                self.release.model, self.release.version, s.host, s.reason
            )),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// Devices in memory: `refuse` names the hosts that refuse every bundle.
    struct Fake {
        running: RefCell<HashMap<String, (String, Option<String>)>>,
        refused: RefCell<HashMap<String, String>>,
        refuse: Vec<&'static str>,
        log: RefCell<Vec<String>>,
    }

    impl Fleet for Fake {
        fn push(&self, host: &Host, name: &str, _tar: &[u8]) -> Result<String, FleetError> {
            self.log.borrow_mut().push(format!("push {}", host.name));
            if self.refuse.contains(&host.name.as_str()) {
                self.refused
                    .borrow_mut()
                    .insert(host.name.clone(), name.to_string());
            } else {
                let mut r = self.running.borrow_mut();
                let old = r.get(&host.name).map(|(m, _)| m.clone());
                r.insert(host.name.clone(), ("new".into(), old));
            }
            Ok(format!("inbox/{name}"))
        }

        fn status(&self, host: &Host) -> Result<DeviceStatus, FleetError> {
            let r = self.running.borrow();
            let sha = r
                .get(&host.name)
                .map_or("old".to_string(), |(m, _)| m.clone());
            Ok(DeviceStatus {
                healthy: true,
                model: Some(remote::RunningModel {
                    id: format!("m {sha}"),
                    sha256: sha,
                }),
                last_rejected: self
                    .refused
                    .borrow()
                    .get(&host.name)
                    .map(|b| remote::Refusal {
                        bundle: b.clone(),
                        reason: "signature does not verify".into(),
                    }),
            })
        }

        fn rollback(&self, host: &Host) -> Result<String, FleetError> {
            self.log
                .borrow_mut()
                .push(format!("rollback {}", host.name));
            let mut r = self.running.borrow_mut();
            if let Some((_, Some(old))) = r.get(&host.name).cloned() {
                r.insert(host.name.clone(), (old, None));
            } else {
                r.insert(host.name.clone(), ("old".into(), None));
            }
            Ok("rolled back: running m old".into())
        }
    }

    fn inventory(rollback: bool) -> Inventory {
        let text = format!(
            "[rollout]\nwave_size = 2\nrollback = {rollback}\n\
             [[host]]\nname = \"a\"\n[[host]]\nname = \"b\"\ngroups = [\"canary\"]\n\
             [[host]]\nname = \"c\"\n[[host]]\nname = \"d\"\n[[host]]\nname = \"e\"\n"
        );
        Inventory::parse(&text, std::path::Path::new("t")).expect("inventory")
    }

    fn release() -> Release {
        Release {
            name: "v2".into(),
            model: "m".into(),
            version: "2".into(),
            sha256: "new".into(),
        }
    }

    const FAST: Timing = Timing {
        timeout: Duration::from_millis(50),
        poll: Duration::from_millis(1),
    };

    fn fake(refuse: Vec<&'static str>) -> Fake {
        Fake {
            running: RefCell::default(),
            refused: RefCell::default(),
            refuse,
            log: RefCell::default(),
        }
    }

    #[test]
    fn canary_first_then_waves_and_all_updated() {
        let f = fake(vec![]);
        let r = rollout(&f, &inventory(true), &release(), b"tar", FAST);
        assert!(r.complete, "{}", r.table());
        assert_eq!(
            f.log.borrow().as_slice(),
            ["push b", "push a", "push c", "push d", "push e"]
        );
        let waves: Vec<usize> = r.devices.iter().map(|d| d.wave).collect();
        assert_eq!(waves, [0, 1, 1, 2, 2]);
        // A second run finds every device on it already.
        let again = rollout(&f, &inventory(true), &release(), b"tar", FAST);
        assert!(
            again
                .devices
                .iter()
                .all(|d| d.outcome == Outcome::AlreadyRunning)
        );
    }

    #[test]
    fn a_refusal_stops_the_rollout_and_rolls_the_updated_back() {
        let f = fake(vec!["c"]);
        let r = rollout(&f, &inventory(true), &release(), b"tar", FAST);
        assert!(!r.complete);
        let stop = r.stopped_at.clone().expect("stopped");
        assert_eq!(
            (stop.host.as_str(), stop.outcome.clone()),
            ("c", Outcome::Rejected)
        );
        assert!(stop.reason.contains("signature"), "{stop:?}");
        let outcomes: Vec<(&str, Outcome)> = r
            .devices
            .iter()
            .map(|d| (d.host.as_str(), d.outcome.clone()))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("b", Outcome::RolledBack),
                ("a", Outcome::RolledBack),
                ("c", Outcome::Rejected),
                ("d", Outcome::NotReached),
                ("e", Outcome::NotReached),
            ]
        );
        assert!(!f.log.borrow().iter().any(|l| l == "push d"));
        assert!(r.table().contains("STOPPED at c"), "{}", r.table());
    }
}
