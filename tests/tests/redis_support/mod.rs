//! A real `redis-server` for the shared-limits tests (`mod redis_support;` in each).
#![allow(dead_code)] // each test file uses part of it

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vitals_tests::{require_program, wait_for};

/// A real `redis-server` (Debian's, installed by `scripts/setup`) on a unix socket in a temp
/// directory, persistence off; killed and its directory removed on drop. Panics (fails the test)
/// when the program is missing.
pub(crate) struct RedisServer {
    child: Option<Child>,
    dir: PathBuf,
    bin: PathBuf,
    /// The TLS port, when started with [`RedisServer::start_tls`].
    tls_port: Option<u16>,
}

impl RedisServer {
    /// Starts a server and waits (≤ 20 s) until it answers `PING`.
    pub(crate) fn start() -> RedisServer {
        let mut r = RedisServer::prepare();
        r.spawn();
        r
    }

    /// [`RedisServer::start`], also serving TLS on a loopback port with a certificate for
    /// `localhost` and `127.0.0.1` signed by a throwaway CA ([`RedisServer::ca_file`]), made
    /// with the `openssl` program (the test fails when it is missing). Clients need no
    /// certificate of their own.
    pub(crate) fn start_tls() -> RedisServer {
        let mut r = RedisServer::prepare();
        let openssl = require_program("openssl");
        let run = |args: &[&str]| {
            let out = Command::new(&openssl)
                .args(args)
                .current_dir(&r.dir)
                .stdin(Stdio::null())
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "1",
                "-subj",
                "/CN=vitals-test-ca",
            ],
        ]
        .concat());
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat());
        std::fs::write(
            r.dir.join("ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("write ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "ext",
        ]);
        r.tls_port = Some(vitals_tests::free_port());
        r.spawn();
        r
    }

    /// The CA that signed a TLS server's certificate (PEM).
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// `rediss://localhost:PORT` of a server started with [`RedisServer::start_tls`].
    pub(crate) fn tls_url(&self) -> String {
        format!(
            "rediss://localhost:{}",
            self.tls_port.expect("started with TLS")
        )
    }

    fn prepare() -> RedisServer {
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
        RedisServer {
            child: None,
            dir,
            bin,
            tls_port: None,
        }
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(&self.bin);
        if let Some(port) = self.tls_port {
            cmd.args(["--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--tls-auth-clients", "no", "--tls-cert-file"])
                .arg(self.dir.join("server.crt"))
                .arg("--tls-key-file")
                .arg(self.dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(self.ca_file());
        }
        let child = cmd
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
    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.join("r.sock")
    }

    /// `unix://SOCKET`.
    pub(crate) fn url(&self) -> String {
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
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    /// Kills the server (SIGKILL: no shutdown, state lost).
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Starts it again on the same socket (empty).
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server.
    pub(crate) fn signal(&self, signal: &str) {
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
