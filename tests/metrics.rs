//! `GET /metrics` end to end: the daemon in-process with a modem on the simulator's real
//! pseudo-terminal and a real SQLite file; the token-free `[metrics] listen` listener with the
//! real binary.
use pasarela::modem::sim::{ConfigPatch, Registration};
use serde_json::json;

mod common;
use common::gateway::Gateway;
use common::sims::simulator;
use common::{Daemon, TOKEN, free_port, wait_for};

const DISPATCH: &str = "[dispatch]\nretry_base_secs = 1\nretry_max_secs = 2\nmax_attempts = 20";

async fn scrape(base: &str, token: Option<&str>) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(format!("{base}/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, r.text().await.unwrap())
}

/// The value of the series written exactly as `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_and_follow_messages_routes_and_the_modem() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path()).await;
    let gw = Gateway::start(dir.path(), DISPATCH, sim.link(), "health_interval_secs = 5").await;
    wait_for("the modem up", 30, async || {
        gw.get("/api/status").await["transports"][0]["up"] == true
    })
    .await;

    // No token, a wrong token: 401 with the API's error shape, no figures.
    for token in [None, Some("not-the-token-at-all")] {
        let (status, _, body) = scrape(&gw.base, token).await;
        assert_eq!(status, 401, "{body}");
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["error"]["code"], "unauthorized");
        assert!(!body.contains("pasarela_"));
    }

    let (status, kind, before) = scrape(&gw.base, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let sent = r#"pasarela_messages_total{channel="sms",direction="out",state="sent"}"#;
    let queued = r#"pasarela_messages_total{channel="sms",direction="out",state="queued"}"#;
    let parts = "pasarela_sms_parts_sent_total";
    let replies = "pasarela_keyword_reply_seconds_count";
    assert_eq!(
        value(
            &before,
            r#"pasarela_route_up{route="modem1",channel="sms"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&before, r#"pasarela_modem_registered{route="modem1"}"#),
        Some(1.0)
    );
    let dbm = value(&before, r#"pasarela_modem_signal_dbm{route="modem1"}"#).unwrap();
    assert!((-113.0..=-51.0).contains(&dbm), "{dbm}");
    assert_eq!(
        value(
            &before,
            r#"pasarela_queue_messages{state="queued",priority="bulk"}"#
        ),
        Some(0.0)
    );

    // A long message sent: one more queued and sent, one count per part.
    let long = "Estimado cliente: le informamos que el próximo martes entre las 9 y las 11 horas \
                realizaremos tareas de mantenimiento en la red de su zona. El servicio puede \
                interrumpirse por algunos minutos. ¡Gracias por su paciencia!";
    let (code, body) = gw
        .call(
            reqwest::Method::POST,
            "/api/messages",
            Some(json!({"to": "011 15-2345-6789", "text": long})),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let id = body["id"].as_i64().unwrap();
    wait_for("sent", 30, async || {
        gw.get(&format!("/api/messages/{id}")).await["state"] == "sent"
    })
    .await;
    let n = sim.sent()[0].parts as f64;
    assert!(n >= 2.0, "a long message: {n} parts");
    // A keyword from a customer: answered, and its latency observed.
    sim.inbound("+5491198765432", "SALDO").unwrap();
    wait_for("the keyword reply", 30, async || {
        gw.get("/api/messages?direction=out&peer=%2B5491198765432")
            .await["messages"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    })
    .await;
    let (_, _, after) = scrape(&gw.base, Some(TOKEN)).await;
    // Counters are process-wide: other tests in this binary may add, never take away.
    assert!(value(&after, sent).unwrap() >= value(&before, sent).unwrap() + 1.0);
    assert!(value(&after, queued).unwrap() >= value(&before, queued).unwrap() + 2.0);
    assert!(value(&after, parts).unwrap() >= value(&before, parts).unwrap() + n);
    assert!(value(&after, replies).unwrap() >= value(&before, replies).unwrap() + 1.0);
    assert!(
        value(
            &after,
            r#"pasarela_messages_total{channel="sms",direction="in",state="received"}"#
        )
        .unwrap()
            >= 1.0
    );

    // The modem loses its network: the route goes down, registration 0, signal gone.
    sim.set_config(ConfigPatch {
        registration: Some(Registration::Searching),
        rssi: Some(99),
        ..Default::default()
    })
    .unwrap();
    wait_for("the route down in the metrics", 60, async || {
        let (_, _, t) = scrape(&gw.base, Some(TOKEN)).await;
        value(&t, r#"pasarela_route_up{route="modem1",channel="sms"}"#) == Some(0.0)
            && value(&t, r#"pasarela_modem_registered{route="modem1"}"#) == Some(0.0)
    })
    .await;

    // Messages waiting while the route is down show in the queue gauge.
    let (code, _) = gw
        .call(
            reqwest::Method::POST,
            "/api/messages",
            Some(json!({"to": "011 15-2345-6789", "text": "Aviso", "priority": "bulk"})),
        )
        .await;
    assert_eq!(code, 202);
    let (_, _, waiting) = scrape(&gw.base, Some(TOKEN)).await;
    let q = value(
        &waiting,
        r#"pasarela_queue_messages{state="queued",priority="bulk"}"#,
    )
    .unwrap()
        + value(
            &waiting,
            r#"pasarela_queue_messages{state="sending",priority="bulk"}"#,
        )
        .unwrap();
    assert_eq!(q, 1.0, "{waiting}");
    gw.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_serves_without_a_token_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = tokio::task::block_in_place(|| {
        Daemon::start_with(
            dir.path(),
            &format!("token = \"{TOKEN}\"\n[metrics]\nlisten = \"127.0.0.1:{port}\""),
            &[],
        )
    });
    let local = format!("http://127.0.0.1:{port}");
    let (status, _, text) = scrape(&local, None).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("# TYPE pasarela_messages counter"), "{text}");
    assert!(text.ends_with("# EOF\n"));
    // Only /metrics there: the API is not reachable without the token through it.
    let r = reqwest::get(format!("{local}/api/messages")).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // The admin listener still asks for the token.
    assert_eq!(scrape(&d.base, None).await.0, 401);
    drop(d);

    // A non-loopback address is refused at check time, naming the key.
    let conf = dir.path().join("lan.toml");
    std::fs::write(
        &conf,
        format!(
            "[daemon]\nstate_dir = \"{}\"\n[metrics]\nlisten = \"0.0.0.0:9464\"\n",
            dir.path().join("s2").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(common::bin())
        .arg("check-config")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("metrics.listen") && err.contains("loopback"),
        "{err}"
    );
}
