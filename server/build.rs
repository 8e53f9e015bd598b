//! Build facts for `vitals_build_info`: the git revision of the checkout (`unknown` outside
//! one, `-dirty` appended when tracked files are modified) and the compiler's version.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let revision = output("git", &["rev-parse", "--short=12", "HEAD"])
        .map(|rev| {
            let dirty = output("git", &["status", "--porcelain", "--untracked-files=no"]);
            if dirty.is_some() {
                format!("{rev}-dirty")
            } else {
                rev
            }
        })
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=VITALS_BUILD_REVISION={revision}");
    println!("cargo:rustc-env=VITALS_BUILD_RUSTC={rustc_version}");
    println!("cargo:rustc-env=VITALS_BUILD_TARGET={target}");
    // A new commit (or checkout) changes HEAD; rebuild then, not on every source change.
    if let Some(git_dir) = output("git", &["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/index");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
