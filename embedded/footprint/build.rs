//! Memory map and linker scripts for the target (see ../memory/link.rs).
include!("../memory/link.rs");

fn main() {
    link();
}
