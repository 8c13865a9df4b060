//! A real `redis-server` for tests: installed (pinned) by
//! `scripts/setup-test-peers.sh redis`, started on a free loopback port with a
//! temporary directory and append-only persistence, stopped (SIGKILL) on drop.
//! Used by the server's store tests and `policyc`'s replica tests.

#![expect(
    clippy::panic,
    reason = "a test peer that cannot start fails the test, saying why"
)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server.
pub struct RedisServer {
    child: Option<Child>,
    bin: PathBuf,
    /// Its directory (the append-only file lives here).
    pub dir: PathBuf,
    /// Its port.
    pub port: u16,
    /// Its password (`requirepass`), if it has one.
    pub password: Option<String>,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"))
        .port()
}

impl RedisServer {
    /// Starts one in a fresh directory under the system's temp dir.
    pub fn start(name: &str) -> RedisServer {
        Self::start_with(name, None)
    }

    /// Starts one that requires `password` (`requirepass`), if given.
    pub fn start_with(name: &str, password: Option<&str>) -> RedisServer {
        let bin = crate::install_peer("redis", "redis-server");
        let dir = crate::fresh_dir(
            std::env::temp_dir().join(format!("tg-redis-{}-{name}", std::process::id())),
        );
        let mut server = RedisServer {
            child: None,
            bin,
            dir,
            port: free_port(),
            password: password.map(String::from),
        };
        server.restart();
        server
    }

    /// The URL a replica connects to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts (again) on the same port and directory, and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .args(
                self.password
                    .iter()
                    .flat_map(|p| ["--requirepass", p.as_str()]),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, no shutdown: whatever is not in the append-only file is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it answers `PING`.
    pub fn ping(&self) -> bool {
        self.command("PING\r\n")
            .is_some_and(|r| r.starts_with("+PONG"))
    }

    /// Sends one inline command (after `AUTH` when it has a password); its raw answer.
    pub fn command(&self, inline: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        if let Some(p) = &self.password {
            s.write_all(format!("AUTH {p}\r\n").as_bytes()).ok()?;
            let mut ok = [0u8; 5];
            s.read_exact(&mut ok).ok()?;
        }
        s.write_all(inline.as_bytes()).ok()?;
        let mut buf = [0u8; 65536];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
