//! An email account's rate limit across a restart, on tokio's paused clock: 300 mails on a
//! `"100/hour"` account go out over three hours, none lost or sent twice, though the store and
//! the dispatcher are closed and opened again (over the same database file) in the middle of
//! the second hour's batch. The real store, queue, dispatcher and rate windows run; the SMTP
//! server is replaced at the transport boundary by a route that records what it is handed and
//! takes 10 s per mail (a real server cannot be used with paused time: tokio would jump the
//! clock, and lettre's timeouts with it, while the socket waits).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pasarela::config::{DispatchConfig, RateLimit};
use pasarela::dispatch::{DispatchHandle, Dispatcher, RouteRules};
use pasarela::model::{Channel, Email, Priority, State};
use pasarela::store::{Clock, NewOutbound, Store};
use pasarela::transport::email::stored::StoredEmail;
use pasarela::transport::{BoxFuture, Health, Outgoing, SendReceipt, Transport, TransportError};
use tokio::time::Instant;

const MAILS: usize = 300;
const HOUR: Duration = Duration::from_secs(3600);
/// How long the recording route takes over one mail (an SMTP dialogue with a 200 KB PDF).
const SEND_TAKES: Duration = Duration::from_secs(10);

/// The `facturas` account's route at the transport boundary: it records when each mail
/// started and which one it was.
struct Recorder {
    t0: Instant,
    log: Arc<Mutex<Vec<(Duration, i64)>>>,
    /// How many sends were recorded (the test waits on it without a timer of its own: a
    /// polling sleep would let the paused clock run ahead while the database thread works).
    count: tokio::sync::watch::Sender<usize>,
}

impl Transport for Recorder {
    fn name(&self) -> &str {
        "facturas"
    }

    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn capacity(&self) -> usize {
        1
    }

    fn health(&self) -> Health {
        Health {
            up: true,
            detail: "recording".into(),
        }
    }

    fn send<'a>(
        &'a self,
        message: &'a Outgoing,
    ) -> BoxFuture<'a, Result<SendReceipt, TransportError>> {
        Box::pin(async move {
            let n = {
                let mut log = self.log.lock().unwrap();
                log.push((self.t0.elapsed(), message.id.0));
                log.len()
            };
            self.count.send_replace(n);
            tokio::time::sleep(SEND_TAKES).await;
            Ok(SendReceipt {
                provider_ref: Some(format!(
                    "<{}.facturas.pasarela@fibrasur.com.ar>",
                    message.id
                )),
                answer: Some("250 2.0.0 Ok: queued".into()),
                ..SendReceipt::default()
            })
        })
    }
}

fn dispatcher(store: &Store, route: Recorder) -> Dispatcher {
    let route: Arc<dyn Transport> = Arc::new(route);
    Dispatcher::new(
        store.clone(),
        vec![route],
        DispatchConfig::default(),
        DispatchHandle::default(),
        Duration::from_secs(60),
    )
    .with_rules(|_| RouteRules {
        tier: 0,
        rate_limit: Some(RateLimit::parse("100/hour").unwrap()),
    })
}

/// Steps of the paused clock. Auto-advance is held off for the whole test (a blocking task
/// inhibits it): it would jump to the next timer whenever the runtime waits for the database's
/// own threads, running the clock ahead by hours while a write commits.
const STEP: Duration = Duration::from_secs(5);

/// Moves the paused clock on in [`STEP`]s until `done`, letting the database settle after
/// each step (until no new write was handed to it for a few real milliseconds).
async fn step_until(store: &Store, mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::time::advance(STEP).await;
        loop {
            let before = store.write_count();
            tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(3)))
                .await
                .unwrap();
            if store.write_count() == before {
                break;
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_hundred_an_hour_holds_across_a_restart_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let base = pasarela::model::now_ms();
    // The store stamps rows on the same paused clock the dispatcher and its windows run on.
    let clock: Clock = Arc::new(move || base + t0.elapsed().as_millis() as i64);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (count, counted) = tokio::sync::watch::channel(0);
    let (hold, held) = std::sync::mpsc::channel::<()>();
    let inhibitor = tokio::task::spawn_blocking(move || held.recv());

    let store = Store::open(dir.path()).unwrap().with_clock(clock.clone());
    let body = |n: usize| {
        StoredEmail::new(
            "facturas",
            &Email {
                subject: format!("Factura {n}"),
                text: format!("Su factura {n}"),
                ..Default::default()
            },
        )
        .to_body()
    };
    let ids = store
        .enqueue(
            (0..MAILS)
                .map(|n| NewOutbound {
                    channel: Channel::Email,
                    peer: format!("cliente{n}@example.com"),
                    body: body(n),
                    priority: Priority::Notification,
                    customer_id: None,
                    window: None,
                    not_before: None,
                })
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), MAILS);

    // First run: the first hour's hundred and half of the second hour's.
    let (stop, shutdown) = pasarela::shutdown::channel();
    let first = dispatcher(
        &store,
        Recorder {
            t0,
            log: log.clone(),
            count: count.clone(),
        },
    );
    let run = tokio::spawn(async move { first.run(shutdown).await });
    step_until(&store, || *counted.borrow() >= 150).await;
    let restarted_at = t0.elapsed();
    stop.trigger();
    step_until(&store, || run.is_finished()).await;
    run.await.unwrap().unwrap();
    store.close().await;
    drop(store);

    // Second run over the same database file: its windows are refilled from the sends stored.
    let store = Store::open(dir.path()).unwrap().with_clock(clock);
    let (stop, shutdown) = pasarela::shutdown::channel();
    let second = dispatcher(
        &store,
        Recorder {
            t0,
            log: log.clone(),
            count: count.clone(),
        },
    );
    let run = tokio::spawn(async move { second.run(shutdown).await });
    step_until(&store, || *counted.borrow() >= MAILS).await;
    let last_at = t0.elapsed();
    // Anything more would show up in the log within another hour.
    let until = t0.elapsed() + HOUR + SEND_TAKES * 2;
    step_until(&store, || t0.elapsed() >= until).await;
    stop.trigger();
    step_until(&store, || run.is_finished()).await;
    run.await.unwrap().unwrap();
    drop(hold);
    inhibitor.await.unwrap().unwrap_err();

    let log = log.lock().unwrap().clone();
    assert!(
        restarted_at > HOUR && restarted_at < 2 * HOUR,
        "restarted at {restarted_at:?}"
    );
    // Nothing lost, nothing sent twice.
    assert_eq!(log.len(), MAILS, "sends: {}", log.len());
    let sent: BTreeSet<i64> = log.iter().map(|(_, id)| *id).collect();
    let queued: BTreeSet<i64> = ids.iter().map(|id| id.0).collect();
    assert_eq!(sent, queued);
    for id in &ids {
        let m = store.get(*id).await.unwrap();
        assert_eq!(m.state, State::Sent, "message {id}");
    }
    // At most 100 starts in any hour, restart included: the second run did not open a
    // fresh burst.
    for (i, (start, _)) in log.iter().enumerate() {
        let within = log[i..]
            .iter()
            .take_while(|(t, _)| *t < *start + HOUR)
            .count();
        assert!(within <= 100, "{within} mails in the hour from {start:?}");
    }
    assert!(last_at < 3 * HOUR, "the last mail went at {last_at:?}");
    // A hundred in each of the three hours.
    for hour in 0..3u32 {
        let n = log
            .iter()
            .filter(|(t, _)| *t >= HOUR * hour && *t < HOUR * (hour + 1))
            .count();
        assert_eq!(n, 100, "hour {hour}");
    }
    store.close().await;
}
