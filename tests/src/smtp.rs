//! A real SMTP server (aiosmtpd, from PyPI) that keeps what it receives.
//!
//! Without Python's `aiosmtpd` the email tests skip loudly;
//! `AUTHGATE_REQUIRE_SMTP=1` (set by CI) turns that into a failure.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An SMTP server on a loopback port.
pub struct SmtpSink {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("smtp/sink.py")
}

fn spawn(port: u16, dir: &std::path::Path) -> Child {
    let mut child = Command::new("python3")
        .arg(script())
        .arg(port.to_string())
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs the SMTP sink");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    assert_eq!(line.trim(), "ready", "the SMTP sink started");
    child
}

impl SmtpSink {
    /// Starts a sink, or `None` (after saying so) when aiosmtpd is missing.
    pub fn start() -> Option<Self> {
        let available = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            let msg = "SKIPPED: Python's aiosmtpd is not installed (pip install aiosmtpd); this email test did not run";
            if std::env::var("AUTHGATE_REQUIRE_SMTP").is_ok_and(|v| v == "1") {
                panic!("{msg} (AUTHGATE_REQUIRE_SMTP=1 makes that a failure)");
            }
            eprintln!("\n*** {msg} ***\n");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir =
            std::env::temp_dir().join(format!("authgate-smtp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("mail dir");
        let child = spawn(port, &dir);
        Some(Self {
            port,
            dir,
            child: Some(child),
        })
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, raw, oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names.iter().filter_map(|p| std::fs::read(p).ok()).collect()
    }

    /// Waits until `n` messages have arrived, at most `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.messages();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server (connections are refused until [`SmtpSink::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, keeping what it received.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Some(spawn(self.port, &self.dir));
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
