//! The daemon in-process (`daemon::run`) on a real SQLite file, with one GSM modem on the
//! simulator's pseudo-terminal and the admin API on 127.0.0.1 port 0.

use pasarela::config::Loaded;
use pasarela::daemon::{self, Parts};
use serde_json::Value;

use super::TOKEN;

pub struct Gateway {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    /// `sections` go before the `[[modem]]` table (`[dispatch]`, `[company]`…), `modem_extra`
    /// inside it.
    pub async fn start(
        dir: &std::path::Path,
        sections: &str,
        link: &std::path::Path,
        modem_extra: &str,
    ) -> Gateway {
        let text = format!(
            "[daemon]\nstate_dir = \"{}\"\nshutdown_grace_secs = 5\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
             {sections}\n[[modem]]\nname = \"modem1\"\ndevice = \"{}\"\n{modem_extra}\n",
            dir.join("state").display(),
            link.display()
        );
        let loaded: Loaded = pasarela::setup::from_toml(&text).unwrap();
        if std::env::var_os("PASARELA_TEST_LOG").is_some() {
            pasarela::logging::init(log::LevelFilter::Debug);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(daemon::run(
            loaded,
            Parts {
                transports: vec![],
                listener: Some(listener),
            },
            async move {
                let _ = rx.await;
            },
        ));
        Gateway {
            base,
            stop: Some(tx),
            task,
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }

    /// One API call with the token: the status and the JSON answer (`null` when not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await.1
    }
}
