//! A real `redis-server` for the shared-limits tests (`mod redis_support;` in each).
#![allow(dead_code)] // each test file uses part of it

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vitals_tests::{require_program, wait_for};

/// A real `redis-server` (Debian's, installed by `scripts/setup`) on a unix socket in a temp
/// directory, persistence off; killed and its directory removed on drop. Panics (fails the test)
/// when the program is missing.
pub struct RedisServer {
    child: Option<Child>,
    dir: PathBuf,
    bin: PathBuf,
}

impl RedisServer {
    /// Starts a server and waits (≤ 20 s) until it answers `PING`.
    pub fn start() -> RedisServer {
        let bin = std::env::var_os("VITALS_REDIS_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| require_program("redis-server"));
        require_program("redis-cli");
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vitals-redis-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create redis temp dir");
        let mut r = RedisServer {
            child: None,
            dir,
            bin,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .args(["--logfile"])
            .arg(self.dir.join("log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let up = wait_for(Duration::from_secs(20), || {
            self.try_cli(&["PING"]).filter(|o| o.trim() == "PONG")
        });
        assert!(up.is_some(), "redis-server did not answer PING within 20 s");
    }

    /// The unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("r.sock")
    }

    /// `unix://SOCKET`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(self.socket())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs one command with `redis-cli` and returns its output; panics on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    /// Kills the server (SIGKILL: no shutdown, state lost).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Starts it again on the same socket (empty).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {pid}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A stopped server must be continued to die promptly.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
