//! Bakes libtorch's library directory into the binaries' run path, so `emotion-train` and the
//! trainer's tests start without `LD_LIBRARY_PATH`. torch-sys exports the directory it linked
//! against as `DEP_TCH_LIBTORCH_LIB`; the same path is handed to the code as
//! `EMOTION_LIBTORCH_LIB`, where `device.rs` looks for `libtorch_cuda.so`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(dir) => {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
            println!("cargo:rustc-env=EMOTION_LIBTORCH_LIB={dir}");
        }
        Err(_) => println!("cargo:rustc-env=EMOTION_LIBTORCH_LIB="),
    }
}
