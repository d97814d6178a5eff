//! The store's side of the transport boundary: [`Records`] and [`KeyedState`] over the
//! database, so transports record what they receive and keep their state without a [`Store`].

use rusqlite::OptionalExtension;

use super::{Store, StoreError, messages, now_ms};
use crate::model::{InboundSms, MessageId, NewInbound, PartStatus, Received, StatusUpdate};
use crate::transport::BoxFuture;
use crate::transport::sink::{KeyedState, Records, SinkError};

fn sink_err(e: StoreError) -> SinkError {
    SinkError(e.to_string())
}

impl Records for Store {
    fn inbound(&self, m: NewInbound) -> BoxFuture<'_, Result<(MessageId, bool), SinkError>> {
        Box::pin(async move { self.insert_inbound(m).await.map_err(sink_err) })
    }

    fn inbound_unless_recent(
        &self,
        m: NewInbound,
        window_ms: i64,
    ) -> BoxFuture<'_, Result<(MessageId, bool), SinkError>> {
        Box::pin(async move {
            self.insert_inbound_unless_recent(m, window_ms)
                .await
                .map_err(sink_err)
        })
    }

    fn inbound_raw(
        &self,
        m: NewInbound,
        problem: String,
    ) -> BoxFuture<'_, Result<MessageId, SinkError>> {
        Box::pin(async move {
            self.write(move |c| {
                let (id, _) = messages::insert_inbound(c, &m, now_ms())?;
                c.execute(
                    "UPDATE messages SET last_error = ?2 WHERE id = ?1",
                    rusqlite::params![id.0, problem],
                )?;
                Ok(id)
            })
            .await
            .map_err(sink_err)
        })
    }

    fn inbound_sms(&self, part: InboundSms) -> BoxFuture<'_, Result<Received, SinkError>> {
        Box::pin(async move { self.receive_sms(part).await.map_err(sink_err) })
    }

    fn note_truncated(
        &self,
        transport: &str,
        pdu_hash: &str,
        raw_hex: &str,
    ) -> BoxFuture<'_, Result<bool, SinkError>> {
        let (t, h, raw) = (
            transport.to_string(),
            pdu_hash.to_string(),
            raw_hex.to_string(),
        );
        Box::pin(async move {
            self.write(move |c| super::sms::note_truncated(c, &t, &h, &raw))
                .await
                .map_err(sink_err)
        })
    }

    fn flush_incomplete_sms(
        &self,
        max_age_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<MessageId>, SinkError>> {
        Box::pin(async move {
            Store::flush_incomplete_sms(self, max_age_ms)
                .await
                .map_err(sink_err)
        })
    }

    fn status(
        &self,
        transport: &str,
        provider_ref: &str,
        update: StatusUpdate,
    ) -> BoxFuture<'_, Result<Option<MessageId>, SinkError>> {
        let (t, r) = (transport.to_string(), provider_ref.to_string());
        Box::pin(async move { self.apply_status(&t, &r, update).await.map_err(sink_err) })
    }

    fn status_of(
        &self,
        id: MessageId,
        transport: &str,
        provider_ref: &str,
        update: StatusUpdate,
    ) -> BoxFuture<'_, Result<bool, SinkError>> {
        let (t, r) = (transport.to_string(), provider_ref.to_string());
        Box::pin(async move {
            self.apply_status_by_id(id, &t, &r, update)
                .await
                .map_err(sink_err)
        })
    }

    fn part_sent(
        &self,
        message: MessageId,
        seq: u8,
        total: u8,
        transport: &str,
        mr: u8,
    ) -> BoxFuture<'_, Result<(), SinkError>> {
        let t = transport.to_string();
        Box::pin(async move {
            self.record_part_sent(message, seq, total, &t, mr)
                .await
                .map_err(sink_err)
        })
    }

    fn parts_sent(&self, message: MessageId) -> BoxFuture<'_, Result<Vec<u8>, SinkError>> {
        Box::pin(async move { Store::parts_sent(self, message).await.map_err(sink_err) })
    }

    fn part_status(
        &self,
        transport: &str,
        mr: u8,
        recipient: &str,
        status: PartStatus,
    ) -> BoxFuture<'_, Result<Option<MessageId>, SinkError>> {
        let (t, r) = (transport.to_string(), recipient.to_string());
        Box::pin(async move {
            self.apply_part_status(&t, mr, &r, status)
                .await
                .map_err(sink_err)
        })
    }

    fn awaiting_report(
        &self,
        transport: &str,
        since_ms: i64,
        after: MessageId,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<MessageId>, SinkError>> {
        let t = transport.to_string();
        Box::pin(async move {
            self.read(move |c| messages::awaiting_report(c, &t, since_ms, after, limit))
                .await
                .map_err(sink_err)
        })
    }
}

impl KeyedState for Store {
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<i64>, SinkError>> {
        let key = key.to_string();
        Box::pin(async move { self.meta_get(&key).await.map_err(sink_err) })
    }

    fn set(&self, key: &str, value: Option<i64>) -> BoxFuture<'_, Result<(), SinkError>> {
        let key = key.to_string();
        Box::pin(async move { self.meta_set(&key, value).await.map_err(sink_err) })
    }

    fn get_or_init(&self, key: &str, fresh: i64) -> BoxFuture<'_, Result<i64, SinkError>> {
        let key = key.to_string();
        Box::pin(async move {
            self.write(move |c| {
                c.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                    rusqlite::params![key, fresh],
                )?;
                Ok(
                    c.query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| {
                        r.get::<_, i64>(0)
                    })
                    .optional()?
                    .unwrap_or(fresh),
                )
            })
            .await
            .map_err(sink_err)
        })
    }
}

/// A sink over `store` that calls `wake` when a transport comes up.
pub fn sink(store: &Store, wake: std::sync::Arc<dyn Fn() + Send + Sync>) -> crate::transport::Sink {
    let shared = std::sync::Arc::new(store.clone());
    crate::transport::Sink::new(shared.clone(), shared, wake)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Channel;

    #[tokio::test]
    async fn keyed_state_and_inbound_through_the_sink() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let woken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sink = {
            let woken = woken.clone();
            sink(
                &store,
                std::sync::Arc::new(move || {
                    woken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }),
            )
        };
        let state = sink.state();
        assert_eq!(state.get("k:phone1").await.unwrap(), None);
        assert_eq!(state.get_or_init("k:phone1", 7).await.unwrap(), 7);
        assert_eq!(state.get_or_init("k:phone1", 9).await.unwrap(), 7, "kept");
        state.set("k:phone1", Some(11)).await.unwrap();
        assert_eq!(state.get("k:phone1").await.unwrap(), Some(11));
        state.set("k:phone1", None).await.unwrap();
        assert_eq!(state.get("k:phone1").await.unwrap(), None);

        let m = NewInbound {
            channel: Channel::Sms,
            transport: "phone1".into(),
            peer: "+5491123456789".into(),
            body: "saldo".into(),
            provider_ref: Some("text:1".into()),
        };
        let (id, new) = sink.records().inbound(m.clone()).await.unwrap();
        assert!(new);
        assert_eq!(sink.records().inbound(m).await.unwrap(), (id, false));
        sink.came_up();
        assert_eq!(woken.load(std::sync::atomic::Ordering::Relaxed), 1);
        store.close().await;
        assert!(state.get("k:phone1").await.is_ok(), "reads still work");
        assert!(
            state.set("k", Some(1)).await.is_err(),
            "a closed store refuses writes"
        );
    }
}
