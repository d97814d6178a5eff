//! Drives the real `pasarela` binary: a temp state dir, a config file, a notify socket that
//! collects sd_notify messages, and stderr collected line by line.
#![allow(dead_code)]

pub mod gateway;
pub mod sim_process;
pub mod sims;
pub mod users;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// The binary under test; benchmarks may measure another build (`PASARELA_BENCH_BIN`, e.g.
/// main's for a before figure).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("PASARELA_BENCH_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pasarela").to_string())
    })
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub notify: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

/// Waits until `f` is true, polling; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `daemon_extra` goes under `[daemon]`, `extra` under `[admin]` (it may open further tables).
pub fn write_config(dir: &Path, port: u16, daemon_extra: &str, extra: &str) -> PathBuf {
    let state = dir.join("state");
    let text = format!(
        "[daemon]\nstate_dir = \"{}\"\nshutdown_grace_secs = 2\n{daemon_extra}\n\n[admin]\nlisten = \"127.0.0.1:{port}\"\n{extra}\n",
        state.display()
    );
    let path = dir.join("pasarela.toml");
    std::fs::write(&path, text).unwrap();
    path
}

impl Daemon {
    /// Starts `pasarela run` with a token, waits for READY=1.
    pub fn start(dir: &Path) -> Daemon {
        Daemon::start_with(dir, &format!("token = \"{TOKEN}\""), &[])
    }

    /// `admin_extra` goes under `[admin]`; it may open further tables.
    pub fn start_with(dir: &Path, admin_extra: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_full(dir, "", admin_extra, env)
    }

    pub fn start_full(
        dir: &Path,
        daemon_extra: &str,
        admin_extra: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let port = free_port();
        let config = write_config(dir, port, daemon_extra, admin_extra);
        let notify_path = dir.join(format!("notify-{port}.sock"));
        let _ = std::fs::remove_file(&notify_path);
        let sock = UnixDatagram::bind(&notify_path).unwrap();
        let notify = Arc::new(Mutex::new(Vec::new()));
        {
            let notify = notify.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = sock.recv(&mut buf) {
                    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                    notify.lock().unwrap().push(msg);
                }
            });
        }
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify_path)
            .env("PASARELA_JOURNAL_SOCKET", dir.join("no-journal-here"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        {
            let stderr = stderr.clone();
            let pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    stderr.lock().unwrap().push(line);
                }
            });
        }
        let d = Daemon {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            config,
            notify,
            stderr,
        };
        d.wait_ready();
        d
    }

    pub fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            if self.notified("READY=1") {
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("no READY=1; stderr:\n{}", self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn notified(&self, needle: &str) -> bool {
        self.notify
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.lines().any(|l| l == needle || l.starts_with(needle)))
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// The log once it holds `needle`: the lines reach the test through a reader thread, so
    /// a line the daemon has written may not be here yet on a loaded machine.
    pub fn stderr_with(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let text = self.stderr_text();
            if text.contains(needle) || start.elapsed() > Duration::from_secs(30) {
                return text;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code (None if killed by a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("daemon did not exit; stderr:\n{}", self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        self.signal("KILL");
        self.wait_exit(Duration::from_secs(10));
    }

    pub fn db(&self) -> PathBuf {
        self.dir.join("state").join("pasarela.db")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn api(
    method: reqwest::Method,
    url: String,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = client().request(method, url).bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, json)
}

/// Resident memory (KiB) and CPU time (clock ticks, user + system) of a process, from /proc.
pub fn proc_stat(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    (rss_kb, ticks)
}

/// Polls `check` every 50 ms; panics with `what` after `secs` seconds.
pub async fn wait_for(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..secs * 20 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// Queues one text through `POST /api/messages`; its id.
pub async fn queue(d: &Daemon, to: &str, text: &str) -> i64 {
    let (status, body) = api(
        reqwest::Method::POST,
        format!("{}/api/messages", d.base),
        Some(serde_json::json!({"to": to, "text": text})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_i64().unwrap()
}
