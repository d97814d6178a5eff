//! Helpers behind the `pasarela` subcommands that are more than a call into another module.

use std::path::Path;

use anyhow::{Context, bail};

use crate::config::{Config, Loaded, Secret};

/// A fresh random token: 32 hex characters from the OS random source.
pub fn generate_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A one-line summary of a valid config, for `check-config`.
pub fn summary(loaded: &Loaded) -> String {
    let c = &loaded.config;
    let token = if c.admin.token.is_some() {
        "token set"
    } else if c.admin.token_file.is_some() {
        "token file"
    } else {
        "NO TOKEN (API off)"
    };
    format!(
        "config OK: company \"{}\", admin API on {} ({token}), state in {}",
        c.company.name,
        c.admin.listen,
        c.daemon.state_dir.display()
    )
}

/// `pasarela send`: queues one SMS through the running daemon's API.
pub async fn send(config_path: &Path, to: &str, text: &str) -> anyhow::Result<String> {
    let loaded = Config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = loaded
        .admin_token()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("the config sets no admin token (admin.token or admin.token_file)")?;
    let base = crate::daemon::api_base(&loaded)?;
    post_message(&base, &token, to, text).await
}

pub async fn post_message(
    base: &str,
    token: &Secret,
    to: &str,
    text: &str,
) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let response = client
        .post(format!("{base}/api/messages"))
        .bearer_auth(token.expose())
        .json(&serde_json::json!({"to": to, "text": text}))
        .send()
        .await
        .with_context(|| {
            format!("cannot reach pasarela at {base}; is it running? (systemctl status pasarela)")
        })?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() {
        Ok(format!(
            "queued as message {} ({})",
            body["id"],
            body["state"].as_str().unwrap_or("?")
        ))
    } else {
        let msg = body["error"]["message"]
            .as_str()
            .unwrap_or("no error message")
            .to_string();
        bail!("pasarela refused the message ({status}): {msg}")
    }
}
