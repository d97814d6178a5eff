//! The real binary: start-up, systemd notification, API auth, the message lifecycle, batches,
//! shutdown on SIGTERM and recovery after SIGKILL.

mod common;

use std::time::Duration;

use common::{Daemon, TOKEN, api, bin, client};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn ready_health_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    // STATUS= comes from the status reporter, just after READY=1.
    common::wait_until("STATUS=queue 0", Duration::from_secs(20), || {
        d.notified("STATUS=queue 0")
    });

    let health = client()
        .get(format!("{}/api/health", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));

    let r = client()
        .get(format!("{}/api/messages", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let r = client()
        .get(format!("{}/api/status", d.base))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let (code, status) = api(Method::GET, format!("{}/api/status", d.base), None).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["queue"]["queued"], 0);
    assert_eq!(status["transports"], json!([]));

    let (code, body) = api(Method::GET, format!("{}/api/nope", d.base), None).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_token_means_503_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_with(dir.path(), "", &[]);
    let r = client()
        .get(format!("{}/api/messages", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("token_file")
    );
    let health = client()
        .get(format!("{}/api/health", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let warned = d.stderr_with("no admin token is set");
    assert_eq!(
        warned.matches("no admin token is set").count(),
        1,
        "{warned}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn enqueue_list_get_cancel_resend() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let url = format!("{}/api/messages", d.base);

    let (code, body) = api(
        Method::POST,
        url.clone(),
        Some(json!({"to": "011 15-2345-6789", "text": "Su factura vence mañana"})),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["state"], "queued");
    let id1 = body["id"].as_i64().unwrap();

    let (code, body) = api(
        Method::POST,
        url.clone(),
        Some(json!({"to": "1123456780", "text": "Corte programado", "priority": "bulk"})),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let id2 = body["id"].as_i64().unwrap();

    let (code, m) = api(Method::GET, format!("{url}/{id1}"), None).await;
    assert_eq!(code, 200);
    assert_eq!(m["peer"], "+5491123456789");
    assert_eq!(m["text"], "Su factura vence mañana");
    assert_eq!(m["direction"], "out");
    assert_eq!(m["channel"], "sms");
    assert_eq!(m["priority"], "notification");

    // Newest first, filters, pagination.
    let (_, page) = api(Method::GET, format!("{url}?limit=1"), None).await;
    assert_eq!(page["messages"][0]["id"], id2);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, page) = api(Method::GET, format!("{url}?limit=1&cursor={cursor}"), None).await;
    assert_eq!(page["messages"][0]["id"], id1);
    assert_eq!(page["next_cursor"], serde_json::Value::Null);
    let (_, page) = api(Method::GET, format!("{url}?q=factura"), None).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    let (_, page) = api(Method::GET, format!("{url}?peer=1123456780"), None).await;
    assert_eq!(page["messages"][0]["id"], id2);
    let (_, page) = api(
        Method::GET,
        format!("{url}?state=queued&direction=out&channel=sms&since=2020-01-01"),
        None,
    )
    .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    let (_, page) = api(Method::GET, format!("{url}?until=2020-01-01"), None).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 0);
    let (code, err) = api(Method::GET, format!("{url}?state=lost"), None).await;
    assert_eq!((code, err["error"]["field"].as_str()), (400, Some("state")));
    let (code, _) = api(Method::GET, format!("{url}?colour=red"), None).await;
    assert_eq!(code, 400);

    // Cancel, cancel again (conflict), resend.
    let (code, m) = api(Method::POST, format!("{url}/{id2}/cancel"), None).await;
    assert_eq!((code, m["state"].as_str()), (200, Some("cancelled")));
    let (code, e) = api(Method::POST, format!("{url}/{id2}/cancel"), None).await;
    assert_eq!((code, e["error"]["code"].as_str()), (409, Some("conflict")));
    let (code, m) = api(Method::POST, format!("{url}/{id2}/resend"), None).await;
    assert_eq!(
        (code, m["state"].as_str(), m["id"].as_i64()),
        (202, Some("queued"), Some(id2))
    );
    let (code, _) = api(Method::POST, format!("{url}/{id1}/resend"), None).await;
    assert_eq!(code, 409);
    let (code, _) = api(Method::GET, format!("{url}/999999"), None).await;
    assert_eq!(code, 404);
    let (code, e) = api(Method::GET, format!("{url}/abc"), None).await;
    assert_eq!((code, e["error"]["field"].as_str()), (400, Some("id")));

    let (_, status) = api(Method::GET, format!("{}/api/status", d.base), None).await;
    assert_eq!(status["queue"]["queued"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let url = format!("{}/api/messages", d.base);
    let cases: Vec<(&str, u16, Option<&str>)> = vec![
        ("{not json", 400, None),
        ("", 400, None),
        (r#"{"to":"+5491123456789"}"#, 400, None),
        (
            r#"{"to":"+5491123456789","text":"hola","extra":1}"#,
            400,
            None,
        ),
        (r#"{"to":5491123456789,"text":"hola"}"#, 400, Some("to")),
        (r#"{"to":"hola","text":"hola"}"#, 400, Some("to")),
        (r#"{"to":"+5491123456789","text":"   "}"#, 400, Some("text")),
        (
            r#"{"to":"+5491123456789","text":"hola","channel":"fax"}"#,
            400,
            Some("channel"),
        ),
        (
            r#"{"to":"+5491123456789","text":"hola","priority":"urgent"}"#,
            400,
            Some("priority"),
        ),
    ];
    for (body, want, field) in cases {
        let r = client()
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{body}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert!(e["error"]["message"].as_str().is_some(), "{body}: {e}");
        if let Some(f) = field {
            assert_eq!(e["error"]["field"], f, "{body}: {e}");
        }
    }
    // Longer than ten parts: 671 characters that need UCS-2.
    let long = "ú".repeat(671);
    let (code, e) = api(
        Method::POST,
        url.clone(),
        Some(json!({"to": "+5491123456789", "text": long})),
    )
    .await;
    assert_eq!(
        (code, e["error"]["field"].as_str()),
        (400, Some("text")),
        "{e}"
    );
    // Oversized body.
    let huge = "a".repeat(200 * 1024);
    let r = client()
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(format!(r#"{{"to":"+5491123456789","text":"{huge}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let (_, page) = api(Method::GET, url, None).await;
    assert_eq!(page["messages"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let url = format!("{}/api/messages/batch", d.base);
    let mut messages: Vec<_> = (0..500)
        .map(|i| json!({"to": format!("+54911{:08}", 20000000 + i), "text": format!("Aviso {i}")}))
        .collect();
    messages[17] = json!({"to": "not a number", "text": "x"});
    messages[300] = json!({"to": "+5491123456789", "text": ""});
    let (code, e) = api(
        Method::POST,
        url.clone(),
        Some(json!({ "messages": messages })),
    )
    .await;
    assert_eq!(code, 422, "{e}");
    let items = e["error"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["index"], 17);
    assert_eq!(items[0]["field"], "messages[17].to");
    assert_eq!(items[1]["field"], "messages[300].text");
    let (_, page) = api(Method::GET, format!("{}/api/messages", d.base), None).await;
    assert_eq!(page["messages"], json!([]));

    messages[17] = json!({"to": "+5491120000017", "text": "Aviso 17"});
    messages[300] = json!({"to": "+5491120000300", "text": "Aviso 300", "priority": "bulk"});
    let (code, body) = api(
        Method::POST,
        url.clone(),
        Some(json!({ "messages": messages })),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["count"], 500);
    assert_eq!(body["ids"].as_array().unwrap().len(), 500);

    let too_many: Vec<_> = (0..10_001)
        .map(|_| json!({"to": "+5491123456789", "text": "x"}))
        .collect();
    let (code, e) = api(
        Method::POST,
        url.clone(),
        Some(json!({ "messages": too_many })),
    )
    .await;
    assert_eq!(
        (code, e["error"]["field"].as_str()),
        (400, Some("messages"))
    );
    let (code, _) = api(Method::POST, url, Some(json!({ "messages": [] }))).await;
    assert_eq!(code, 400);
    let (_, status) = api(Method::GET, format!("{}/api/status", d.base), None).await;
    assert_eq!(status["queue"]["queued"], 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path());
    let (code, _) = api(
        Method::POST,
        format!("{}/api/messages", d.base),
        Some(json!({"to": "+5491123456789", "text": "hola"})),
    )
    .await;
    assert_eq!(code, 202);
    d.signal("TERM");
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        d.stderr_text()
    );
    assert!(d.notified("STOPPING=1"));
    assert!(
        d.stderr_text().contains("stopped cleanly"),
        "{}",
        d.stderr_text()
    );
    // The WAL was folded back: a clean close leaves one database file.
    let wal = d.db().with_extension("db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_after_sigkill_requeues_sending() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path());
    let mut ids = Vec::new();
    for i in 0..3 {
        let (code, body) = api(
            Method::POST,
            format!("{}/api/messages", d.base),
            Some(json!({"to": "+5491123456789", "text": format!("m{i}")})),
        )
        .await;
        assert_eq!(code, 202);
        ids.push(body["id"].as_i64().unwrap());
    }
    d.kill9();
    // What a crash in the middle of sending leaves behind: rows in `sending`.
    {
        let conn = rusqlite::Connection::open(d.db()).unwrap();
        let n = conn
            .execute(
                "UPDATE messages SET state = 'sending', transport = 'modem1', attempts = 1 WHERE id IN (?1, ?2)",
                [ids[0], ids[1]],
            )
            .unwrap();
        assert_eq!(n, 2);
    }
    drop(d);
    let d = Daemon::start(dir.path());
    let (_, page) = api(
        Method::GET,
        format!("{}/api/messages?state=queued", d.base),
        None,
    )
    .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 3, "{page}");
    let (_, m) = api(
        Method::GET,
        format!("{}/api/messages/{}", d.base, ids[0]),
        None,
    )
    .await;
    assert_eq!(m["state"], "queued");
    assert!(m["last_error"].as_str().unwrap().contains("interrupted"));
    let log = d.stderr_with("2 message(s) were being sent");
    assert!(log.contains("2 message(s) were being sent"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn watchdog_is_fed() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_with(
        dir.path(),
        &format!("token = \"{TOKEN}\""),
        &[("WATCHDOG_USEC", "600000")],
    );
    common::wait_until("WATCHDOG=1", Duration::from_secs(20), || {
        d.notified("WATCHDOG=1")
    });
}

#[test]
fn check_config_good_and_bad() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/pasarela.toml");
    let out = std::process::Command::new(bin())
        .args(["check-config", example])
        .output()
        .unwrap();
    // The file only: the example's state dir need not exist here (that is doctor's check).
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("config OK"));

    let dir = tempfile::tempdir().unwrap();
    let good = common::write_config(dir.path(), 8080, "", &format!("token = \"{TOKEN}\""));
    let out = std::process::Command::new(bin())
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("config OK"), "{stdout}");
    assert!(!stdout.contains(TOKEN));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[company]\nname = \"ISP\"\n\n[admin]\nlisten = \"8080\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("admin.listen: `8080` is not an address like 127.0.0.1:8080 (line 5)"),
        "{stderr}"
    );

    let out = std::process::Command::new(bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "run",
        "demo",
        "check-config",
        "send",
        "customers",
        "version",
    ] {
        assert!(help.contains(cmd), "{help}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn send_command_goes_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let out = tokio::process::Command::new(bin())
        .args([
            "send",
            "--to",
            "011 15-2345-6789",
            "--text",
            "Hola ¿todo bien?",
            "--config",
        ])
        .arg(&d.config)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("queued as message 1"));
    let out = tokio::process::Command::new(bin())
        .args(["send", "--to", "xyz", "--text", "x", "--config"])
        .arg(&d.config)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("to:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn customers_import_command_reports_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let csv = dir.path().join("clientes.csv");
    std::fs::write(
        &csv,
        "codigo;nombre;telefono;deuda\n1;Ana;1123456789;1.234,50\n2;Beto;no-es-un-numero;5\n",
    )
    .unwrap();
    let run = |file: std::path::PathBuf| {
        let config = d.config.clone();
        async move {
            tokio::process::Command::new(bin())
                .args(["customers", "import"])
                .arg(file)
                .arg("--config")
                .arg(config)
                .output()
                .await
                .unwrap()
        }
    };
    let out = run(csv.clone()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 inserted, 0 updated, 1 rejected"),
        "{stdout}"
    );
    assert!(stdout.contains("line 3: phone:"), "{stdout}");
    let (_, found) = common::api(
        reqwest::Method::GET,
        format!("{}/api/customers?phone=%2B5491123456789", d.base),
        None,
    )
    .await;
    assert_eq!(found["customers"][0]["balance"], "1234.50");
    // A file the importer cannot read at all: exit 1, the reason on stderr, nothing stored.
    std::fs::write(&csv, "nombre,telefono\nAna,1123456789\n").unwrap();
    let out = run(csv).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no customer code column"));
}

/// `GET /api/backup` streams a database; `pasarela backup` writes one; `pasarela restore`
/// refuses while the daemon runs and puts the copy back once it is stopped.
#[tokio::test(flavor = "multi_thread")]
async fn backup_route_backup_and_restore_commands() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path());
    let base = d.base.clone();
    let send = |text: &'static str| {
        let base = base.clone();
        async move {
            let (code, _) = api(
                Method::POST,
                format!("{base}/api/messages"),
                Some(json!({"to": "+5491123456789", "text": text})),
            )
            .await;
            assert_eq!(code, 202);
        }
    };
    send("uno").await;
    let count = |db: &std::path::Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    };

    let r = client()
        .get(format!("{}/api/backup", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the backup needs the token");
    let r = client()
        .get(format!("{}/api/backup", d.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.sqlite3");
    let bytes = r.bytes().await.unwrap();
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    let streamed = dir.path().join("streamed.db");
    std::fs::write(&streamed, &bytes).unwrap();
    assert_eq!(count(&streamed), 1);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".backup"))
        .collect();
    assert!(leftovers.is_empty(), "the temporary copy is gone");

    let config = d.config.clone();
    let run = |args: Vec<std::ffi::OsString>| {
        let config = config.clone();
        async move {
            tokio::process::Command::new(bin())
                .args(args)
                .arg("--config")
                .arg(config)
                .output()
                .await
                .unwrap()
        }
    };
    let copy = dir.path().join("copia.db");
    let out = run(vec!["backup".into(), copy.clone().into()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backup written"));
    assert_eq!(count(&copy), 1);

    send("dos").await;
    let out = run(vec!["restore".into(), copy.clone().into()]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use") && err.contains("stop it first"),
        "{err}"
    );

    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(30)), Some(0));
    assert_eq!(count(&d.db()), 2);
    let out = run(vec!["restore".into(), copy.clone().into()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("previous database is kept"));
    assert_eq!(count(&d.db()), 1, "the copy is back");
}
