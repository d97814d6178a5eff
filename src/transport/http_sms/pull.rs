//! Received SMS by PULL, for routes with `poll_secs`: every round lists the provider's unread
//! messages (`poll_url`) and stores each once by the provider's id, then lists them again
//! asking the provider to mark them read (`poll_ack_url`), storing anything that arrived in
//! between. A message is marked read at the provider only by a listing whose lines are stored
//! right after. The loss window: messages that arrived between the two listings, when the
//! second one is cut off (a crash, a timeout, a broken connection) after the provider marked
//! them read; the round's warning says so, and the README recommends the push where it can
//! reach the box.
//!
//! Each line is stored by its provider id (the inbound unique key `(transport, provider_ref)`),
//! so a line listed again is known already, whatever order the listing comes in. The listing is
//! SMS Masivos' (`obtener_sms_entrada.asp`): one message per line, fields separated by tabs:
//! sender, text, date, id (an internal id may follow).

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

    /// One round; how many messages were new.
    pub async fn poll_once(&self) -> Result<usize, String> {
        let cfg = self.route.config();
        let Some(list) = cfg.poll_url.clone() else {
            return Ok(0);
        };
        let mut new = self.store(&self.route.query(&list).await?).await?;
        if let Some(ack) = cfg.poll_ack_url.clone() {
            let listing = self.route.query(&ack).await.map_err(|e| {
                format!(
                    "{e} (while the provider marked the listed messages read: one that arrived \
                     since the previous listing may be missing; its web panel has them)"
                )
            })?;
            new += self.store(&listing).await?;
        }
        Ok(new)
    }

    /// Stores a listing's messages in order, each committed before the next; a message already
    /// stored (same provider id on this route) is not stored or answered again.
    async fn store(&self, listing: &str) -> Result<usize, String> {
        let mut new = 0;
        for m in parse_listing(listing) {
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
