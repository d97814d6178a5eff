//! The outbox pipeline with a transport written here through the public trait: priorities,
//! retries with backoff, permanent failures, a crashing transport, and shutdown grace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pasarela::config::Loaded;
use pasarela::daemon::{self, Parts};
use pasarela::store::{Channel, ListFilter, MessageId, NewOutbound, Priority, State, Store};
use pasarela::transport::{BoxFuture, Health, SendReceipt, Transport, TransportError};

/// Behaves by the text it is given: `ok…` succeeds, `temp-N…` fails temporarily N times then
/// succeeds, `perm…` fails permanently, `slow…` takes 300 ms, `hang…` never answers,
/// `panic…` panics.
#[derive(Default)]
struct ScriptedRoute {
    sent: Mutex<Vec<String>>,
    tries: Mutex<HashMap<MessageId, u32>>,
}

impl Transport for ScriptedRoute {
    fn name(&self) -> &str {
        "scripted"
    }
    fn channel(&self) -> Channel {
        Channel::Sms
    }
    fn health(&self) -> Health {
        Health {
            up: true,
            detail: "scripted route".into(),
        }
    }
    fn send<'a>(
        &'a self,
        m: &'a pasarela::model::Outgoing,
    ) -> BoxFuture<'a, Result<SendReceipt, TransportError>> {
        Box::pin(async move {
            let tries = {
                let mut t = self.tries.lock().unwrap();
                let n = t.entry(m.id).or_default();
                *n += 1;
                *n
            };
            let body = m.content.sms_text().unwrap_or_default();
            if let Some(rest) = body.strip_prefix("temp-") {
                let n: u32 = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                if tries <= n {
                    return Err(TransportError::Temporary(format!("congestion #{tries}")));
                }
            } else if body.starts_with("perm") {
                return Err(TransportError::Permanent("unassigned number".into()));
            } else if body.starts_with("slow") {
                tokio::time::sleep(Duration::from_millis(300)).await;
            } else if body.starts_with("hang") {
                std::future::pending::<()>().await;
            } else if body.starts_with("panic") {
                panic!("scripted crash");
            }
            self.sent.lock().unwrap().push(body.to_string());
            Ok(SendReceipt {
                provider_ref: Some(format!("ref-{}", m.id)),
                ..SendReceipt::default()
            })
        })
    }
}

fn config(dir: &std::path::Path, extra: &str) -> Loaded {
    let text = format!(
        "[daemon]\nstate_dir = \"{}\"\nshutdown_grace_secs = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [dispatch]\nretry_base_secs = 1\nretry_max_secs = 2\n{extra}\n",
        dir.join("state").display()
    );
    pasarela::setup::from_toml(&text).unwrap()
}

async fn seed(dir: &std::path::Path, items: &[(&str, Priority)]) -> Vec<MessageId> {
    let store = Store::open(&dir.join("state")).unwrap();
    let ids = store
        .enqueue(
            items
                .iter()
                .map(|(body, priority)| NewOutbound {
                    channel: Channel::Sms,
                    peer: "+5491123456789".into(),
                    body: body.to_string(),
                    priority: *priority,
                    customer_id: None,
                    window: None,
                    not_before: None,
                })
                .collect(),
        )
        .await
        .unwrap();
    store.close().await;
    ids
}

async fn all(dir: &std::path::Path) -> Vec<pasarela::store::Message> {
    let store = Store::open(&dir.join("state")).unwrap();
    let mut v = store
        .list(ListFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    store.close().await;
    v.reverse();
    v
}

/// Runs the daemon with `route` until `done` says so (or 30 s), then stops it.
async fn run_until(
    loaded: Loaded,
    route: Arc<ScriptedRoute>,
    done: impl Fn(&ScriptedRoute) -> bool + Send + 'static,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let watched = route.clone();
    let stop = async move {
        for _ in 0..3000 {
            if done(&watched) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the pipeline did not finish in time");
    };
    let parts = Parts {
        transports: vec![route as Arc<dyn Transport>],
        listener: Some(listener),
    };
    daemon::run(loaded, parts, stop).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_order_reply_then_notification_then_bulk() {
    let dir = tempfile::tempdir().unwrap();
    seed(
        dir.path(),
        &[
            ("ok bulk", Priority::Bulk),
            ("ok note", Priority::Notification),
            ("ok reply", Priority::Reply),
        ],
    )
    .await;
    let route = Arc::new(ScriptedRoute::default());
    run_until(config(dir.path(), ""), route.clone(), |r| {
        r.sent.lock().unwrap().len() == 3
    })
    .await;
    assert_eq!(
        *route.sent.lock().unwrap(),
        ["ok reply", "ok note", "ok bulk"]
    );
    let msgs = all(dir.path()).await;
    assert!(
        msgs.iter()
            .all(|m| m.state == State::Sent && m.attempts == 1)
    );
    assert_eq!(
        msgs[0].provider_ref.as_deref(),
        Some(format!("ref-{}", msgs[0].id).as_str())
    );
    assert_eq!(msgs[0].transport.as_deref(), Some("scripted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_never_block_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut items = vec![
        ("perm 1", Priority::Notification),
        ("temp-2 a", Priority::Notification),
        ("temp-99 b", Priority::Notification),
        ("panic c", Priority::Notification),
    ];
    let oks: Vec<String> = (0..20).map(|i| format!("ok {i}")).collect();
    for s in &oks {
        items.push((s.as_str(), Priority::Notification));
    }
    seed(dir.path(), &items).await;
    let route = Arc::new(ScriptedRoute::default());
    let loaded = config(dir.path(), "max_attempts = 3");
    run_until(loaded, route.clone(), |r| {
        let tries = r.tries.lock().unwrap();
        // temp-99 and panic exhaust 3 attempts; temp-2 succeeds on its third.
        r.sent.lock().unwrap().len() == 21 && tries.values().filter(|n| **n == 3).count() == 3
    })
    .await;
    let sent = route.sent.lock().unwrap().clone();
    // Every good message went out before the one that needed retries.
    assert_eq!(sent.last().unwrap(), "temp-2 a");
    // Give the last outcomes a moment to be recorded by the stopped daemon (they were awaited).
    let msgs = all(dir.path()).await;
    let by_body: HashMap<_, _> = msgs.iter().map(|m| (m.body.as_str(), m)).collect();
    let perm = by_body["perm 1"];
    assert_eq!((perm.state, perm.attempts), (State::Failed, 1));
    assert_eq!(perm.last_error.as_deref(), Some("unassigned number"));
    let retried = by_body["temp-2 a"];
    assert_eq!((retried.state, retried.attempts), (State::Sent, 3));
    assert_eq!(retried.last_error.as_deref(), Some("congestion #2"));
    let given_up = by_body["temp-99 b"];
    assert_eq!(given_up.state, State::Failed);
    assert_eq!(
        given_up.last_error.as_deref(),
        Some("gave up after 3 attempts: congestion #3")
    );
    let crashed = by_body["panic c"];
    assert_eq!(crashed.state, State::Failed, "{crashed:?}");
    assert!(
        crashed.last_error.as_deref().unwrap().contains("crashed"),
        "{crashed:?}"
    );
    assert!(oks.iter().all(|b| by_body[b.as_str()].state == State::Sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_inflight_finish_within_grace() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), &[("slow one", Priority::Notification)]).await;
    let route = Arc::new(ScriptedRoute::default());
    // Stop as soon as the send has started; it takes 300 ms, within the 1 s grace.
    run_until(config(dir.path(), ""), route.clone(), |r| {
        !r.tries.lock().unwrap().is_empty()
    })
    .await;
    let msgs = all(dir.path()).await;
    assert_eq!(msgs[0].state, State::Sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_past_grace_requeues() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), &[("hang forever", Priority::Notification)]).await;
    let route = Arc::new(ScriptedRoute::default());
    run_until(config(dir.path(), ""), route.clone(), |r| {
        !r.tries.lock().unwrap().is_empty()
    })
    .await;
    let msgs = all(dir.path()).await;
    assert_eq!(msgs[0].state, State::Queued);
    assert_eq!(msgs[0].attempts, 0, "an interrupted attempt is not counted");
}
