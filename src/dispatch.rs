//! The dispatcher: claims due messages from the outbox by priority, hands each to a healthy
//! transport of its channel, and records what happened. Temporary failures retry with capped
//! exponential backoff; permanent ones fail the message with the reason. A failing message
//! only ever delays itself: its next attempt is scheduled later and the queue moves on.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::config::DispatchConfig;
use crate::logging::peer as shown_peer;
use crate::shutdown::Shutdown;
use crate::store::{Message, MessageId, Outcome, Store, now_ms};
use crate::transport::{Transport, TransportError};

/// Longest a transport may take over one send before the attempt counts as a temporary failure.
/// A modem's own `AT+CMGS` timeout is 60 s per part; ten parts fit.
const SEND_DEADLINE: Duration = Duration::from_secs(11 * 60);
/// The loop wakes at least this often when idle, to notice transports coming back and to prove
/// it is alive to the watchdog.
pub const IDLE_TICK: Duration = Duration::from_secs(5);

/// What the rest of the daemon holds of the dispatcher: a way to wake it and its heartbeat.
#[derive(Clone)]
pub struct DispatchHandle {
    wake: Arc<Notify>,
    heartbeat: Arc<AtomicI64>,
}

impl DispatchHandle {
    /// Tells the dispatcher there is new work (a message was queued, a transport came back).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// When the dispatch loop last went round (Unix ms); 0 before it started.
    pub fn last_heartbeat(&self) -> i64 {
        self.heartbeat.load(Ordering::Relaxed)
    }
}

impl Default for DispatchHandle {
    fn default() -> Self {
        DispatchHandle {
            wake: Arc::new(Notify::new()),
            heartbeat: Arc::new(AtomicI64::new(0)),
        }
    }
}

struct Route {
    transport: Arc<dyn Transport>,
    slots: Arc<Semaphore>,
}

pub struct Dispatcher {
    store: Store,
    routes: Vec<Route>,
    config: DispatchConfig,
    handle: DispatchHandle,
    grace: Duration,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        transports: Vec<Arc<dyn Transport>>,
        config: DispatchConfig,
        handle: DispatchHandle,
        grace: Duration,
    ) -> Dispatcher {
        let routes = transports
            .into_iter()
            .map(|t| Route {
                slots: Arc::new(Semaphore::new(t.capacity().max(1))),
                transport: t,
            })
            .collect();
        Dispatcher {
            store,
            routes,
            config,
            handle,
            grace,
        }
    }

    /// Works the queue until `shutdown`; then stops claiming, gives in-flight sends `grace` to
    /// finish, and returns whatever is still unfinished to the queue.
    pub async fn run(&self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let mut inflight: JoinSet<()> = JoinSet::new();
        let mut owners: HashMap<tokio::task::Id, Message> = HashMap::new();
        while !shutdown.is_triggered() {
            self.handle.heartbeat.store(now_ms(), Ordering::Relaxed);
            self.claim_and_start(&mut inflight, &mut owners).await;
            let wait = self.idle_wait().await;
            tokio::select! {
                _ = self.handle.wake.notified() => {}
                Some(done) = inflight.join_next_with_id() => self.reap(done, &mut owners).await,
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait() => {}
            }
        }
        self.drain(inflight, owners).await;
        Ok(())
    }

    async fn claim_and_start(
        &self,
        inflight: &mut JoinSet<()>,
        owners: &mut HashMap<tokio::task::Id, Message>,
    ) {
        for route in &self.routes {
            let free = route.slots.available_permits();
            if free == 0 || !route.transport.health().up {
                continue;
            }
            let claimed = match self
                .store
                .claim_due(
                    route.transport.channel(),
                    route.transport.name(),
                    free as u32,
                )
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    log::error!("dispatcher: cannot claim messages: {e:#}");
                    continue;
                }
            };
            for message in claimed {
                let Ok(permit) = route.slots.clone().try_acquire_owned() else {
                    break;
                };
                let owned = message.clone();
                let task = send_one(
                    self.store.clone(),
                    route.transport.clone(),
                    message,
                    self.config.clone(),
                    self.handle.clone(),
                );
                let handle = inflight.spawn(async move {
                    task.await;
                    drop(permit);
                });
                owners.insert(handle.id(), owned);
            }
        }
    }

    /// How long to sleep when there is nothing to do: until the next retry falls due, capped.
    async fn idle_wait(&self) -> Duration {
        let channels: Vec<_> = self
            .routes
            .iter()
            .filter(|r| r.slots.available_permits() > 0 && r.transport.health().up)
            .map(|r| r.transport.channel())
            .collect();
        match self.store.next_due(channels).await {
            Ok(Some(at)) => {
                let ms = (at - now_ms()).clamp(0, IDLE_TICK.as_millis() as i64);
                Duration::from_millis(ms as u64)
            }
            Ok(None) => IDLE_TICK,
            Err(e) => {
                log::error!("dispatcher: cannot read the queue: {e:#}");
                IDLE_TICK
            }
        }
    }

    async fn reap(
        &self,
        done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
        owners: &mut HashMap<tokio::task::Id, Message>,
    ) {
        match done {
            Ok((task, ())) => {
                owners.remove(&task);
            }
            Err(e) => {
                // The send task crashed: count it as a failed attempt (so a message that always
                // crashes its transport ends up failed) rather than leave it `sending`.
                if let Some(m) = owners.remove(&e.id()) {
                    let reason = TransportError::Temporary(format!("the transport crashed: {e}"));
                    let outcome = outcome_of(&self.config, &m, Err(reason), now_ms());
                    log::error!(msg_id = m.id.0; "send of message {} crashed: {e}; outcome {outcome:?}", m.id);
                    if let Err(e) = self.store.record_outcome(m.id, outcome).await {
                        log::error!(msg_id = m.id.0; "message {}: cannot record the crash: {e:#}", m.id);
                    }
                }
            }
        }
    }

    async fn drain(
        &self,
        mut inflight: JoinSet<()>,
        mut owners: HashMap<tokio::task::Id, Message>,
    ) {
        if inflight.is_empty() {
            return;
        }
        log::info!(
            "stopping: waiting up to {} s for {} message(s) being sent",
            self.grace.as_secs(),
            inflight.len()
        );
        let deadline = tokio::time::Instant::now() + self.grace;
        while !inflight.is_empty() {
            match tokio::time::timeout_at(deadline, inflight.join_next_with_id()).await {
                Ok(Some(done)) => self.reap(done, &mut owners).await,
                Ok(None) => break,
                Err(_) => break,
            }
        }
        if !owners.is_empty() {
            inflight.abort_all();
            let ids: Vec<MessageId> = owners.into_values().map(|m| m.id).collect();
            log::warn!(
                "stopping: {} message(s) did not finish sending in time and go back to the queue; \
                 they may be sent once more",
                ids.len()
            );
            if let Err(e) = self.store.requeue(ids).await {
                log::error!("stopping: cannot requeue unfinished messages: {e:#}");
            }
        }
    }
}

/// Retry delay after `attempts` attempts: base · 2^(attempts-1), capped.
pub fn backoff(config: &DispatchConfig, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let secs = config.retry_base_secs.saturating_mul(1u64 << exp);
    Duration::from_secs(secs.min(config.retry_max_secs))
}

/// Decides the stored outcome of one attempt.
pub fn outcome_of(
    config: &DispatchConfig,
    message: &Message,
    result: Result<Option<String>, TransportError>,
    now: i64,
) -> Outcome {
    match result {
        Ok(provider_ref) => Outcome::Sent { provider_ref },
        Err(TransportError::Permanent(reason)) => Outcome::Failed { error: reason },
        Err(TransportError::Temporary(reason)) if message.attempts >= config.max_attempts => {
            Outcome::Failed {
                error: format!("gave up after {} attempts: {reason}", message.attempts),
            }
        }
        Err(TransportError::Temporary(reason)) => Outcome::Retry {
            error: reason,
            retry_at: now + backoff(config, message.attempts).as_millis() as i64,
        },
    }
}

async fn send_one(
    store: Store,
    transport: Arc<dyn Transport>,
    message: Message,
    config: DispatchConfig,
    handle: DispatchHandle,
) {
    let id = message.id.0;
    let channel = message.channel.as_str();
    let route = transport.name().to_string();
    let result = match tokio::time::timeout(SEND_DEADLINE, transport.send(&message)).await {
        Ok(r) => r.map(|receipt| receipt.provider_ref),
        Err(_) => Err(TransportError::Temporary(format!(
            "no answer from {route} within {} s",
            SEND_DEADLINE.as_secs()
        ))),
    };
    let outcome = outcome_of(&config, &message, result, now_ms());
    let peer = shown_peer(&message.peer);
    match &outcome {
        Outcome::Sent { .. } => log::info!(
            msg_id = id, channel = channel, transport = route.as_str();
            "message {id} sent to {peer} via {route}"
        ),
        Outcome::Retry { error, retry_at } => log::warn!(
            msg_id = id, channel = channel, transport = route.as_str();
            "message {id} to {peer} failed on attempt {} ({error}); retrying in {} s",
            message.attempts,
            ((retry_at - now_ms()).max(0) + 999) / 1000
        ),
        Outcome::Failed { error } => log::warn!(
            msg_id = id, channel = channel, transport = route.as_str();
            "message {id} to {peer} failed: {error}"
        ),
    }
    if let Err(e) = store.record_outcome(message.id, outcome).await {
        log::error!(msg_id = id; "message {id}: cannot record the send result: {e:#}");
    }
    handle.wake();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let c = DispatchConfig {
            retry_base_secs: 10,
            retry_max_secs: 100,
            ..Default::default()
        };
        let secs: Vec<u64> = (1..=6).map(|a| backoff(&c, a).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 100, 100]);
        assert_eq!(backoff(&c, 200).as_secs(), 100);
    }
}
