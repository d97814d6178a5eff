//! Received SMS by PULL, for routes with `poll_secs`: every round lists the provider's unread
//! messages (`poll_url`) and stores each once by the provider's id, then lists them again
//! asking the provider to mark them read (`poll_ack_url`), storing anything that arrived in
//! between. A message is marked read at the provider only by a listing whose lines are stored
//! right after; the only loss window is a crash in that second listing, for messages that
//! arrived after the first.
//!
//! The cursor is the provider's read flag, plus the highest numeric id stored
//! (`http_sms_pull:<route>` in the keyed state): a line at or below it is known already. The
//! listing is SMS Masivos' (`obtener_sms_entrada.asp`): one message per line, fields separated
//! by tabs: sender, text, date, id (an internal id may follow).

use std::sync::Arc;
use std::time::Duration;

use super::HttpSmsTransport;
use crate::model::{Channel, NewInbound};
use crate::shutdown::Shutdown;
use crate::transport::{Sink, Transport};

/// One listed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub from: String,
    pub text: String,
    pub id: String,
}

/// The lines of a listing that are messages; lines with fewer than four fields or no id
/// (a blank line, a notice such as "no hay mensajes") are skipped.
pub fn parse_listing(text: &str) -> Vec<Listed> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.trim_end_matches('\r').split('\t').collect();
            if fields.len() < 4 {
                return None;
            }
            let (from, text, id) = (fields[0].trim(), fields[1], fields[3].trim());
            (!from.is_empty() && !id.is_empty() && id.len() <= 200 && from.len() <= 64).then(|| {
                Listed {
                    from: from.to_string(),
                    text: text.to_string(),
                    id: id.to_string(),
                }
            })
        })
        .collect()
}

/// A route's PULL reader.
pub struct Poller {
    route: Arc<HttpSmsTransport>,
    sink: Sink,
}

impl Poller {
    pub fn new(route: Arc<HttpSmsTransport>, sink: Sink) -> Poller {
        Poller { route, sink }
    }

    fn cursor_key(&self) -> String {
        format!("http_sms_pull:{}", self.route.name())
    }

    /// One round; how many messages were new.
    pub async fn poll_once(&self) -> Result<usize, String> {
        let cfg = self.route.config();
        let Some(list) = cfg.poll_url.clone() else {
            return Ok(0);
        };
        let mut new = self.store(&self.route.query(&list).await?).await?;
        if let Some(ack) = cfg.poll_ack_url.clone() {
            new += self.store(&self.route.query(&ack).await?).await?;
        }
        Ok(new)
    }

    /// Stores a listing's messages in order, each committed before the next; moves the cursor.
    async fn store(&self, listing: &str) -> Result<usize, String> {
        let state = self.sink.state();
        let key = self.cursor_key();
        let mut cursor = state.get(&key).await.map_err(|e| e.to_string())?;
        let mut new = 0;
        for m in parse_listing(listing) {
            let numeric = m.id.parse::<i64>().ok();
            if let (Some(n), Some(c)) = (numeric, cursor)
                && n <= c
            {
                continue;
            }
            let name = self.route.name().to_string();
            let peer = self.route.peer_of(&m.from);
            let (id, fresh) = self
                .sink
                .records()
                .inbound(NewInbound {
                    channel: Channel::Sms,
                    transport: name.clone(),
                    peer: peer.clone(),
                    body: m.text,
                    provider_ref: Some(m.id),
                })
                .await
                .map_err(|e| e.to_string())?;
            if fresh {
                new += 1;
                log::info!(
                    msg_id = id.0, channel = "sms", transport = name.as_str();
                    "message {id} received from {} via {name} (pulled)",
                    crate::logging::peer(&peer)
                );
            }
            if let Some(n) = numeric
                && cursor.is_none_or(|c| n > c)
            {
                state.set(&key, Some(n)).await.map_err(|e| e.to_string())?;
                cursor = Some(n);
            }
        }
        Ok(new)
    }

    /// Polls every `poll_secs` until `shutdown`.
    pub async fn run(&self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let every = Duration::from_secs(self.route.config().poll_secs.unwrap_or(60).max(1));
        let name = self.route.name().to_string();
        let mut failing = false;
        while !shutdown.is_triggered() {
            match self.poll_once().await {
                Ok(_) if failing => {
                    failing = false;
                    log::info!(transport = name.as_str(); "{name}: reading received SMS from the provider again");
                }
                Ok(_) => {}
                Err(why) if !failing => {
                    failing = true;
                    log::warn!(transport = name.as_str(); "{name}: cannot read received SMS from the provider: {why}");
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait() => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_parse_as_smsmasivos_writes_them() {
        let text = "1147896321\tSALDO\t2026-12-02 10:00:00\t501\r\n\
                    3514123456\tSoporte, sin internet\t2026-12-02 10:01:00\t502\tAB12\r\n\
                    \r\nno hay mensajes\n1\t\t2026\t\n";
        let l = parse_listing(text);
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(
            l[0],
            Listed {
                from: "1147896321".into(),
                text: "SALDO".into(),
                id: "501".into()
            }
        );
        assert_eq!(l[1].text, "Soporte, sin internet");
    }
}
