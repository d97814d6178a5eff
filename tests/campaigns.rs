//! Campaigns end to end: the real binary with an `[[http_sms]]` route to a local SMS app,
//! customers imported through the API, a campaign created, previewed, started, paused,
//! resumed, cancelled, killed with SIGKILL in the middle, and its report read.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use common::{Daemon, TOKEN, api, wait_for};
use reqwest::Method;
use serde_json::{Value, json};

/// The SMS app: a message counts as accepted when the app answers OK. While `hold` is set,
/// requests wait unanswered; a request from before a `generation` change (the daemon that
/// sent it was killed) is never accepted. With `hold_after` above zero the app sets `hold`
/// itself once it has accepted that many, so a test can freeze it mid-campaign however fast
/// the daemon sends.
#[derive(Default)]
struct App {
    accepted: Mutex<Vec<(String, String, Instant)>>,
    held: AtomicU64,
    hold: AtomicBool,
    hold_after: AtomicU64,
    generation: AtomicU64,
    delay_ms: AtomicU64,
}

impl App {
    fn phones(&self) -> Vec<String> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _, _)| p.clone())
            .collect()
    }
}

async fn sms_app(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let generation = app.generation.load(Ordering::SeqCst);
    let delay = app.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let hold_after = app.hold_after.load(Ordering::SeqCst) as usize;
    if hold_after > 0 && app.accepted.lock().unwrap().len() >= hold_after {
        app.hold.store(true, Ordering::SeqCst);
    }
    if app.hold.load(Ordering::SeqCst) {
        app.held.fetch_add(1, Ordering::SeqCst);
        while app.hold.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    if app.generation.load(Ordering::SeqCst) != generation {
        return (StatusCode::SERVICE_UNAVAILABLE, "gone".into());
    }
    app.accepted.lock().unwrap().push((
        q.get("phone").cloned().unwrap_or_default(),
        q.get("message").cloned().unwrap_or_default(),
        Instant::now(),
    ));
    (StatusCode::OK, "OK".into())
}

async fn start_app() -> (Arc<App>, String) {
    let app = Arc::new(App::default());
    let router = Router::new()
        .route("/send", get(sms_app))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (app, format!("http://{addr}"))
}

fn config(base: &str) -> String {
    format!(
        "token = \"{TOKEN}\"\n[dispatch]\nretry_base_secs = 1\nretry_max_secs = 1\n\
         [windows]\nbulk = \"always\"\n\
         [[http_sms]]\nname = \"app\"\nurl = \"{base}/send\"\nsuccess_contains = \"OK\"\n\
         [http_sms.params]\nphone = \"{{phone}}\"\nmessage = \"{{message}}\"\n"
    )
}

fn start(dir: &std::path::Path, base: &str) -> Daemon {
    tokio::task::block_in_place(|| Daemon::start_full(dir, "", &config(base), &[]))
}

fn phone(i: usize) -> String {
    format!("+54911{:08}", 40_000_000 + i)
}

/// `n` customers owing 15.000 pesos, due on the 5th; numbered phones.
async fn import(d: &Daemon, from: usize, n: usize) {
    let customers: Vec<Value> = (from..from + n)
        .map(|i| {
            json!({"code": format!("C{i:05}"), "name": format!("Cliente {i}"), "phone": phone(i),
                   "balance": "15.000,00", "due_date": "2026-12-05", "zone": "norte"})
        })
        .collect();
    let (s, b) = api(
        Method::POST,
        format!("{}/api/customers", d.base),
        Some(Value::Array(customers)),
    )
    .await;
    assert_eq!(s, 200, "{b}");
}

async fn campaign(d: &Daemon, id: i64) -> Value {
    api(Method::GET, format!("{}/api/campaigns/{id}", d.base), None)
        .await
        .1
}

async fn post(d: &Daemon, path: &str, body: Option<Value>) -> (u16, Value) {
    api(Method::POST, format!("{}{path}", d.base), body).await
}

async fn create(d: &Daemon, body: Value) -> i64 {
    let (s, b) = post(d, "/api/campaigns", Some(body)).await;
    assert_eq!(s, 201, "{b}");
    b["id"].as_i64().unwrap()
}

fn collection() -> Value {
    json!({
        "name": "Deuda noviembre",
        "channel": "sms",
        "template": "%nombre%: su deuda es %deuda%, vencida el %vencimiento%.",
        "selection": {"balance_min": 10000, "due_before": "2026-12-10"}
    })
}

async fn wait_state(d: &Daemon, id: i64, state: &str, secs: u64) -> Value {
    let mut last = Value::Null;
    wait_for(&format!("campaign {id} {state}"), secs, async || {
        last = campaign(d, id).await;
        last["state"] == state
    })
    .await;
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_start_report_and_bad_input() {
    let (app, base) = start_app().await;
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &base);
    import(&d, 0, 6).await;
    let extra = vec![
        // Owes less: not selected. Exactly 10.000,00 is (balance_min is inclusive, in cents).
        json!({"code": "LOW", "name": "Poco", "phone": phone(100), "balance": "9.999,99", "due_date": "2026-12-01"}),
        json!({"code": "EXACT", "name": "Justo", "phone": phone(101), "balance": "10.000,00", "due_date": "2026-12-01"}),
        // Due on the 10th: not before it.
        json!({"code": "LATE", "name": "Tarde", "phone": phone(102), "balance": 20000, "due_date": "2026-12-10"}),
        json!({"code": "BAJA", "name": "Baja", "phone": phone(103), "balance": 20000, "due_date": "2026-12-01", "optout": {"sms": true}}),
        json!({"code": "NOPHONE", "name": "Sin teléfono", "balance": 20000, "due_date": "2026-12-01"}),
        // The same number as C00000 (a family's second account).
        json!({"code": "DUP", "name": "Familia", "phone": phone(0), "balance": 20000, "due_date": "2026-12-01"}),
    ];
    let (s, b) = post(&d, "/api/customers", Some(Value::Array(extra))).await;
    assert_eq!(s, 200, "{b}");

    // Bad input: a clear error naming the field, nothing created.
    for (body, field) in [
        (
            json!({"name": "x", "channel": "fax", "template": "hola"}),
            "channel",
        ),
        (
            json!({"name": "x", "channel": "whatsapp", "template": "hola"}),
            "channel",
        ),
        (
            json!({"name": "x", "channel": "sms", "template": "hola %nope%"}),
            "template",
        ),
        (
            json!({"name": "x", "channel": "sms", "template": "hola", "rate": "fast"}),
            "rate",
        ),
        (
            json!({"name": "x", "channel": "sms", "template": "hola", "selection": {"balance_min": "abc"}}),
            "selection.balance_min",
        ),
        (
            json!({"name": "x", "channel": "sms", "template": "hola", "selection": {"due_before": "mañana"}}),
            "selection.due_before",
        ),
        (
            json!({"name": "x", "channel": "sms", "template": "hola", "selection": {"fields": {"a-b": "1"}}}),
            "selection.fields.a-b",
        ),
        (
            json!({"name": "x", "channel": "sms", "template": "hola", "selection": {"numbers": ["12"]}}),
            "selection.numbers[0]",
        ),
    ] {
        let (s, b) = post(&d, "/api/campaigns", Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {b}");
        assert_eq!(b["error"]["field"], field, "{b}");
    }
    let (s, b) = post(
        &d,
        "/api/campaigns",
        Some(json!({"name": "x", "channel": "sms", "template": "hola", "selection": {"zone": "sur"}})),
    )
    .await;
    assert_eq!(s, 422, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("matches no customer"),
        "{b}"
    );
    let (_, list) = api(Method::GET, format!("{}/api/campaigns", d.base), None).await;
    assert_eq!(list["campaigns"].as_array().unwrap().len(), 0);

    // The preview: 6 + EXACT match and go; BAJA, NOPHONE, DUP are excluded by reason.
    let id = create(&d, collection()).await;
    let c = campaign(&d, id).await;
    assert_eq!(c["state"], "draft");
    let p = &c["preview"];
    assert_eq!(p["matched"], 10, "{p}");
    assert_eq!(p["to_send"], 7, "{p}");
    assert_eq!(p["excluded"]["opted_out"], 1, "{p}");
    assert_eq!(p["excluded"]["no_address"], 1, "{p}");
    assert_eq!(p["excluded"]["duplicate"], 1, "{p}");
    assert_eq!(p["excluded"]["missing_variable"], 0, "{p}");
    assert_eq!(
        p["sample"],
        "Cliente 0: su deuda es $ 15.000,00, vencida el 05/12/2026."
    );

    // A template variable some lack: counted, and start refused unless allow_missing.
    let mut with_plan = collection();
    with_plan["template"] = json!("%nombre%, plan %plan%: %deuda%");
    with_plan["selection"]["codes"] = json!(["C00001", "EXACT", "NOSUCH"]);
    let (s, b) = post(&d, "/api/campaigns/preview", Some(with_plan.clone())).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["excluded"]["missing_variable"], 2, "{b}");
    assert_eq!(b["missing_variables"]["plan"], 2, "{b}");
    assert_eq!(b["unknown"], json!(["NOSUCH"]), "{b}");
    let refused = create(&d, with_plan.clone()).await;
    let (s, b) = post(&d, &format!("/api/campaigns/{refused}/start"), None).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["field"], "allow_missing", "{b}");
    assert_eq!(campaign(&d, refused).await["state"], "draft");
    with_plan["allow_missing"] = json!(true);
    let skipping = create(&d, with_plan).await;
    let (s, b) = post(&d, &format!("/api/campaigns/{skipping}/start"), None).await;
    assert_eq!(s, 422, "nobody left to send to: {b}");
    assert_eq!(b["error"]["code"], "empty_selection");

    // Start; twice is the same start. Customers imported afterwards do not join.
    let (s, b) = post(&d, &format!("/api/campaigns/{id}/start"), None).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = post(&d, &format!("/api/campaigns/{id}/start"), None).await;
    assert_eq!(s, 200, "{b}");
    import(&d, 200, 3).await;
    let done = wait_state(&d, id, "done", 30).await;
    let pr = &done["progress"];
    assert_eq!(pr["total"], 10, "{done}");
    assert_eq!(pr["sent"], 7, "{done}");
    assert_eq!(pr["skipped"], 3, "{done}");
    assert_eq!(pr["pending"], 0, "{done}");
    let mut phones = app.phones();
    phones.sort();
    let mut expected: Vec<String> = (0..6).map(phone).chain([phone(101)]).collect();
    expected.sort();
    assert_eq!(phones, expected, "each selected customer once, nobody else");

    // Cancel after completion: 409; pause of a finished one too.
    let (s, b) = post(&d, &format!("/api/campaigns/{id}/cancel"), None).await;
    assert_eq!(s, 409, "{b}");
    let (s, _) = post(&d, &format!("/api/campaigns/{id}/pause"), None).await;
    assert_eq!(s, 409);
    let (s, _) = post(&d, "/api/campaigns/999/start", None).await;
    assert_eq!(s, 404);

    let r = common::client()
        .get(format!("{}/api/campaigns/{id}/report.csv", d.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "code,channel,address,state,reason,cost,replied");
    assert_eq!(lines.len(), 11, "{csv}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("BAJA,sms,,skipped,opted out (BAJA) of sms")),
        "{csv}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("NOPHONE,sms,,skipped,no phone number")),
        "{csv}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("DUP,sms,") && l.contains("duplicate")),
        "{csv}"
    );
    assert!(
        lines
            .iter()
            .any(|l| *l == format!("EXACT,sms,{},sent,,,no", phone(101))),
        "{csv}"
    );

    // Cancel of a draft works; it cannot start afterwards.
    let (s, b) = post(&d, &format!("/api/campaigns/{refused}/cancel"), None).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = post(&d, &format!("/api/campaigns/{refused}/start"), None).await;
    assert_eq!(s, 409, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_holds_across_the_campaign() {
    let (app, base) = start_app().await;
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &base);
    import(&d, 0, 8).await;
    let mut body = collection();
    body["rate"] = json!("3/2s");
    let id = create(&d, body).await;
    let (s, b) = post(&d, &format!("/api/campaigns/{id}/start"), None).await;
    assert_eq!(s, 200, "{b}");
    wait_state(&d, id, "done", 30).await;
    let times: Vec<Instant> = app
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, t)| *t)
        .collect();
    assert_eq!(times.len(), 8);
    // No 4 sends within 2 s (a little slack for the clock of the app's side).
    for w in times.windows(4) {
        let spread = w[3] - w[0];
        assert!(
            spread >= Duration::from_millis(1900),
            "4 sends within {spread:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_new_sends_and_resume_finishes_without_repeats() {
    let (app, base) = start_app().await;
    app.delay_ms.store(100, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &base);
    import(&d, 0, 30).await;
    let id = create(&d, collection()).await;
    post(&d, &format!("/api/campaigns/{id}/start"), None).await;
    wait_for("some sends", 20, async || app.phones().len() >= 5).await;
    let (s, b) = post(&d, &format!("/api/campaigns/{id}/pause"), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["state"], "paused");
    let at_pause = app.phones().len();
    // What was being sent finishes; nothing new starts.
    wait_for("the send in flight finished", 20, async || {
        campaign(&d, id).await["progress"]["queued"] == 0
    })
    .await;
    let after = app.phones().len();
    assert!(after <= at_pause + 1, "{at_pause} at pause, {after} after");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(app.phones().len(), after, "sends went on while paused");
    let c = campaign(&d, id).await;
    assert!(c["progress"]["pending"].as_u64().unwrap() > 0, "{c}");
    assert_eq!(c["progress"]["queued"], 0, "{c}");
    let (s, b) = post(&d, &format!("/api/campaigns/{id}/resume"), None).await;
    assert_eq!(s, 200, "{b}");
    wait_state(&d, id, "done", 60).await;
    let mut phones = app.phones();
    phones.sort();
    let mut expected: Vec<String> = (0..30).map(phone).collect();
    expected.sort();
    assert_eq!(phones, expected, "everyone once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_resumes_without_loss_or_repeats() {
    let (app, base) = start_app().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path(), &base);
    import(&d, 0, 40).await;
    let id = create(&d, collection()).await;
    // The app freezes itself after ten sends, with the next one in flight; then wait until
    // the daemon has stored every answer it got: the kill lands with messages sending, queued
    // and still pending. (Setting `hold` from here raced a fast daemon: all 40 could be sent
    // between two looks.)
    app.hold_after.store(10, Ordering::SeqCst);
    post(&d, &format!("/api/campaigns/{id}/start"), None).await;
    wait_for("a send held", 20, async || {
        app.held.load(Ordering::SeqCst) >= 1
    })
    .await;
    let accepted = app.phones().len();
    wait_for("answers stored", 20, async || {
        campaign(&d, id).await["progress"]["sent"] == accepted
    })
    .await;
    let before = campaign(&d, id).await;
    // Usually some tasks are still pending here too; on a slow machine the feeder may already
    // have queued them all, and the kill then lands with sends in flight and queued only.
    let _ = before["progress"]["pending"].as_u64();
    tokio::task::block_in_place(|| d.kill9());
    app.generation.fetch_add(1, Ordering::SeqCst);
    app.hold_after.store(0, Ordering::SeqCst);
    app.hold.store(false, Ordering::SeqCst);
    drop(d);
    let d = start(dir.path(), &base);
    let done = wait_state(&d, id, "done", 60).await;
    assert_eq!(done["progress"]["sent"], 40, "{done}");
    let mut phones = app.phones();
    phones.sort();
    let mut expected: Vec<String> = (0..40).map(phone).collect();
    expected.sort();
    assert_eq!(phones, expected, "everyone exactly once across the crash");
}
