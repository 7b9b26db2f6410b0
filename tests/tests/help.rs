//! Smoke test: both binaries start and describe themselves.

use std::process::Command;

use emotion_tests::bin_path;

fn help_of(name: &str) -> String {
    let path = bin_path(name);
    let out = Command::new(&path)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {}: {e} (build the workspace first)",
                path.display()
            )
        });
    assert!(out.status.success(), "{name} --help failed: {out:?}");
    String::from_utf8(out.stdout).expect("help is UTF-8")
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
