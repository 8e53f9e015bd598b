#![no_std]
#![no_main]
#[vitals_ontarget::entry]
fn main() -> ! { vitals_ontarget::platform::exit(true) }
