//! The inventory: which devices there are, how to reach them and how to roll out to them.
//!
//! ```toml
//! [defaults]                      # for every host unless it says otherwise
//! ssh = "ssh"                     # the SSH client program
//! ssh_options = ["ConnectTimeout=5"]
//! store = "/var/lib/emotion-edge/models"   # the device's model store (inbox = STORE/inbox)
//! edge = "emotion-edge"           # the edge program on the device
//!
//! [rollout]
//! canary = "canary"               # this group first, one device at a time
//! wave_size = 5                   # then the others, this many at a time
//! timeout_s = 120                 # per device, for the new model to run
//! rollback = true                 # on a failure, roll the updated devices back
//!
//! [[host]]
//! name = "pi-01"
//! address = "pi@10.0.0.11"        # the SSH destination (default: name)
//! groups = ["canary", "room-4"]
//!
//! [[host]]
//! name = "jetson-02"
//! store = "/srv/emotion/models"
//! inbox = "/srv/emotion/models/inbox"
//! ssh_options = ["Port=2222"]
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::FleetError;

/// Defaults every host takes unless it says otherwise.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Defaults {
    /// The SSH client program.
    pub ssh: String,
    /// `ssh -o` options.
    pub ssh_options: Vec<String>,
    /// The device's model store.
    pub store: String,
    /// The device's inbox (default: `STORE/inbox`).
    pub inbox: Option<String>,
    /// The edge program on the device.
    pub edge: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            ssh: "ssh".into(),
            ssh_options: Vec::new(),
            store: emotion_shared::store_layout::DEFAULT_STORE.into(),
            inbox: None,
            edge: "emotion-edge".into(),
        }
    }
}

/// How the rollout proceeds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// The group updated first, one device at a time (none: no canary).
    pub canary: Option<String>,
    /// Devices per wave after the canaries.
    pub wave_size: usize,
    /// Seconds a device has to run the new model.
    pub timeout_s: u64,
    /// Roll the devices already updated back when the rollout stops.
    pub rollback: bool,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            canary: Some("canary".into()),
            wave_size: 5,
            timeout_s: 120,
            rollback: false,
        }
    }
}

/// One host as written in the file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    name: String,
    address: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    store: Option<String>,
    inbox: Option<String>,
    ssh_options: Option<Vec<String>>,
    ssh: Option<String>,
    edge: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    rollout: RolloutConfig,
    #[serde(default)]
    host: Vec<HostEntry>,
}

/// A device with everything needed to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The name in reports.
    pub name: String,
    /// The SSH destination.
    pub address: String,
    /// Its groups.
    pub groups: Vec<String>,
    /// Its model store.
    pub store: String,
    /// Its inbox.
    pub inbox: String,
    /// The SSH client program.
    pub ssh: String,
    /// `ssh -o` options.
    pub ssh_options: Vec<String>,
    /// The edge program on the device.
    pub edge: String,
}

/// A parsed inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The hosts, in file order.
    pub hosts: Vec<Host>,
    /// How to roll out.
    pub rollout: RolloutConfig,
}

impl Inventory {
    /// Parses inventory text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Inventory, FleetError> {
        let bad = |message: String| FleetError::Inventory {
            path: origin.to_path_buf(),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if file.host.is_empty() {
            return Err(bad("no [[host]] entries".into()));
        }
        if file.rollout.wave_size == 0 {
            return Err(bad("rollout.wave_size must be at least 1".into()));
        }
        let d = file.defaults;
        let mut hosts: Vec<Host> = Vec::new();
        for h in file.host {
            if hosts.iter().any(|o| o.name == h.name) {
                return Err(bad(format!("host {:?} appears twice", h.name)));
            }
            let address = h.address.unwrap_or_else(|| h.name.clone());
            if address.starts_with('-') || address.chars().any(char::is_whitespace) {
                return Err(bad(format!(
                    "host {}: {address:?} is not an SSH destination",
                    h.name
                )));
            }
            let store = h.store.unwrap_or_else(|| d.store.clone());
            let inbox = h.inbox.or_else(|| d.inbox.clone()).unwrap_or_else(|| {
                format!(
                    "{}/{}",
                    store.trim_end_matches('/'),
                    emotion_shared::store_layout::INBOX
                )
            });
            hosts.push(Host {
                name: h.name,
                address,
                groups: h.groups,
                store,
                inbox,
                ssh: h.ssh.unwrap_or_else(|| d.ssh.clone()),
                ssh_options: h.ssh_options.unwrap_or_else(|| d.ssh_options.clone()),
                edge: h.edge.unwrap_or_else(|| d.edge.clone()),
            });
        }
        if let Some(c) = &file.rollout.canary
            && !hosts.iter().any(|h| h.groups.contains(c))
        {
            tracing::warn!("{}: no host is in the canary group {c:?}", origin.display());
        }
        Ok(Inventory {
            hosts,
            rollout: file.rollout,
        })
    }

    /// Reads and parses an inventory file.
    pub fn load(path: &Path) -> Result<Inventory, FleetError> {
        let text = std::fs::read_to_string(path).map_err(|e| FleetError::Inventory {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Only the hosts in `group`.
    pub fn only_group(&mut self, group: &str) -> Result<(), FleetError> {
        self.hosts.retain(|h| h.groups.iter().any(|g| g == group));
        if self.hosts.is_empty() {
            return Err(FleetError::Inventory {
                path: PathBuf::from("(inventory)"),
                message: format!("no host is in group {group:?}"),
            });
        }
        Ok(())
    }

    /// The waves: the canary group's hosts one by one, then the others `wave_size` at a time;
    /// indices into [`Inventory::hosts`].
    pub fn waves(&self) -> Vec<Vec<usize>> {
        let is_canary = |h: &Host| {
            self.rollout
                .canary
                .as_ref()
                .is_some_and(|c| h.groups.contains(c))
        };
        let mut waves: Vec<Vec<usize>> = (0..self.hosts.len())
            .filter(|&i| is_canary(&self.hosts[i]))
            .map(|i| vec![i])
            .collect();
        let rest: Vec<usize> = (0..self.hosts.len())
            .filter(|&i| !is_canary(&self.hosts[i]))
            .collect();
        waves.extend(rest.chunks(self.rollout.wave_size).map(<[usize]>::to_vec));
        waves
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        [defaults]
        ssh_options = ["ConnectTimeout=5"]
        [rollout]
        wave_size = 2
        [[host]]
        name = "a"
        [[host]]
        name = "b"
        address = "pi@b.lan"
        groups = ["canary"]
        [[host]]
        name = "c"
        store = "/srv/m"
        [[host]]
        name = "d"
        ssh_options = ["Port=2222"]
    "#;

    #[test]
    fn hosts_take_the_defaults_and_canaries_go_first() {
        let inv = Inventory::parse(EXAMPLE, Path::new("inv.toml")).expect("parses");
        assert_eq!(inv.hosts[0].address, "a");
        assert_eq!(inv.hosts[0].inbox, "/var/lib/emotion-edge/models/inbox");
        assert_eq!(inv.hosts[1].address, "pi@b.lan");
        assert_eq!(inv.hosts[2].inbox, "/srv/m/inbox");
        assert_eq!(inv.hosts[0].ssh_options, ["ConnectTimeout=5"]);
        assert_eq!(inv.hosts[3].ssh_options, ["Port=2222"]);
        assert_eq!(inv.waves(), vec![vec![1], vec![0, 2], vec![3]]);
    }

    #[test]
    fn mistakes_are_named() {
        let e = Inventory::parse(
            "[[host]]\nname = \"a\"\nadress = \"x\"\n",
            Path::new("i.toml"),
        )
        .expect_err("typo")
        .to_string();
        assert!(e.contains("i.toml") && e.contains("adress"), "{e}");
        let e = Inventory::parse(
            "[[host]]\nname = \"a\"\n[[host]]\nname = \"a\"\n",
            Path::new("i"),
        )
        .expect_err("twice")
        .to_string();
        assert!(e.contains("twice"), "{e}");
        assert!(Inventory::parse("", Path::new("i")).is_err());
    }
}
