//! The crates stack one way: `emotion-shared` knows neither libtorch nor tract, and the edge
//! runtime never links libtorch. `cargo tree` is the judge.

use std::process::Command;

/// Package names in the dependency tree of `package` (normal and build dependencies).
fn dependencies(package: &str, features: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "tree",
        "--prefix",
        "none",
        "-e",
        "normal,build",
        "-p",
        package,
    ]);
    for f in features {
        cmd.args(["--features", f]);
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    let out = cmd.output().expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn the_edge_runtime_never_links_libtorch_or_hdf5() {
    let deps = dependencies("emotion-edge", &[]);
    assert!(
        deps.iter().any(|d| d == "tract-onnx"),
        "tree not read: {deps:?}"
    );
    for banned in [
        "tch",
        "torch-sys",
        "emotion-trainer",
        "hdf5-metno",
        "hdf5-metno-sys",
    ] {
        assert!(
            !deps.iter().any(|d| d == banned),
            "emotion-edge depends on {banned}"
        );
    }
}

#[test]
fn the_shared_crate_knows_neither_libtorch_nor_tract() {
    for features in [&[][..], &["render"][..]] {
        let deps = dependencies("emotion-shared", features);
        assert!(deps.iter().any(|d| d == "serde"), "tree not read: {deps:?}");
        for d in &deps {
            assert!(
                d != "tch" && d != "torch-sys" && !d.starts_with("tract"),
                "emotion-shared (features {features:?}) depends on {d}"
            );
        }
    }
}
