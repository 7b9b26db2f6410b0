//! Smoke test: both binaries start and describe themselves (and `emotion-edge devices` the CPU).

use std::process::Command;

use emotion_tests::bin_path;

/// The standard output of `name` run with `args` and the extra environment `env`, which must
/// succeed.
fn stdout_of(name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let path = bin_path(name);
    let out = Command::new(&path)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {} {args:?}: {e} (build the workspace first)",
                path.display()
            )
        });
    assert!(out.status.success(), "{name} {args:?} failed: {out:?}");
    String::from_utf8(out.stdout).expect("output is UTF-8")
}

fn help_of(name: &str) -> String {
    stdout_of(name, &["--help"], &[])
}

#[test]
fn trainer_help_lists_its_subcommands() {
    let help = help_of("emotion-train");
    for sub in [
        "train",
        "eval",
        "import-weights",
        "export",
        "keygen",
        "push",
        "synth",
    ] {
        assert!(
            help.contains(sub),
            "emotion-train --help lacks {sub}:\n{help}"
        );
    }
}

#[test]
fn edge_help_lists_its_subcommands() {
    let help = help_of("emotion-edge");
    for sub in ["run", "classify", "verify", "bench", "listen", "devices"] {
        assert!(
            help.contains(sub),
            "emotion-edge --help lacks {sub}:\n{help}"
        );
    }
}

fn devices_with(env: &[(&str, &str)]) -> String {
    stdout_of("emotion-edge", &["devices"], env)
}

#[test]
fn devices_describes_the_cpu_and_its_kernels() {
    let out = devices_with(&[]);
    let cpu: Vec<&str> = out.lines().filter(|l| l.starts_with("CPU: ")).collect();
    assert!(
        cpu.iter().any(|l| l.contains(std::env::consts::ARCH)),
        "no CPU line names {}:\n{out}",
        std::env::consts::ARCH
    );
    assert!(
        cpu.iter().any(|l| l.starts_with("CPU: matrix kernels: ")),
        "no matrix-kernel line:\n{out}"
    );
    assert!(
        cpu.iter().any(|l| l
            .starts_with("CPU: depthwise and pointwise convolutions, max pools: emotion-edge's (")),
        "no line for our depthwise and pointwise convolutions and max pools:\n{out}"
    );
    // The opt-out reaches the binary: every choice is tract's.
    let out = devices_with(&[("EMOTION_EDGE_KERNEL_CHOICE", "tract")]);
    assert!(
        out.contains("CPU: matrix kernels: tract's own choice"),
        "EMOTION_EDGE_KERNEL_CHOICE=tract not honoured:\n{out}"
    );
    assert!(
        out.contains("CPU: depthwise and pointwise convolutions, max pools: tract's"),
        "EMOTION_EDGE_KERNEL_CHOICE=tract does not reach our operators:\n{out}"
    );
}
