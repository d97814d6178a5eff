//! `pasarela modem-sim` in a process of its own, so the simulated modem outlives a gateway that
//! a crash test kills. Its control API answers on a local port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{bin, free_port, wait_until};

pub struct SimProcess {
    child: Child,
    /// The control API's base URL.
    pub control: String,
    /// The pseudo-terminal's link: the gateway's `device`.
    pub link: PathBuf,
}

impl SimProcess {
    /// Starts the simulator with its link in `dir` and waits until it answers.
    pub fn start(dir: &Path) -> SimProcess {
        let port = free_port();
        let link = dir.join("modem");
        let child = Command::new(bin())
            .args(["modem-sim", "--link"])
            .arg(&link)
            .args(["--control", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let sim = SimProcess {
            child,
            control: format!("http://127.0.0.1:{port}"),
            link,
        };
        wait_until("the simulator", Duration::from_secs(20), || {
            sim.link.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        sim
    }

    /// POSTs to the control API (`/config`, `/fault`, `/inject`…); it must succeed.
    pub async fn post(&self, path: &str, body: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.control))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    pub async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.control))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// (to, text) of every SMS the gateway sent.
    pub async fn sent(&self) -> Vec<(String, String)> {
        self.get("/sent")
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["to"].as_str().unwrap().to_string(),
                    m["text"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
