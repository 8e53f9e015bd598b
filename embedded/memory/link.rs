// Shared by the packages' build scripts (`include!`d): puts the memory map for the target's
// architecture where the linker finds it as `memory.x`, and passes the runtime's linker script.
// Link arguments live here rather than in `.cargo/config.toml` rustflags, so the firmware's atomic
// strategy (a rustflags cfg) can be changed from the command line without losing them.
fn link() {
    use std::{env, fs, path::PathBuf};
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    println!("cargo:rerun-if-changed=../memory");
    println!("cargo::rustc-check-cfg=cfg(portable_atomic_unsafe_assume_single_core)");
    println!("cargo:rustc-env=VITALS_TARGET={}", env::var("TARGET").unwrap_or_default());
    if os != "none" {
        return; // host builds (e.g. `cargo check` without --target) link nothing special
    }
    let (memory, args): (&[u8], &[&str]) = match arch.as_str() {
        "arm" => (include_bytes!("cortex-m.x"), &["-Tlink.x"]),
        "riscv32" => (include_bytes!("riscv.x"), &["-Tmemory.x", "-Tlink.x"]),
        other => panic!("no memory map for architecture {other}"),
    };
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    for a in args {
        println!("cargo:rustc-link-arg={a}");
    }
}
