//! The dispatcher: claims due messages from the outbox by priority, hands each to a healthy
//! transport of its channel, and records what happened. Temporary failures retry with capped
//! exponential backoff; permanent ones fail the message with the reason. A failing message
//! only ever delays itself: its next attempt is scheduled later and the queue moves on.
//!
//! Routing: a message is not bound to a route. Each round, every route of a channel that is
//! up, in the lowest failover tier that has a route up, and under its rate limit claims as many
//! due messages as it has free slots; so a message that failed temporarily on one route is
//! retried by whichever eligible route claims it next, possibly another one; when the failure
//! took its route down (no answer, device gone) and another route is up, the retry is due at
//! once, for that route.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::config::{DispatchConfig, RateLimit};
use crate::logging::peer as shown_peer;
use crate::model::{Channel, Content, Outgoing, Priority, Whatsapp};
use crate::shutdown::Shutdown;
use crate::store::{LastLook, Message, MessageId, Outcome, Store, StoreError};
use crate::transport::{SendReceipt, Transport, TransportError};

/// Longest a transport may take over one send before the attempt counts as a temporary failure.
/// A modem's own `AT+CMGS` timeout is 60 s per part; ten parts fit.
const SEND_DEADLINE: Duration = Duration::from_secs(11 * 60);
/// While a route is down the loop wakes at least this often, to notice one that comes back
/// without saying so (an HTTP route whose back-off ran out).
pub const IDLE_TICK: Duration = Duration::from_secs(5);
/// While every route is up the loop wakes at least this often. Everything that gives it work
/// wakes it at once (a message queued, a route coming back, a send finishing, a retry or rate
/// limit falling due), so this tick only proves the loop is alive, and an idle gateway stays
/// asleep (`benches/idle.rs`).
pub const IDLE_TICK_ALL_UP: Duration = Duration::from_secs(30);
/// The dispatcher counts as alive (watchdog, `/api/health`) while its loop went round this
/// recently: three of its longest idle ticks.
pub const ALIVE_WITHIN: Duration = Duration::from_secs(3 * IDLE_TICK_ALL_UP.as_secs());

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

/// How much slower than the quickest free route of its channel (µs, beyond twice its wait)
/// a route must be expected to be before it leaves replies to that one.
const MUCH_SLOWER_US: u64 = 2_000;

struct Route {
    transport: Arc<dyn Transport>,
    slots: Arc<Semaphore>,
    /// One more slot, for replies only: while notices or bulk fill `slots`, a customer's reply
    /// is still handed over at once (a transport that queues sends takes it first).
    reply_slot: Arc<Semaphore>,
    /// Failover tier: a route only claims while no route of a lower tier is up.
    tier: u8,
    limiter: Option<Mutex<RateWindow>>,
    /// How long the route's recent sends took, in µs (a moving average, 0 before the first):
    /// where a reply is handed over soonest (see [`Route::expected_wait`]).
    send_time: Arc<AtomicU64>,
}

impl Route {
    /// Roughly how long, in µs, a message claimed now would take to be handed over: the
    /// sends in flight and then its own, at the route's recent pace, as if one at a time (a
    /// modem's way; a route that sends in parallel is only faster).
    fn expected_wait(&self) -> u64 {
        let in_flight = self
            .transport
            .capacity()
            .max(1)
            .saturating_sub(self.slots.available_permits());
        self.send_time.load(Ordering::Relaxed) * (in_flight as u64 + 1)
    }
}

/// How the dispatcher uses one route (from `[routing]` and the route's `rate_limit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteRules {
    pub tier: u8,
    pub rate_limit: Option<RateLimit>,
}

/// A sliding-window rate limit: the start times of the last `limit.count` sends. A send may
/// start when fewer than `count` started within the last `per`.
#[derive(Debug)]
pub struct RateWindow {
    limit: RateLimit,
    starts: VecDeque<tokio::time::Instant>,
}

impl RateWindow {
    pub fn new(limit: RateLimit) -> RateWindow {
        RateWindow {
            limit,
            starts: VecDeque::new(),
        }
    }

    fn forget_old(&mut self, now: tokio::time::Instant) {
        while self
            .starts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.limit.per)
        {
            self.starts.pop_front();
        }
    }

    /// Sends that may start now.
    pub fn available(&mut self, now: tokio::time::Instant) -> usize {
        self.forget_old(now);
        (self.limit.count as usize).saturating_sub(self.starts.len())
    }

    /// Refills the window after a restart: `ages` are how long ago earlier sends started
    /// (from the database), so a restart does not open a fresh burst.
    pub fn restore(&mut self, now: tokio::time::Instant, ages: impl IntoIterator<Item = Duration>) {
        let mut starts: Vec<tokio::time::Instant> = ages
            .into_iter()
            .filter(|age| *age < self.limit.per)
            .filter_map(|age| now.checked_sub(age))
            .chain(self.starts.drain(..))
            .collect();
        starts.sort();
        let keep = starts.len().saturating_sub(self.limit.count as usize);
        self.starts = starts.into_iter().skip(keep).collect();
    }

    /// Records `n` sends started now.
    pub fn record(&mut self, now: tokio::time::Instant, n: usize) {
        self.starts.extend(std::iter::repeat_n(now, n));
    }

    /// How long until a send may start (zero when one may start now).
    pub fn wait(&mut self, now: tokio::time::Instant) -> Duration {
        if self.available(now) > 0 {
            return Duration::ZERO;
        }
        self.starts
            .front()
            .map(|t| (*t + self.limit.per).saturating_duration_since(now))
            .unwrap_or(Duration::ZERO)
    }
}

pub struct Dispatcher {
    store: Store,
    routes: Vec<Route>,
    config: DispatchConfig,
    handle: DispatchHandle,
    grace: Duration,
    #[cfg(test)]
    faults: Arc<tests::Faults>,
}

/// Longest wait between two tries to store a send's outcome while the database refuses it.
const RECORD_RETRY_MAX: Duration = Duration::from_secs(30);

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
                reply_slot: Arc::new(Semaphore::new(1)),
                transport: t,
                tier: 0,
                limiter: None,
                send_time: Arc::default(),
            })
            .collect();
        Dispatcher {
            store,
            routes,
            config,
            handle,
            grace,
            #[cfg(test)]
            faults: Arc::default(),
        }
    }

    /// Sets each route's failover tier and rate limit (by default every route is tier 0 and
    /// unlimited).
    pub fn with_rules(mut self, rules: impl Fn(&str) -> RouteRules) -> Dispatcher {
        for route in &mut self.routes {
            let r = rules(route.transport.name());
            route.tier = r.tier;
            route.limiter = r.rate_limit.map(|l| Mutex::new(RateWindow::new(l)));
        }
        self
    }

    /// The routes other than `index` that could take its messages: the same channel (an email
    /// belongs to its account: no other route takes it).
    fn other_routes(&self, index: usize) -> Vec<Arc<dyn Transport>> {
        let channel = self.routes[index].transport.channel();
        if channel == Channel::Email {
            return Vec::new();
        }
        self.routes
            .iter()
            .enumerate()
            .filter(|(i, r)| *i != index && r.transport.channel() == channel)
            .map(|(_, r)| r.transport.clone())
            .collect()
    }

    /// Which routes may claim now, and how many messages each: up, in the lowest tier of its
    /// channel that has a route up, with free slots (0: only the reply slot is free) and under
    /// its rate limit. Routes held back only by their rate limit report when they may go again.
    fn eligible(&self) -> (Vec<(usize, usize)>, Option<Duration>) {
        let now = tokio::time::Instant::now();
        let up: Vec<bool> = self
            .routes
            .iter()
            .map(|r| r.transport.health().up)
            .collect();
        let best_tier = |channel| {
            self.routes
                .iter()
                .zip(&up)
                .filter(|(r, up)| **up && r.transport.channel() == channel)
                .map(|(r, _)| r.tier)
                .min()
        };
        let mut out = Vec::new();
        let mut limited_wait: Option<Duration> = None;
        for (i, route) in self.routes.iter().enumerate() {
            if !up[i] || best_tier(route.transport.channel()) != Some(route.tier) {
                continue;
            }
            let mut free = route.slots.available_permits();
            // With every slot taken the route still counts, with 0, while its reply slot is
            // free: the claim then looks for a reply.
            let reply_free = route.reply_slot.available_permits();
            if free + reply_free == 0 {
                continue;
            }
            if let Some(limiter) = &route.limiter {
                let mut w = limiter.lock().unwrap_or_else(|e| e.into_inner());
                let available = w.available(now);
                free = free.min(available);
                if available == 0 {
                    let wait = w.wait(now);
                    limited_wait = Some(limited_wait.map_or(wait, |d| d.min(wait)));
                    continue;
                }
            }
            out.push((i, free));
        }
        (out, limited_wait)
    }

    /// Works the queue until `shutdown`; then stops claiming, gives in-flight sends `grace` to
    /// finish, and returns whatever is still unfinished to the queue.
    pub async fn run(&self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        self.restore_rate_windows().await;
        let mut inflight: JoinSet<()> = JoinSet::new();
        let mut owners: HashMap<tokio::task::Id, Message> = HashMap::new();
        // The last look that found nothing more to claim: while the database, the routes'
        // free slots and the due time it found stand, a round claims nothing and is skipped
        // (an idle gateway's periodic round then asks no database thread).
        let mut look: LastLook<Vec<(usize, usize)>> = LastLook::default();
        while !shutdown.is_triggered() {
            self.handle
                .heartbeat
                .store(crate::model::now_ms(), Ordering::Relaxed);
            let snapshot = self.store.snapshot();
            let (eligible, limited_wait) = self.eligible();
            let wait = if limited_wait.is_none()
                && !look.needed(&snapshot, &eligible, self.store.now_ms())
            {
                self.wait_for(look.due(), self.idle_cap(None))
            } else {
                if self.claim_and_start(&mut inflight, &mut owners).await {
                    // Campaign messages were left this round: the next round comes when the
                    // hold ends (at once when this round's reply ended it), or sooner on a
                    // wake-up (a reply queued, a send finished). Their due time is past, so
                    // the queue's answer would be "now": asking it would spin.
                    look.forget();
                    self.store.bulk_held().unwrap_or(Duration::ZERO)
                } else {
                    let (wait, due, asked) = self.idle_wait().await;
                    // Recorded only when the queue was asked for the same routes, each with a
                    // free slot, as the round began with: a route that went down and up
                    // meanwhile, or one left out for having only its reply slot free, was not
                    // covered.
                    match due {
                        Some(due)
                            if limited_wait.is_none()
                                && asked == eligible
                                && eligible.iter().all(|(_, free)| *free > 0) =>
                        {
                            look.record(snapshot, eligible, due)
                        }
                        _ => look.forget(),
                    }
                    wait
                }
            };
            // A wait for the longest tick is an upper bound, and joins the other idle loops'.
            let until = crate::idle::wake_at(wait, IDLE_TICK_ALL_UP);
            tokio::select! {
                _ = self.handle.wake.notified() => {}
                Some(done) = inflight.join_next_with_id() => self.reap(done, &mut inflight, &mut owners),
                _ = crate::idle::sleep_until(until) => {}
                _ = shutdown.wait() => {}
            }
            // Every send that finished meanwhile, so the next round claims for all the slots
            // they freed in one commit instead of one commit per slot.
            while let Some(done) = inflight.try_join_next_with_id() {
                self.reap(done, &mut inflight, &mut owners);
            }
        }
        self.drain(inflight, owners).await;
        Ok(())
    }

    /// Refills each rate-limited route's window with the send times the database holds for
    /// it within the window's length, so mail sent before a restart still counts.
    async fn restore_rate_windows(&self) {
        let now_ms = self.store.now_ms();
        for route in &self.routes {
            let Some(limiter) = &route.limiter else {
                continue;
            };
            let limit = limiter.lock().unwrap_or_else(|e| e.into_inner()).limit;
            let since = now_ms - limit.per.as_millis() as i64;
            match self
                .store
                .sent_since(route.transport.name(), since, limit.count)
                .await
            {
                Ok(times) => {
                    let now = tokio::time::Instant::now();
                    let ages = times
                        .iter()
                        .map(|t| Duration::from_millis((now_ms - t).max(0) as u64));
                    let mut w = limiter.lock().unwrap_or_else(|e| e.into_inner());
                    w.restore(now, ages);
                    if !times.is_empty() {
                        log::info!(
                            transport = route.transport.name();
                            "{}: {} send(s) within the last {} count against its rate limit",
                            route.transport.name(),
                            times.len(),
                            limit
                        );
                    }
                }
                Err(e) => log::error!(
                    "dispatcher: cannot read {}'s recent sends for its rate limit: {e:#}",
                    route.transport.name()
                ),
            }
        }
    }

    /// Returns whether campaign messages were held back this round ([`Store::bulk_held`]).
    async fn claim_and_start(
        &self,
        inflight: &mut JoinSet<()>,
        owners: &mut HashMap<tokio::task::Id, Message>,
    ) -> bool {
        #[cfg(test)]
        self.faults.new_round();
        // While a customer's message is being answered, campaign messages are not claimed:
        // the reply's claim does not queue behind theirs, nor its send behind their sends.
        let held = self.store.bulk_held().is_some();
        let mut replied = false;
        // Routes with a free slot claim first, the one expected to hand a message over soonest
        // first of all: a reply waiting goes where it is sent at once, rather than behind a
        // send in progress on a slow route (a modem sends one message at a time).
        let mut waits: Vec<(usize, usize, u64)> = self
            .eligible()
            .0
            .into_iter()
            .map(|(i, free)| (i, free, self.routes[i].expected_wait()))
            .collect();
        waits.sort_by_key(|&(_, free, wait)| (free == 0, wait));
        for &(index, free, _) in &waits {
            let route = &self.routes[index];
            let leave_replies = self.leaves_replies(index, &waits);
            // Slots first, then the claim: every claimed message has a slot and a task.
            let mut permits: Vec<_> = (0..free)
                .map_while(|_| route.slots.clone().try_acquire_owned().ok())
                .collect();
            let mut priorities = if leave_replies {
                Priority::Notification..=Priority::Bulk
            } else {
                Priority::Reply..=Priority::Bulk
            };
            if held {
                priorities = *priorities.start()..=Priority::Notification;
            }
            if permits.is_empty() {
                if leave_replies {
                    continue;
                }
                // Every slot is taken: the reply slot takes a reply, if one is waiting (looked
                // for on a reader first, so a busy route adds no write per round).
                let channel = route.transport.channel();
                let name = route.transport.name().to_string();
                if !matches!(self.store.reply_due(channel, name).await, Ok(true)) {
                    continue;
                }
                let Ok(permit) = route.reply_slot.clone().try_acquire_owned() else {
                    continue;
                };
                permits.push(permit);
                priorities = Priority::Reply..=Priority::Reply;
            }
            let claimed = match self
                .store
                .claim_due(
                    route.transport.channel(),
                    route.transport.name(),
                    permits.len() as u32,
                    priorities,
                )
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    log::error!("dispatcher: cannot claim messages: {e:#}");
                    continue;
                }
            };
            #[cfg(test)]
            self.faults.after_claim(&route.slots);
            if let Some(limiter) = &route.limiter {
                let mut w = limiter.lock().unwrap_or_else(|e| e.into_inner());
                w.record(tokio::time::Instant::now(), claimed.len());
            }
            replied |= claimed.iter().any(|m| m.priority == Priority::Reply);
            for (message, permit) in claimed.into_iter().zip(permits) {
                let owned = message.clone();
                let task = send_one(
                    self.store.clone(),
                    route.transport.clone(),
                    route.send_time.clone(),
                    permit,
                    message,
                    self.config.clone(),
                    self.handle.clone(),
                    self.other_routes(index),
                    #[cfg(test)]
                    self.faults.clone(),
                );
                let handle = inflight.spawn(task);
                owners.insert(handle.id(), owned);
            }
        }
        if replied {
            // The reply is on its way: campaign messages go on.
            self.store.release_bulk();
        }
        held
    }

    /// Whether route `index` leaves replies to another route of its channel this round. A
    /// reply committed while a round goes on must not fall to a slow route (a modem mid-send)
    /// when a much quicker one had a free slot in the round: it is left for the quicker one's
    /// next round, which the reply's own wake-up starts. `waits`: (route, free slots, expected
    /// wait) of the routes in the round.
    fn leaves_replies(&self, index: usize, waits: &[(usize, usize, u64)]) -> bool {
        let route = &self.routes[index];
        waits.iter().any(|&(other, other_free, wait)| {
            other != index
                && other_free > 0
                && self.routes[other].transport.channel() == route.transport.channel()
                && route.expected_wait() > 2 * wait + MUCH_SLOWER_US
        })
    }

    /// How long to sleep when there is nothing to do: until the next retry falls due or a
    /// rate-limited route may send again, capped. With it, the soonest due time the queue
    /// answered for the routes with a free slot (`None` when it was not asked or failed), and
    /// the routes (with their free slots) it looked at.
    async fn idle_wait(&self) -> (Duration, Option<Option<i64>>, Vec<(usize, usize)>) {
        let (eligible, limited_wait) = self.eligible();
        // A route whose only free slot is the reply slot is woken by the reply being queued
        // (or by a send finishing), not by the notices due behind its full slots.
        let channels: Vec<_> = eligible
            .iter()
            .filter(|(_, free)| *free > 0)
            .map(|(i, _)| {
                let t = &self.routes[*i].transport;
                (t.channel(), t.name().to_string())
            })
            .collect();
        let cap = self.idle_cap(limited_wait);
        if channels.is_empty() {
            return (cap, None, eligible);
        }
        match self.store.next_due(channels).await {
            Ok(due) => (self.wait_for(due, cap), Some(due), eligible),
            Err(e) => {
                log::error!("dispatcher: cannot read the queue: {e:#}");
                (IDLE_TICK, None, eligible)
            }
        }
    }

    /// The longest idle sleep: a short tick while a route is down, a long one otherwise, or
    /// until a rate-limited route may send again.
    fn idle_cap(&self, limited_wait: Option<Duration>) -> Duration {
        let tick = if self.routes.iter().all(|r| r.transport.health().up) {
            IDLE_TICK_ALL_UP
        } else {
            IDLE_TICK
        };
        limited_wait.map_or(tick, |w| w.clamp(Duration::from_millis(10), tick))
    }

    /// Until `due` (Unix ms on the store's clock), at most `cap`.
    fn wait_for(&self, due: Option<i64>, cap: Duration) -> Duration {
        match due {
            Some(at) => {
                let ms = (at - self.store.now_ms()).clamp(0, cap.as_millis() as i64);
                Duration::from_millis(ms as u64)
            }
            None => cap,
        }
    }

    fn reap(
        &self,
        done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
        inflight: &mut JoinSet<()>,
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
                    let outcome = outcome_of(&self.config, &m, Err(reason), self.store.now_ms());
                    log::error!(msg_id = m.id.0; "send of message {} crashed: {e}; outcome {outcome:?}", m.id);
                    // A task of its own stores it, so the message always has one working on it.
                    let store = self.store.clone();
                    #[cfg(test)]
                    let faults = self.faults.clone();
                    let id = m.id;
                    let handle = inflight.spawn(async move {
                        record_until_stored(
                            &store,
                            id,
                            outcome,
                            #[cfg(test)]
                            &faults,
                        )
                        .await
                    });
                    owners.insert(handle.id(), m);
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
                Ok(Some(done)) => self.reap(done, &mut inflight, &mut owners),
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
    result: Result<SendReceipt, TransportError>,
    now: i64,
) -> Outcome {
    match result {
        Ok(receipt) => Outcome::Sent {
            provider_ref: receipt.provider_ref,
            note: receipt.unconfirmed,
            answer: receipt.answer,
        },
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

/// What a transport is handed for a stored message. Stored messages carry one text today; it
/// becomes the content of the message's channel.
pub fn outgoing(message: &Message) -> Outgoing {
    let text = message.body.clone();
    let content = match message.channel {
        Channel::Sms => Content::Sms { text },
        Channel::Whatsapp => Content::Whatsapp(
            crate::transport::whatsapp::templates::decode(&text)
                .unwrap_or(Whatsapp::Text { body: text }),
        ),
        Channel::Email => crate::transport::email::stored::content(&text),
    };
    Outgoing {
        id: message.id,
        to: message.peer.clone(),
        content,
        attempt: message.attempts,
        priority: message.priority,
    }
}

/// Sends one message on `transport` and records the outcome. `slot` is the route's slot the
/// send occupies: it is given back as soon as the transport has answered, so the route's next
/// send need not wait for this outcome's commit (and the next claim can share that commit);
/// the task itself, and so the message's place in the dispatcher's in-flight set, lasts until
/// the outcome is stored. `others` are the other routes of the message's channel: when the
/// failure took `transport` down and one of them is up, the retry is due at once instead of
/// after the backoff.
#[allow(clippy::too_many_arguments)]
async fn send_one(
    store: Store,
    transport: Arc<dyn Transport>,
    send_time: Arc<AtomicU64>,
    slot: OwnedSemaphorePermit,
    message: Message,
    config: DispatchConfig,
    handle: DispatchHandle,
    others: Vec<Arc<dyn Transport>>,
    #[cfg(test)] faults: Arc<tests::Faults>,
) {
    let id = message.id.0;
    let channel = message.channel.as_str();
    let route = transport.name().to_string();
    let outgoing = outgoing(&message);
    let started = tokio::time::Instant::now();
    let result = match tokio::time::timeout(SEND_DEADLINE, transport.send(&outgoing)).await {
        Ok(r) => r,
        Err(_) => Err(TransportError::Temporary(format!(
            "no answer from {route} within {} s",
            SEND_DEADLINE.as_secs()
        ))),
    };
    // A moving average over about the last 8 sends.
    let took = started.elapsed().as_micros().min(u64::MAX as u128) as u64;
    let _ = send_time.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |avg| {
        Some(if avg == 0 {
            took
        } else {
            avg - avg / 8 + took / 8
        })
    });
    drop(slot);
    handle.wake();
    let mut outcome = outcome_of(&config, &message, result, store.now_ms());
    // The route failed, not the message: another route may take it at once, without backoff.
    if let Outcome::Retry { retry_at, .. } = &mut outcome
        && !transport.health().up
        && others.iter().any(|t| t.health().up)
    {
        *retry_at = store.now_ms();
    }
    let peer = shown_peer(&message.peer);
    match &outcome {
        Outcome::Sent { note: None, .. } => log::info!(
            msg_id = id, channel = channel, transport = route.as_str();
            "message {id} sent to {peer} via {route}"
        ),
        Outcome::Sent {
            note: Some(note), ..
        } => log::warn!(
            msg_id = id, channel = channel, transport = route.as_str();
            "message {id} to {peer} handed to {route} without a confirmation ({note}); \
             counted as sent, not resent"
        ),
        Outcome::Retry { error, retry_at } => log::warn!(
            msg_id = id, channel = channel, transport = route.as_str();
            "message {id} to {peer} failed on attempt {} ({error}); retrying in {} s",
            message.attempts,
            ((retry_at - store.now_ms()).max(0) + 999) / 1000
        ),
        Outcome::Failed { error } => log::warn!(
            msg_id = id, channel = channel, transport = route.as_str();
            "message {id} to {peer} failed: {error}"
        ),
    }
    record_until_stored(
        &store,
        message.id,
        outcome,
        #[cfg(test)]
        &faults,
    )
    .await;
    handle.wake();
}

/// Stores `outcome`, trying again with capped backoff while the database refuses it: the task
/// that sent a message stays with it until its outcome is stored (or the daemon stops, and the
/// message goes back to the queue).
async fn record_until_stored(
    store: &Store,
    id: MessageId,
    outcome: Outcome,
    #[cfg(test)] faults: &tests::Faults,
) {
    let mut delay = Duration::from_secs(1);
    loop {
        #[cfg(test)]
        let result = match faults.outcome_failure() {
            Some(e) => Err(e),
            None => store.record_outcome(id, outcome.clone()).await,
        };
        #[cfg(not(test))]
        let result = store.record_outcome(id, outcome.clone()).await;
        match result {
            Ok(()) => return,
            // A delivery report that arrived while the send was finishing already moved it on.
            Err(StoreError::Conflict(e)) => {
                log::debug!(msg_id = id.0; "message {id}: {e}");
                return;
            }
            Err(e) => {
                log::error!(msg_id = id.0;
                    "message {id}: cannot record the send result ({e:#}); trying again in {} s",
                    delay.as_secs());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RECORD_RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    use crate::model::Priority;
    use crate::store::NewOutbound;
    use crate::transport::{BoxFuture, Health};

    /// Faults a test tells the dispatcher to hit.
    #[derive(Default)]
    pub(super) struct Faults {
        /// The next claim: another claimant takes every free slot right after it (until the
        /// next round).
        steal_slots: std::sync::atomic::AtomicBool,
        stolen: Mutex<Vec<OwnedSemaphorePermit>>,
        /// This many tries to store an outcome fail.
        outcome_failures: AtomicU32,
    }

    impl Faults {
        pub(super) fn after_claim(&self, slots: &Arc<Semaphore>) {
            if self.steal_slots.swap(false, Ordering::SeqCst) {
                let mut stolen = self.stolen.lock().unwrap();
                while let Ok(p) = slots.clone().try_acquire_owned() {
                    stolen.push(p);
                }
            }
        }

        /// The other claimant gives back what it took.
        pub(super) fn new_round(&self) {
            self.stolen.lock().unwrap().clear();
        }

        pub(super) fn outcome_failure(&self) -> Option<StoreError> {
            self.outcome_failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .ok()
                .map(|_| StoreError::Commit("injected: disk I/O error".into()))
        }
    }

    /// A test route taking `capacity` sends at a time and recording each one handed over.
    /// Without a gate every send succeeds at once; with one, a send finishes only when the test
    /// adds a permit to the gate.
    struct TestRoute {
        name: &'static str,
        capacity: usize,
        gate: Option<Arc<Semaphore>>,
        handed: Mutex<Vec<(MessageId, Priority)>>,
    }

    impl TestRoute {
        fn new(capacity: usize, gate: Option<Arc<Semaphore>>) -> Arc<TestRoute> {
            TestRoute::named("test", capacity, gate)
        }

        fn named(
            name: &'static str,
            capacity: usize,
            gate: Option<Arc<Semaphore>>,
        ) -> Arc<TestRoute> {
            Arc::new(TestRoute {
                name,
                capacity,
                gate,
                handed: Mutex::new(Vec::new()),
            })
        }
    }

    impl Transport for TestRoute {
        fn name(&self) -> &str {
            self.name
        }
        fn channel(&self) -> Channel {
            Channel::Sms
        }
        fn capacity(&self) -> usize {
            self.capacity
        }
        fn health(&self) -> Health {
            Health {
                up: true,
                detail: "up".into(),
            }
        }
        fn send<'a>(
            &'a self,
            message: &'a Outgoing,
        ) -> BoxFuture<'a, Result<SendReceipt, TransportError>> {
            self.handed
                .lock()
                .unwrap()
                .push((message.id, message.priority));
            Box::pin(async move {
                if let Some(gate) = &self.gate {
                    gate.acquire().await.unwrap().forget();
                }
                Ok(SendReceipt::default())
            })
        }
    }

    /// A dispatcher over `routes` with the default settings.
    fn dispatcher(
        store: &Store,
        routes: Vec<Arc<dyn Transport>>,
        handle: &DispatchHandle,
    ) -> Dispatcher {
        Dispatcher::new(
            store.clone(),
            routes,
            DispatchConfig::default(),
            handle.clone(),
            Duration::from_secs(5),
        )
    }

    /// A message to one customer's number, due now.
    fn out(body: &str, priority: Priority) -> NewOutbound {
        NewOutbound {
            channel: Channel::Sms,
            peer: "+5491123456789".into(),
            body: body.into(),
            priority,
            customer_id: None,
            window: None,
            not_before: None,
        }
    }

    #[tokio::test]
    async fn no_message_is_stranded_in_sending_by_a_lost_slot_or_a_failed_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let n = 6;
        let ids = store
            .enqueue(
                (0..n)
                    .map(|i| out(&format!("aviso {i}"), Priority::Notification))
                    .collect(),
            )
            .await
            .unwrap();
        let dispatcher = dispatcher(
            &store,
            vec![TestRoute::new(2, None)],
            &DispatchHandle::default(),
        );
        dispatcher.faults.steal_slots.store(true, Ordering::SeqCst);
        dispatcher
            .faults
            .outcome_failures
            .store(3, Ordering::SeqCst);
        let (trigger, shutdown) = crate::shutdown::channel();
        let run = dispatcher.run(shutdown);
        tokio::pin!(run);
        // Real time: the store works on its own thread. Stores that fail are tried again after
        // 1, 2, 4 s; a stranded message never moves again.
        let mut rounds = 0;
        loop {
            tokio::select! {
                r = &mut run => panic!("the dispatcher stopped: {r:?}"),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            let mut states = Vec::new();
            for id in &ids {
                states.push(store.get(*id).await.unwrap().state);
            }
            if states.iter().all(|s| *s == crate::model::State::Sent) {
                break;
            }
            rounds += 1;
            assert!(rounds < 1200, "messages left behind after 60 s: {states:?}");
        }
        assert_eq!(dispatcher.faults.outcome_failures.load(Ordering::SeqCst), 0);
        trigger.trigger();
        run.await.unwrap();
        store.close().await;
    }

    #[tokio::test]
    async fn a_reply_goes_to_the_route_that_hands_it_over_soonest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let gate = Arc::new(Semaphore::new(0));
        // "modem": one send at a time, and sends have taken 50 ms; "api": 0.2 ms.
        let modem = TestRoute::named("modem", 2, Some(gate.clone()));
        let api = TestRoute::named("api", 4, None);
        let handle = DispatchHandle::default();
        let dispatcher = dispatcher(&store, vec![modem.clone(), api.clone()], &handle);
        dispatcher.routes[0]
            .send_time
            .store(50_000, Ordering::Relaxed);
        dispatcher.routes[1].send_time.store(200, Ordering::Relaxed);
        let all_free = [(0, 2, 50_000), (1, 4, 200)];
        assert!(
            dispatcher.leaves_replies(0, &all_free),
            "the modem leaves replies"
        );
        assert!(!dispatcher.leaves_replies(1, &all_free));
        // With no free slot on the quick route, the modem takes them.
        assert!(!dispatcher.leaves_replies(0, &[(0, 2, 50_000), (1, 0, 200)]));
        // Routes of about the same pace do not leave replies to each other.
        dispatcher.routes[1]
            .send_time
            .store(40_000, Ordering::Relaxed);
        assert!(!dispatcher.leaves_replies(0, &[(0, 2, 50_000), (1, 4, 40_000)]));
        dispatcher.routes[1].send_time.store(200, Ordering::Relaxed);

        let reply = store
            .enqueue(vec![out("su saldo", Priority::Reply)])
            .await
            .unwrap();
        let (trigger, shutdown) = crate::shutdown::channel();
        let run = dispatcher.run(shutdown);
        tokio::pin!(run);
        for round in 0.. {
            tokio::select! {
                r = &mut run => panic!("the dispatcher stopped: {r:?}"),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            if !api.handed.lock().unwrap().is_empty() {
                break;
            }
            assert!(round < 1500, "the reply was not handed over");
        }
        assert_eq!(
            api.handed.lock().unwrap().clone(),
            [(reply[0], Priority::Reply)]
        );
        assert!(
            modem.handed.lock().unwrap().is_empty(),
            "both routes were free"
        );
        trigger.trigger();
        gate.add_permits(10);
        run.await.unwrap();
        store.close().await;
    }

    #[tokio::test]
    async fn campaign_messages_wait_while_a_customer_is_answered_and_go_once_the_reply_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let bulk = store
            .enqueue(vec![
                out("campaña 1", Priority::Bulk),
                out("campaña 2", Priority::Bulk),
            ])
            .await
            .unwrap();
        let route = TestRoute::new(4, None);
        let dispatcher = dispatcher(&store, vec![route.clone()], &DispatchHandle::default());
        let mut inflight = JoinSet::new();
        let mut owners = HashMap::new();
        // One round, and the sends it started, to their end.
        macro_rules! round {
            () => {{
                let held = dispatcher.claim_and_start(&mut inflight, &mut owners).await;
                while let Some(done) = inflight.join_next_with_id().await {
                    dispatcher.reap(done, &mut inflight, &mut owners);
                }
                held
            }};
        }
        // An inbound message is being answered (held long here: the test's pace is not timed).
        store.hold_bulk(Duration::from_secs(3600));
        assert!(round!());
        assert!(route.handed.lock().unwrap().is_empty(), "bulk claimed");
        // Its reply is claimed, and that ends the hold.
        let reply = store
            .enqueue(vec![out("su saldo", Priority::Reply)])
            .await
            .unwrap();
        assert!(round!());
        assert_eq!(
            route.handed.lock().unwrap().clone(),
            [(reply[0], Priority::Reply)]
        );
        assert_eq!(store.bulk_held(), None);
        // The next round takes the campaign messages.
        assert!(!round!());
        assert_eq!(
            route.handed.lock().unwrap()[1..].to_vec(),
            [(bulk[0], Priority::Bulk), (bulk[1], Priority::Bulk)]
        );
        store.close().await;
    }

    #[tokio::test]
    async fn a_dispatcher_holding_campaign_messages_back_sleeps_rather_than_asks_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .enqueue(vec![out("campaña", Priority::Bulk)])
            .await
            .unwrap();
        let route = TestRoute::new(2, None);
        let dispatcher = dispatcher(&store, vec![route.clone()], &DispatchHandle::default());
        store.hold_bulk(Duration::from_secs(3600));
        let before = store.job_count();
        let (trigger, shutdown) = crate::shutdown::channel();
        let run = dispatcher.run(shutdown);
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => panic!("the dispatcher stopped: {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        // The bulk message is due, but held: a round asked the queue, then slept. One that
        // asked again at once would have sent hundreds of jobs to the database by now.
        let jobs = store.job_count() - before;
        assert!(jobs <= 6, "{jobs} database jobs while held");
        assert!(route.handed.lock().unwrap().is_empty());
        store.release_bulk();
        dispatcher.handle.wake();
        for _ in 0..1200 {
            if !route.handed.lock().unwrap().is_empty() {
                break;
            }
            tokio::select! {
                r = &mut run => panic!("the dispatcher stopped: {r:?}"),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        assert_eq!(route.handed.lock().unwrap().len(), 1, "sent once released");
        trigger.trigger();
        run.await.unwrap();
        store.close().await;
    }

    #[tokio::test]
    async fn a_reply_is_handed_over_while_notices_fill_every_slot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let notices = store
            .enqueue(vec![
                out("aviso 1", Priority::Notification),
                out("aviso 2", Priority::Notification),
            ])
            .await
            .unwrap();
        let gate = Arc::new(Semaphore::new(0));
        let route = TestRoute::new(1, Some(gate.clone()));
        let handle = DispatchHandle::default();
        let dispatcher = dispatcher(&store, vec![route.clone()], &handle);
        let (trigger, shutdown) = crate::shutdown::channel();
        let run = dispatcher.run(shutdown);
        tokio::pin!(run);
        let handed = |n: usize| {
            let route = route.clone();
            async move {
                for _ in 0..1200 {
                    if route.handed.lock().unwrap().len() >= n {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                panic!(
                    "nothing more handed over: {:?}",
                    route.handed.lock().unwrap()
                );
            }
        };
        tokio::select! {
            r = &mut run => panic!("the dispatcher stopped: {r:?}"),
            _ = handed(1) => {}
        }
        // The only slot holds the first notice; a reply queued now still goes out at once.
        let reply = store
            .enqueue(vec![out("respuesta", Priority::Reply)])
            .await
            .unwrap();
        handle.wake();
        tokio::select! {
            r = &mut run => panic!("the dispatcher stopped: {r:?}"),
            _ = handed(2) => {}
        }
        assert_eq!(
            route.handed.lock().unwrap().clone(),
            vec![
                (notices[0], Priority::Notification),
                (reply[0], Priority::Reply)
            ]
        );
        // The reply slot takes replies only: the second notice waits for the first to finish.
        gate.add_permits(3);
        tokio::select! {
            r = &mut run => panic!("the dispatcher stopped: {r:?}"),
            _ = handed(3) => {}
        }
        assert_eq!(route.handed.lock().unwrap()[2].0, notices[1]);
        trigger.trigger();
        run.await.unwrap();
        store.close().await;
    }

    #[test]
    fn outgoing_carries_the_message_as_its_channel_content() {
        let m = Message {
            id: MessageId(42),
            direction: crate::model::Direction::Out,
            channel: Channel::Sms,
            transport: None,
            peer: "+5491123456789".into(),
            body: "Su pago fue registrado".into(),
            state: crate::model::State::Sending,
            priority: crate::model::Priority::Notification,
            attempts: 3,
            next_attempt_at: None,
            last_error: None,
            provider_ref: None,
            customer_id: None,
            created_at: 0,
            updated_at: 0,
            sent_at: None,
            delivered_at: None,
        };
        let o = outgoing(&m);
        assert_eq!(
            (o.id, o.to.as_str(), o.attempt),
            (MessageId(42), "+5491123456789", 3)
        );
        assert_eq!(o.content.sms_text(), Some("Su pago fue registrado"));
        let mail = outgoing(&Message {
            channel: Channel::Email,
            ..m.clone()
        });
        assert_eq!(mail.content.channel(), Channel::Email);
        assert_eq!(mail.content.sms_text(), None);
        let wa = outgoing(&Message {
            channel: Channel::Whatsapp,
            ..m
        });
        assert!(matches!(
            wa.content,
            Content::Whatsapp(Whatsapp::Text { .. })
        ));
    }

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

    #[test]
    fn rate_window_slides() {
        let limit = RateLimit::parse("3/10s").unwrap();
        let mut w = RateWindow::new(limit);
        let t0 = tokio::time::Instant::now();
        assert_eq!(w.available(t0), 3);
        w.record(t0, 2);
        assert_eq!(w.available(t0), 1);
        w.record(t0 + Duration::from_secs(4), 1);
        assert_eq!(w.available(t0 + Duration::from_secs(9)), 0);
        assert_eq!(w.wait(t0 + Duration::from_secs(9)), Duration::from_secs(1));
        // The first two leave the window at 10 s, the third at 14 s.
        assert_eq!(w.available(t0 + Duration::from_secs(10)), 2);
        assert_eq!(w.available(t0 + Duration::from_secs(14)), 3);
        assert_eq!(w.wait(t0 + Duration::from_secs(14)), Duration::ZERO);
    }
}
