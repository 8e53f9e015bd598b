//! The vitals reference server (under construction).
fn main() {}
