//! `vitals_build_info{version,revision,rustc,target} 1`: what this binary is, recorded when it
//! was built (`build.rs`: the git revision, `unknown` outside a checkout and `-dirty` with
//! modified tracked files; the compiler's version; the target triple).

use vitals_std::vitals_core::Info;
use vitals_std::{RegistryBuilder, RegistryError};

/// The info metric.
pub(crate) static BUILD_INFO: Info<4> = Info::new(
    ["version", "revision", "rustc", "target"],
    [
        env!("CARGO_PKG_VERSION"),
        env!("VITALS_BUILD_REVISION"),
        env!("VITALS_BUILD_RUSTC"),
        env!("VITALS_BUILD_TARGET"),
    ],
);

/// Registers `vitals_build_info`.
pub(crate) fn register(b: &mut RegistryBuilder) -> Result<(), RegistryError> {
    b.register(
        "vitals_build_info",
        "The vitals-server build: crate version, git revision, rustc version and target.",
        None,
        &BUILD_INFO,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitals_std::vitals_core::Format;

    #[test]
    fn build_info_names_this_build() {
        let mut b = RegistryBuilder::new();
        register(&mut b).unwrap();
        let text = b.build().render_to_string(Format::Prometheus);
        let line = text
            .lines()
            .find(|l| l.starts_with("vitals_build_info{"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(line.ends_with("} 1"), "{line}");
        assert!(
            line.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
            "{line}"
        );
        // The revision is the checkout's commit (`unknown` outside a checkout).
        let rev = env!("VITALS_BUILD_REVISION");
        let head = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        match head {
            // A commit made since this test binary was built would differ: compare hex only.
            Some(_) => assert!(
                rev.len() >= 12 && rev[..12].bytes().all(|c| c.is_ascii_hexdigit()),
                "{rev}"
            ),
            None => assert_eq!(rev, "unknown"),
        }
        assert!(env!("VITALS_BUILD_RUSTC").starts_with("1."), "{line}");
        assert!(line.contains(&format!("target=\"{}\"", env!("VITALS_BUILD_TARGET"))));
    }
}
