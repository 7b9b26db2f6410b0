//! Chooses where tensors live: `--device auto|cpu|cuda[:N]`.
//!
//! The linker drops `libtorch_cuda.so` from the binary (nothing references its symbols
//! directly), so a CUDA build of libtorch looks CPU-only unless that library is loaded by hand.
//! [`load_cuda_backend`] does so once at start-up, from the libtorch directory the trainer was
//! built against, then from the loader's search path; without it the trainer says why and runs
//! on the CPU.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use tch::Device;

/// What the user asked for with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The first CUDA device if CUDA works, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("unknown device {s:?}: use auto, cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Why CUDA is not used, or `None` when `libtorch_cuda.so` was loaded.
static CUDA_LOAD: OnceLock<Result<(), String>> = OnceLock::new();

/// Loads `libtorch_cuda.so` (once) so that libtorch registers its CUDA backend. Returns why it
/// could not, which is the normal case with the CPU-only libtorch.
pub fn load_cuda_backend() -> Result<(), String> {
    CUDA_LOAD
        .get_or_init(|| {
            let built_against = env!("EMOTION_LIBTORCH_LIB");
            let mut candidates = Vec::new();
            if !built_against.is_empty() {
                candidates.push(format!("{built_against}/libtorch_cuda.so"));
            }
            candidates.push("libtorch_cuda.so".to_string());
            let mut reasons = Vec::new();
            for path in &candidates {
                // SAFETY: loading libtorch's own CUDA library runs its static initialisers, which
                // register the CUDA backend with the libtorch already loaded in this process.
                #[allow(unsafe_code)]
                match unsafe { libloading::Library::new(path) } {
                    Ok(lib) => {
                        // Keep it loaded for the life of the process.
                        std::mem::forget(lib);
                        return Ok(());
                    }
                    Err(e) => reasons.push(format!("{path}: {e}")),
                }
            }
            Err(reasons.join("; "))
        })
        .clone()
}

/// Resolves `choice` to a device, loading the CUDA backend if needed. `Auto` falls back to the
/// CPU with a log line saying why; an explicit `cuda:N` that cannot be used is an error.
pub fn resolve(choice: DeviceChoice) -> Result<Device, String> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => match cuda_device(0) {
            Ok(d) => Ok(d),
            Err(why) => {
                tracing::info!("using the CPU: {why}");
                Ok(Device::Cpu)
            }
        },
        DeviceChoice::Cuda(n) => cuda_device(n),
    }
}

fn cuda_device(n: usize) -> Result<Device, String> {
    if let Err(why) = load_cuda_backend() {
        return Err(format!(
            "CUDA is not available: libtorch_cuda.so could not be loaded ({why}). \
             The default libtorch is CPU-only; run scripts/setup-libtorch --cuda on a machine \
             with an NVIDIA GPU and rebuild"
        ));
    }
    let count = tch::Cuda::device_count();
    if count <= 0 {
        return Err(
            "CUDA is not available: libtorch_cuda.so loaded but no GPU was found \
                    (check the NVIDIA driver with nvidia-smi)"
                .to_string(),
        );
    }
    if n as i64 >= count {
        return Err(format!(
            "cuda:{n} does not exist: this machine has {count} CUDA device(s)"
        ));
    }
    Ok(Device::Cuda(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_choices() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("CPU".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
        assert!("tpu".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn cpu_always_resolves_and_auto_never_fails() {
        assert_eq!(resolve(DeviceChoice::Cpu), Ok(Device::Cpu));
        assert!(resolve(DeviceChoice::Auto).is_ok());
    }

    #[test]
    fn explicit_cuda_without_gpu_is_a_clear_error() {
        if tch::Cuda::is_available() {
            return; // a GPU machine: nothing to check here
        }
        let err = resolve(DeviceChoice::Cuda(0)).unwrap_err();
        assert!(err.contains("CUDA is not available"), "{err}");
    }
}
