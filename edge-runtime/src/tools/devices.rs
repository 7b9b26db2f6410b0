//! What a device offers the runtime (`emotion-edge devices`): cameras, serial ports, I2C
//! buses, whether the SeetaFace model is built in, whether the BlazeFace models are
//! installed, and what tract's kernels make of the CPU.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::detect::{
    self, BlazeFaceConfig,
    blazeface::{self, BlazeFaceVariant},
};

/// The devices found on this machine.
#[derive(Debug, Clone)]
pub struct Devices {
    /// V4L2 cameras (path, name); `None` when this build has no V4L2 support.
    pub cameras: Option<Vec<(String, String)>>,
    /// Serial ports (name, kind), or why they could not be listed.
    pub serial_ports: Result<Vec<(String, String)>, String>,
    /// `/dev/i2c-*` buses.
    pub i2c_buses: Vec<String>,
    /// Whether the SeetaFace model is built into this binary.
    pub seeta_built_in: bool,
    /// The BlazeFace models at their install location: one line each (variant, path, state).
    pub blazeface: Vec<String>,
    /// The CPU as tract's kernels see it, which matrix kernels run small products and whose
    /// depthwise and pointwise convolutions and max pools run.
    pub cpu: Vec<String>,
}

impl Default for Devices {
    fn default() -> Self {
        Devices {
            cameras: None,
            serial_ports: Ok(Vec::new()),
            i2c_buses: Vec::new(),
            seeta_built_in: false,
            blazeface: Vec::new(),
            cpu: Vec::new(),
        }
    }
}

/// Looks for cameras, serial ports and I2C buses.
pub fn find() -> Devices {
    #[cfg(feature = "v4l")]
    let cameras = Some(crate::source::v4l2::list_cameras());
    #[cfg(not(feature = "v4l"))]
    let cameras = None;
    let serial_ports = serialport::available_ports()
        .map(|ports| {
            ports
                .into_iter()
                .map(|p| (p.port_name, format!("{:?}", p.port_type)))
                .collect()
        })
        .map_err(|e| e.to_string());
    let mut i2c_buses: Vec<String> = glob::glob("/dev/i2c-*")
        .map(|g| g.flatten().map(|p| p.display().to_string()).collect())
        .unwrap_or_default();
    i2c_buses.sort();
    Devices {
        cameras,
        serial_ports,
        i2c_buses,
        seeta_built_in: detect::EMBEDDED_MODEL_AVAILABLE,
        blazeface: [BlazeFaceVariant::Short, BlazeFaceVariant::Full]
            .into_iter()
            .map(blazeface_state)
            .collect(),
        cpu: vec![
            crate::kernel_choice::cpu_summary(),
            format!("matrix kernels: {}", crate::kernel_choice::describe()),
            format!("{}: {}", crate::kernels::LAYERS, crate::kernels::describe()),
        ],
    }
}

/// Whether the variant's model is installed with the pinned hash.
fn blazeface_state(variant: BlazeFaceVariant) -> String {
    let config = BlazeFaceConfig {
        variant,
        ..BlazeFaceConfig::default()
    };
    let path = config.model_path();
    let state = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "not installed".to_string(),
        Err(e) => format!("unreadable: {e}"),
        Ok(bytes) => {
            let found = hex::encode(Sha256::digest(&bytes));
            match blazeface::accepted_as(&found, &config.accepted_sha256()) {
                Some(0) => "installed, sha256 as pinned".to_string(),
                Some(_) => "installed, an earlier converter's file, accepted; convert and install \
                            it again for the current form"
                    .to_string(),
                None => format!("sha256 {found} is not the pinned one: it will be refused"),
            }
        }
    };
    format!("{variant:?} range: {} ({state})", path.display())
}

impl fmt::Display for Devices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cameras (V4L2):")?;
        match &self.cameras {
            None => writeln!(f, "  (this build has no V4L2 support)")?,
            Some(c) if c.is_empty() => writeln!(f, "  none")?,
            Some(c) => {
                for (path, name) in c {
                    writeln!(f, "  {path}  {name}")?;
                }
            }
        }
        writeln!(f, "serial ports:")?;
        match &self.serial_ports {
            Ok(p) if p.is_empty() => writeln!(f, "  none")?,
            Ok(p) => {
                for (name, kind) in p {
                    writeln!(f, "  {name}  {kind}")?;
                }
            }
            Err(e) => writeln!(f, "  cannot list: {e}")?,
        }
        writeln!(f, "I2C buses:")?;
        if self.i2c_buses.is_empty() {
            writeln!(
                f,
                "  none (on a Raspberry Pi: enable I2C with raspi-config)"
            )?;
        }
        for b in &self.i2c_buses {
            writeln!(f, "  {b}")?;
        }
        write!(
            f,
            "face detector model: {}",
            if self.seeta_built_in {
                "SeetaFace frontal, built in"
            } else {
                "not built in (set detect.seeta.model in the config)"
            }
        )?;
        for line in &self.blazeface {
            write!(f, "\nBlazeFace model, {line}")?;
        }
        for line in &self.cpu {
            write!(f, "\nCPU: {line}")?;
        }
        Ok(())
    }
}
