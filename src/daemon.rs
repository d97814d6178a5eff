//! Wires the daemon together: opens the store, returns interrupted sends to the queue, binds
//! the admin listener, starts the supervised tasks (dispatcher, admin server, status and
//! watchdog reporter) and shuts them down in order.
//!
//! systemd integration: `READY=1` only after the database and the listener are up; `STATUS=`
//! with a one-line summary whenever it changes; `WATCHDOG=1` only while the dispatcher loop is
//! going round (when `WATCHDOG_USEC` is set); `STOPPING=1` at shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sd_notify::NotifyState;
use tokio::net::TcpListener;

use crate::admin::{self, AppState};
use crate::config::Loaded;
use crate::dispatch::{ALIVE_WITHIN, DispatchHandle, Dispatcher, RouteRules};
use crate::shutdown::{self, Shutdown};
use crate::store::{Store, now_ms};
use crate::transport::Transport;

/// A restarted task waits this long at first, doubling up to [`MAX_RESTART_DELAY`].
const FIRST_RESTART_DELAY: Duration = Duration::from_secs(1);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(60);
/// A task that ran this long before failing starts over from the first delay.
const STABLE_RUN: Duration = Duration::from_secs(120);
/// The admin server gets this long to finish open requests at shutdown.
const HTTP_GRACE: Duration = Duration::from_secs(5);

/// What the daemon needs besides the config: the routes messages leave through, and
/// optionally a listener the caller already bound (tests bind port 0).
#[derive(Default)]
pub struct Parts {
    pub transports: Vec<Arc<dyn Transport>>,
    pub listener: Option<TcpListener>,
}

/// Runs the daemon until `signal` resolves, then shuts down cleanly. Errors are start-up
/// errors (database, listener); once running, failing tasks are restarted, not returned.
pub async fn run(
    loaded: Loaded,
    parts: Parts,
    signal: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let cfg = &loaded.config;
    // The daemon's clock is the real one: its idle loops sleep on kernel timers.
    crate::idle::use_kernel_timers();
    let store = Store::open(&cfg.daemon.state_dir).with_context(|| {
        format!(
            "cannot open the database in {} (daemon.state_dir)",
            cfg.daemon.state_dir.display()
        )
    })?;
    let requeued = store.requeue_sending().await?;
    if !requeued.is_empty() {
        log::warn!(
            "{} message(s) were being sent when pasarela last stopped (ids {}); they are queued \
             again and may reach their recipients twice",
            requeued.len(),
            requeued
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let listener = match parts.listener {
        Some(l) => l,
        None => {
            let addr = cfg.admin.listen_addr()?;
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (admin.listen)"))?
        }
    };
    let listen_addr = listener.local_addr()?;
    let admin_tls = tls_store(
        "admin",
        cfg.admin.tls_cert.as_deref(),
        cfg.admin.tls_key.as_deref(),
    )?;
    let webhook_tls = match cfg.webhooks.listen {
        Some(_) => tls_store(
            "webhooks",
            cfg.webhooks.tls_cert.as_deref(),
            cfg.webhooks.tls_key.as_deref(),
        )?,
        None => None,
    };
    let metrics_listener = match cfg.metrics.listen_addr().map_err(anyhow::Error::msg)? {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (metrics.listen)"))?,
        ),
        None => None,
    };
    let token = loaded.admin_token()?;
    if token.is_none() {
        log::warn!(
            "no admin token is set: every API route but /api/health answers 503. Set admin.token \
             or admin.token_file in the config"
        );
    }

    let (trigger, shutdown) = shutdown::channel();
    // Transports stop after the dispatcher, so messages being sent can finish.
    let (transports_trigger, transports_shutdown) = shutdown::channel();
    let handle = DispatchHandle::default();
    let mut transports = parts.transports.clone();
    let sink = {
        let handle = handle.clone();
        crate::store::sink::sink(&store, Arc::new(move || handle.wake()))
    };
    let built = crate::registry::build_all(&crate::transport::kind::BuildContext {
        config: cfg,
        sink,
        phones: cfg.company.phone_context(),
    })?;
    transports.extend(built.transports);
    let mut transport_tasks = Vec::new();
    for task in built.tasks {
        let stop = transports_shutdown.clone();
        let run = task.run;
        transport_tasks.push(tokio::spawn(supervise(
            task.name,
            transports_shutdown.clone(),
            move || run(stop.clone()),
        )));
    }
    let webhook_listener = match (&cfg.webhooks.listen, built.webhooks) {
        (Some(listen), Some(router)) => {
            Some((bind_webhooks(listen, webhook_tls.is_some()).await?, router))
        }
        _ => None,
    };
    let rules = crate::inbox::RulesContext::new(cfg, store.clone(), handle.clone())
        .await
        .context("cannot start the keyword rules")?
        .with_ticket_mail(transports.clone(), cfg.email_notify.operator.clone());
    // Alertmanager's receiver needs the rules, built after the transports' webhooks.
    let webhook_listener =
        webhook_listener.map(|(listener, router)| match &cfg.webhooks.alertmanager {
            Some(am) => {
                log::info!(
                    "outages: Alertmanager webhooks at /webhooks/alertmanager (zone label `{}`)",
                    am.zone_label
                );
                let receiver =
                    crate::outage::alertmanager::router(crate::outage::alertmanager::AlertState {
                        rules: rules.clone(),
                        config: Arc::new(am.clone()),
                    });
                (listener, receiver.merge(router))
            }
            None => (listener, router),
        });
    let campaigns = crate::campaign::Campaigns {
        store: store.clone(),
        rules: rules.clone(),
        transports: transports.clone(),
        dispatch: handle.clone(),
        wake: Arc::new(tokio::sync::Notify::new()),
    };
    let state = AppState::new(crate::admin::AppParts {
        campaigns: campaigns.clone(),
        rules: rules.clone(),
        store: store.clone(),
        token,
        phones: cfg.company.phone_context(),
        dispatch: handle.clone(),
        dispatch_config: cfg.dispatch.clone(),
        transports: transports.clone(),
        started: Instant::now(),
        events: Arc::new(cfg.events.clone()),
        whatsapp: cfg.whatsapp.clone().map(Arc::new),
    });
    let dispatcher = Arc::new(
        Dispatcher::new(
            store.clone(),
            transports.clone(),
            cfg.dispatch.clone(),
            handle.clone(),
            Duration::from_secs(cfg.daemon.shutdown_grace_secs),
        )
        .with_rules(|name| RouteRules {
            tier: cfg.route_tier(name),
            rate_limit: cfg.route_rate_limit(name),
        }),
    );

    let dispatch_task = {
        let shutdown = shutdown.clone();
        tokio::spawn(supervise("dispatcher", shutdown.clone(), move || {
            let d = dispatcher.clone();
            let s = shutdown.clone();
            async move { d.run(s).await }
        }))
    };
    let metrics_task = metrics_listener.map(|listener| {
        let router = admin::metrics_api::listener_router(state.clone());
        let addr = listener.local_addr().ok();
        log::info!(
            "metrics on http://{}/metrics (no token)",
            addr.map_or("?".to_string(), |a| a.to_string())
        );
        let mut first = Some(listener);
        let stop = shutdown.clone();
        tokio::spawn(supervise("metrics server", shutdown.clone(), move || {
            let listener = first.take();
            let router = router.clone();
            let stop = stop.clone();
            async move {
                let listener = match (listener, addr) {
                    (Some(l), _) => l,
                    (None, Some(a)) => TcpListener::bind(a).await?,
                    (None, None) => anyhow::bail!("the metrics listener has no address"),
                };
                crate::net::serve::serve(listener, router, None, Default::default(), stop).await?;
                Ok(())
            }
        }))
    });
    let http_task = {
        let router = admin::router_with(
            state,
            crate::web::WebOptions {
                secure_cookies: admin_tls.is_some(),
                doctor: Some(Arc::new((
                    loaded.clone(),
                    format!(
                        "{}://{listen_addr}",
                        if admin_tls.is_some() { "https" } else { "http" }
                    ),
                ))),
            },
        );
        let mut first = Some(listener);
        let shutdown2 = shutdown.clone();
        let tls = admin_tls.clone();
        tokio::spawn(supervise("admin server", shutdown.clone(), move || {
            let listener = first.take();
            let router = router.clone();
            let stop = shutdown2.clone();
            let tls = tls.clone();
            async move {
                let listener = match listener {
                    Some(l) => l,
                    None => TcpListener::bind(listen_addr).await?,
                };
                crate::net::serve::serve(listener, router, tls, Default::default(), stop).await?;
                Ok(())
            }
        }))
    };
    let webhook_task = webhook_listener.map(|(listener, router)| {
        let addr = listener.local_addr().ok();
        let mut first = Some(listener);
        let shutdown2 = shutdown.clone();
        let tls = webhook_tls.clone();
        tokio::spawn(supervise("webhook server", shutdown.clone(), move || {
            let listener = first.take();
            let router = router.clone();
            let stop = shutdown2.clone();
            let tls = tls.clone();
            async move {
                let listener = match (listener, addr) {
                    (Some(l), _) => l,
                    (None, Some(a)) => TcpListener::bind(a).await?,
                    (None, None) => anyhow::bail!("the webhook listener has no address"),
                };
                crate::net::serve::serve(listener, router, tls, Default::default(), stop).await?;
                Ok(())
            }
        }))
    });
    let reload_task = tokio::spawn(reload_on_hangup(
        [admin_tls.clone(), webhook_tls.clone()]
            .into_iter()
            .flatten()
            .collect(),
        shutdown.clone(),
    ));
    let indexer = {
        let store = store.clone();
        let stop = shutdown.clone();
        tokio::spawn(supervise("search indexer", shutdown.clone(), move || {
            index_text_loop(store.clone(), stop.clone())
        }))
    };
    tokio::spawn(crate::store::retention::run(
        store.clone(),
        cfg.daemon.retention_days,
        shutdown.clone(),
    ));
    let mut rule_tasks = Vec::new();
    {
        let stop = shutdown.clone();
        rule_tasks.push(tokio::spawn(supervise(
            "campaigns",
            shutdown.clone(),
            move || crate::campaign::run(campaigns.clone(), stop.clone()),
        )));
    }
    for (name, which) in [("inbox", 0u8), ("scheduler", 1), ("ticket forwarder", 2)] {
        let rules = rules.clone();
        let stop = shutdown.clone();
        rule_tasks.push(tokio::spawn(supervise(name, shutdown.clone(), move || {
            let rules = rules.clone();
            let stop = stop.clone();
            async move {
                match which {
                    0 => rules.run_inbox(stop).await,
                    1 => rules.run_scheduler(stop).await,
                    _ => rules.run_forwarder(stop).await,
                }
            }
        })));
    }
    let credit_alerts = cfg.http_sms.iter().any(|h| {
        crate::transport::http_sms::preset::resolve(h).is_ok_and(|r| r.credit_alert_below.is_some())
    }) || cfg
        .modems
        .iter()
        .any(|m| m.balance_ussd.is_some() && m.balance_alert_below.is_some());
    if credit_alerts {
        let rules = rules.clone();
        let store = store.clone();
        let transports = transports.clone();
        let stop = shutdown.clone();
        rule_tasks.push(tokio::spawn(supervise(
            "credit alerts",
            shutdown.clone(),
            move || {
                crate::credit::run(
                    rules.clone(),
                    store.clone(),
                    transports.clone(),
                    stop.clone(),
                )
            },
        )));
    }
    let reporter = tokio::spawn(report_status(
        store.clone(),
        handle.clone(),
        transports.clone(),
        shutdown.clone(),
    ));

    // The phone-number metadata (about 4 MB once loaded) loads with the first number read,
    // not here: a gateway that has not seen a number yet stays small. `benches/idle.rs`
    // times the first keyword reply, which pays for it. What start-up itself left mapped is
    // handed back by the status reporter's first quiet round (`report_status`).

    notify(&[NotifyState::Ready]);
    log::info!(
        "pasarela {} ready: admin API on {}://{listen_addr}/api/, database {}, {} transport(s)",
        env!("CARGO_PKG_VERSION"),
        if admin_tls.is_some() { "https" } else { "http" },
        store.path().display(),
        transports.len()
    );

    signal.await;
    log::info!("stopping: no new work is taken");
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    trigger.trigger();
    let _ = dispatch_task.await;
    transports_trigger.trigger();
    for t in transport_tasks {
        let _ = t.await;
    }
    if tokio::time::timeout(HTTP_GRACE, http_task).await.is_err() {
        log::warn!(
            "stopping: admin requests still open after {} s were cut",
            HTTP_GRACE.as_secs()
        );
    }
    if let Some(t) = webhook_task
        && tokio::time::timeout(HTTP_GRACE, t).await.is_err()
    {
        log::warn!("stopping: webhook requests still open were cut");
    }
    if let Some(t) = metrics_task {
        let _ = tokio::time::timeout(HTTP_GRACE, t).await;
    }
    reporter.abort();
    reload_task.abort();
    for t in rule_tasks {
        let _ = t.await;
    }
    let _ = indexer.await;
    store.close().await;
    log::info!("stopped cleanly");
    Ok(())
}

/// Binds the `[webhooks]` listener; every kind's webhook routes are served on it.
async fn bind_webhooks(listen: &str, tls: bool) -> anyhow::Result<TcpListener> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("`{listen}` is not an address (webhooks.listen)"))?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (webhooks.listen)"))?;
    log::info!(
        "webhooks on {}://{}/webhooks/…",
        if tls { "https" } else { "http" },
        listener.local_addr()?
    );
    Ok(listener)
}

/// The certificate store of a listener whose `[section]` sets `tls_cert` and `tls_key`.
fn tls_store(
    section: &str,
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> anyhow::Result<Option<Arc<crate::net::tls::CertStore>>> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(None);
    };
    crate::net::tls::CertStore::load(cert, key)
        .map(Some)
        .map_err(|(part, message)| {
            let which = match part {
                crate::net::tls::PairPart::Cert => "tls_cert",
                crate::net::tls::PairPart::Key => "tls_key",
            };
            anyhow::anyhow!("{section}.{which}: {message}")
        })
}

/// On each SIGHUP, reads the listeners' certificate files again. A pair that fails to load
/// leaves the old one in use. Open connections, the queue and every other task go on.
async fn reload_on_hangup(stores: Vec<Arc<crate::net::tls::CertStore>>, mut shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("cannot watch SIGHUP ({e}); certificates reload only at restart");
            return;
        }
    };
    loop {
        tokio::select! {
            got = hangup.recv() => if got.is_none() { return },
            _ = shutdown.wait() => return,
        }
        if stores.is_empty() {
            log::info!("SIGHUP received: no TLS listener to reload");
        }
        for store in &stores {
            match store.reload() {
                Ok(()) => log::info!(
                    "SIGHUP: reloaded the certificate {}",
                    store.cert_path().display()
                ),
                Err(e) => log::error!("SIGHUP: keeping the old certificate: {e}"),
            }
        }
    }
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        log::debug!("systemd notification failed: {e}");
    }
}

/// Runs the task `make` builds until shutdown, restarting it with exponential backoff when it
/// fails or panics. The backoff resets after a stable run.
pub async fn supervise<F, Fut>(name: &'static str, mut shutdown: Shutdown, mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut delay = FIRST_RESTART_DELAY;
    loop {
        let started = Instant::now();
        let outcome = tokio::spawn(make()).await;
        if shutdown.is_triggered() {
            if let Ok(Err(e)) = outcome {
                log::warn!("{name} stopped with an error: {e:#}");
            }
            return;
        }
        match outcome {
            Ok(Ok(())) => log::error!("{name} stopped unexpectedly"),
            Ok(Err(e)) => log::error!("{name} failed: {e:#}"),
            Err(e) => log::error!("{name} crashed: {e}"),
        }
        if started.elapsed() >= STABLE_RUN {
            delay = FIRST_RESTART_DELAY;
        }
        log::info!("{name}: restarting in {} s", delay.as_secs());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait() => return,
        }
        delay = (delay * 2).min(MAX_RESTART_DELAY);
    }
}

/// Keeps the text-search index caught up, a chunk at a time with pauses between chunks, so a
/// burst of accepted messages is not slowed by indexing (searches scan what is not indexed yet).
/// New messages wake it (the store signals each insert through its usual paths); with nothing
/// new it looks again after a pause that doubles up to a minute, so an idle gateway sleeps and
/// a message added some other way is still indexed within a minute.
async fn index_text_loop(store: Store, mut shutdown: Shutdown) -> anyhow::Result<()> {
    /// Small: each chunk holds the one writer, and a reply's commit waits behind it (an
    /// outage's 20,000 notices were indexed 500 at a time, tens of ms each, while customers
    /// texted). With the shorter pause below the catch-up rate is about the same.
    const CHUNK: u32 = 100;
    /// Between chunks while behind.
    const CATCH_UP_PAUSE: Duration = Duration::from_millis(40);
    /// How long new messages wait, so a burst is indexed in one pass.
    const GATHER: Duration = Duration::from_secs(2);
    const LONGEST_PAUSE: Duration = Duration::from_secs(60);
    let added_signal = store.added_signal();
    let mut idle_pause = GATHER;
    // A look that indexed nothing holds until the database changes.
    let mut look: crate::store::LastLook<()> = crate::store::LastLook::default();
    while !shutdown.is_triggered() {
        let snapshot = store.snapshot();
        let added = if look.needed(&snapshot, &(), 0) {
            let added = store.index_text(CHUNK).await?;
            if added == 0 {
                look.record(snapshot, (), None);
            }
            added
        } else {
            0
        };
        let pause = if added >= CHUNK as usize {
            CATCH_UP_PAUSE
        } else if added > 0 {
            idle_pause = GATHER;
            GATHER
        } else {
            idle_pause = (idle_pause * 2).min(LONGEST_PAUSE);
            idle_pause
        };
        tokio::select! {
            _ = crate::idle::sleep(pause) => {}
            _ = added_signal.notified() => {
                tokio::select! {
                    _ = tokio::time::sleep(GATHER) => {}
                    _ = shutdown.wait() => {}
                }
            }
            _ = shutdown.wait() => {}
        }
    }
    Ok(())
}

/// The watchdog interval systemd asks for: `WATCHDOG_USEC`, when `WATCHDOG_PID` is unset or
/// names this process (as libsystemd's `sd_watchdog_enabled` reads them).
fn watchdog_usec() -> Option<u64> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    match std::env::var("WATCHDOG_PID") {
        Ok(pid) if pid.parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => (usec > 0).then_some(usec),
    }
}

/// How often the status line and the transports' up/down changes are looked at (and the
/// watchdog fed, when systemd's interval is not shorter).
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Keeps systemd's `STATUS=` current and pings the watchdog while the dispatcher is alive.
async fn report_status(
    store: Store,
    dispatch: DispatchHandle,
    transports: Vec<Arc<dyn Transport>>,
    mut shutdown: Shutdown,
) {
    let watchdog_usec = watchdog_usec();
    let watchdog = watchdog_usec.is_some();
    let watchdog_usec = watchdog_usec.unwrap_or(0);
    let period = if watchdog {
        Duration::from_micros(watchdog_usec / 3).clamp(Duration::from_millis(100), STATUS_EVERY)
    } else {
        STATUS_EVERY
    };
    let mut last_status = String::new();
    // The queue changes only through writes that change rows: with none since the last look,
    // the depth is the same and the database is not asked.
    let mut depth: Option<u64> = None;
    let mut writes_seen = None;
    // Start from what the transports say now: their own start-up is logged by them.
    let mut last_up: Vec<bool> = transports.iter().map(|t| t.health().up).collect();
    // A round with no database write and no transport going up or down is quiet (a modem's
    // signal moving a few dBm is not activity); each quiet round hands back the code pages
    // it mapped, and the first one after start-up or after a burst also the memory the burst
    // left (`release_quiet`). Start-up is the first burst.
    let mut busy = true;
    // Database jobs (anyone's) counted at the end of the last round.
    let mut jobs_seen = store.job_count();
    loop {
        let mut changed = false;
        let up: Vec<bool> = transports.iter().map(|t| t.health().up).collect();
        if up != last_up {
            for (t, (now, before)) in transports.iter().zip(
                up.iter()
                    .zip(last_up.iter().chain(std::iter::repeat(&true))),
            ) {
                if now != before {
                    let h = t.health();
                    if h.up {
                        log::info!(transport = t.name(); "{} is up: {}", t.name(), h.detail);
                    } else {
                        log::warn!(transport = t.name(); "{} is down: {}", t.name(), h.detail);
                    }
                }
            }
            last_up = up.clone();
            changed = true;
        }
        let writes = store.change_count();
        if writes_seen != Some(writes) || depth.is_none() {
            changed = true;
            depth = store.queue_depth().await.ok();
            writes_seen = Some(writes);
        }
        let mut status = format!(
            "queue {} · transports {}/{} up",
            depth.map_or("?".to_string(), |d| d.to_string()),
            up.iter().filter(|u| **u).count(),
            up.len()
        );
        for t in &transports {
            if let Some(dbm) = t.details().and_then(|d| d["signal_dbm"].as_i64()) {
                status.push_str(&format!(" · {} {dbm} dBm", t.name()));
            }
        }
        if status != last_status {
            notify(&[NotifyState::Status(&status)]);
            last_status = status;
        }
        // A quiet round hands back the code pages the round mapped (at once, or a moment later
        // when other loops of this grid line are at the database); the first quiet one after
        // a burst also the connections' caches and the heap's spare pages.
        let release_at = (!changed).then(|| {
            (
                tokio::time::Instant::now() + RELEASE_AFTER.min(period / 2),
                std::mem::replace(&mut busy, false),
                writes,
            )
        });
        busy |= changed;
        // Before its first round (beat 0) the dispatcher is starting, not stuck.
        let beat = dispatch.last_heartbeat();
        let fresh = now_ms() - beat < ALIVE_WITHIN.as_millis() as i64;
        if watchdog && beat > 0 && fresh {
            notify(&[NotifyState::Watchdog]);
        } else if watchdog && beat > 0 {
            log::error!("the dispatcher has not gone round for a while; not feeding the watchdog");
        }
        let next_round = crate::idle::deadline(period);
        if let Some((at, after_burst, writes)) = release_at {
            // The other loops this grid line woke run first; when nothing went to the
            // database since the last round (most rounds: the loops' own looks are skipped
            // while nothing changed), the release happens in this same wake-up instead of
            // costing one more a moment later.
            tokio::task::yield_now().await;
            if store.job_count() == jobs_seen {
                release_quiet(&store, after_burst).await;
            } else {
                tokio::select! {
                    _ = crate::idle::sleep_until(at) => {
                        // Traffic that began meanwhile keeps what it uses.
                        if store.change_count() == writes {
                            release_quiet(&store, after_burst).await;
                        }
                    }
                    _ = shutdown.wait() => return,
                }
            }
        }
        jobs_seen = store.job_count();
        tokio::select! {
            _ = crate::idle::sleep_until(next_round) => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// How long after a quiet status round its memory is handed back: the other loops that woke
/// on the same grid line (dispatcher, scheduler, modem checks) have finished by then.
const RELEASE_AFTER: Duration = Duration::from_secs(1);

/// Hands back what a quiet gateway does not need (see [`crate::idle::release_memory`]). After
/// a burst (or start-up) that is the connections' page caches and the heap's spare pages as
/// well as the code; after an idle round, only the code pages the round mapped again.
async fn release_quiet(store: &Store, after_burst: bool) {
    if after_burst {
        // The connections' page caches and the phone-number patterns first, so the heap
        // trim returns their pages.
        store.release_memory().await;
        crate::phone::release_patterns();
        let released = crate::idle::release_memory();
        log::debug!(
            "quiet: trimmed the heap and released {} KiB of code pages ({} mappings)",
            released.file_kib,
            released.mappings
        );
    } else {
        crate::idle::release_code();
    }
}

/// The address the admin API of a config listens on, for clients such as `pasarela send`.
pub fn api_base(loaded: &Loaded) -> anyhow::Result<String> {
    let addr: SocketAddr = loaded.config.admin.listen_addr()?;
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let scheme = if loaded.config.admin.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{host}:{}", addr.port()))
}
