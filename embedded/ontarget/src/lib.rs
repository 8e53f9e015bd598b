//! A tiny test harness for running vitals-core on emulated microcontrollers.
//!
//! Each file under `tests/` is a `no_std`, `no_main` binary (`harness = false`) that lists its
//! tests with [`tests!`]. The harness prints one line per test and the closing line
//! `N passed, N failed`, then leaves QEMU through semihosting with exit code 0 only when every test
//! passed. [`check!`] and [`check_eq!`] fail the current test and go on with the next; a panic
//! (an `assert!` or a bug) prints its message and exits non-zero at once (panic-semihosting's
//! `exit` feature on ARM, semihosting's panic handler on RISC-V). A hang is ended by the runner's
//! `timeout`.
#![no_std]

pub mod platform;
pub mod timer;

use core::fmt::Write;

pub use platform::entry;

/// One test: its name and its body (`Err` when a check failed; the check printed why).
pub type Test = (&'static str, fn() -> Result<(), ()>);

/// Writes formatted text to the host's stdout through semihosting.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::platform::Stdout, $($arg)*);
    }};
}

/// Fails the current test (returning `Err(())`) when the condition is false.
#[macro_export]
macro_rules! check {
    ($cond:expr) => {
        if !$cond {
            $crate::println!(
                "    check failed at {}:{}: {}",
                file!(),
                line!(),
                stringify!($cond)
            );
            return Err(());
        }
    };
}

/// Fails the current test (returning `Err(())`) when the two values differ, printing both.
#[macro_export]
macro_rules! check_eq {
    ($left:expr, $right:expr) => {
        match (&$left, &$right) {
            (l, r) => {
                if *l != *r {
                    $crate::println!(
                        "    check failed at {}:{}: {} == {}\n      left: {:?}\n     right: {:?}",
                        file!(),
                        line!(),
                        stringify!($left),
                        stringify!($right),
                        l,
                        r
                    );
                    return Err(());
                }
            }
        }
    };
}

/// Declares the test binary's entry point running the listed test functions in order.
#[macro_export]
macro_rules! tests {
    ($($name:ident),+ $(,)?) => {
        #[$crate::entry]
        fn main() -> ! {
            $crate::run(&[$((stringify!($name), $name as fn() -> Result<(), ()>)),+])
        }
    };
}

/// Runs `tests`, prints the summary and exits QEMU (code 0 only if all passed).
pub fn run(tests: &[Test]) -> ! {
    let (mut passed, mut failed) = (0u32, 0u32);
    println!(
        "running {} tests on {} ({})",
        tests.len(),
        platform::TARGET,
        platform::ATOMICS
    );
    for (name, test) in tests {
        match test() {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok");
            }
            Err(()) => {
                failed += 1;
                println!("test {name} ... FAILED");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    platform::exit(failed == 0)
}

/// Collects rendered chunks into a fixed buffer (tests compare it with the expected text).
pub struct Collected<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Collected<N> {
    /// Empty.
    pub const fn new() -> Self {
        Collected {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends `bytes`; `false` when they do not fit.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
                true
            }
            None => false,
        }
    }

    /// The text so far (empty if it is not UTF-8).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Forgets the contents.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<const N: usize> Default for Collected<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for Collected<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if self.push(s.as_bytes()) {
            Ok(())
        } else {
            Err(core::fmt::Error)
        }
    }
}

/// Prints the first line where `got` and `want` differ (for a readable failure on a small screen).
pub fn show_difference(got: &str, want: &str) {
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        if g != w {
            println!("    line {}:\n      got:  {g}\n      want: {w}", i + 1);
            return;
        }
    }
    println!(
        "    lengths differ: got {} lines, want {} lines",
        got.lines().count(),
        want.lines().count()
    );
}
