//! The operators' pages through `pasarela demo`: the real binary, a real SQLite file, the
//! simulated modem on a real pseudo-terminal, plain HTTP with cookies kept by hand (so every
//! redirect and cookie flag is visible).

mod common;
use common::users::add_user;
#[path = "common/fake_graph.rs"]
mod fake_graph;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, wait_until};
use reqwest::blocking::{Client, Response};
use reqwest::redirect::Policy;

const TOKEN: &str = "web-demo-token-0123456789";
const PASSWORD: &str = "clave-del-admin";

struct Demo {
    child: Child,
    base: String,
    sim: String,
    dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let (port, sim_port) = (free_port(), free_port());
    let child = Command::new(common::bin())
        .args(["demo", "--dir"])
        .arg(dir.path().join("demo"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--sim-control", &format!("127.0.0.1:{sim_port}")])
        .args(["--token", TOKEN, "--ui-password", PASSWORD])
        .env("PASARELA_JOURNAL_SOCKET", dir.path().join("no-journal"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let demo = Demo {
        child,
        base: format!("http://127.0.0.1:{port}"),
        sim: format!("http://127.0.0.1:{sim_port}"),
        dir,
    };
    wait_until("the demo to answer", Duration::from_secs(30), || {
        reqwest::blocking::get(format!("{}/api/health", demo.base))
            .is_ok_and(|r| r.status().is_success())
    });
    demo
}

fn http() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn set_cookies(r: &Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn cookie_value(set: &[String], name: &str) -> Option<String> {
    set.iter().find_map(|c| {
        let first = c.split(';').next()?;
        let (k, v) = first.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// The value of `<input ... name="NAME" value="...">` (the first one).
fn field(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no field {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A logged-in browser: its session cookie and CSRF token.
struct Session {
    base: String,
    cookie: String,
    csrf: String,
}

/// Posts the login form; answers the response.
fn post_login(base: &str, user: &str, password: &str) -> Response {
    let page = http().get(format!("{base}/login")).send().unwrap();
    let login_cookie = cookie_value(&set_cookies(&page), "pasarela_login").unwrap();
    let csrf = field(&page.text().unwrap(), "csrf");
    http()
        .post(format!("{base}/login"))
        .header("cookie", format!("pasarela_login={login_cookie}"))
        .form(&[
            ("username", user),
            ("password", password),
            ("csrf", &csrf),
            ("next", "/"),
        ])
        .send()
        .unwrap()
}

fn login(base: &str, user: &str, password: &str) -> Session {
    let r = post_login(base, user, password);
    assert_eq!(r.status(), 303, "login refused");
    let cookie = cookie_value(&set_cookies(&r), "pasarela_session").unwrap();
    let mut s = Session {
        base: base.to_string(),
        cookie,
        csrf: String::new(),
    };
    let (_, html) = s.get("/");
    s.csrf = field(&html, "csrf");
    s
}

impl Session {
    fn get(&self, path: &str) -> (u16, String) {
        let r = http()
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("pasarela_session={}", self.cookie))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    /// Posts a form with the CSRF token; answers status, Location and body.
    fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("csrf", &self.csrf));
        self.post_raw(path, &fields)
    }

    fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let r = http()
            .post(format!("{}{path}", self.base))
            .header("cookie", format!("pasarela_session={}", self.cookie))
            .form(form)
            .send()
            .unwrap();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (r.status().as_u16(), location, r.text().unwrap())
    }
}

#[test]
fn a_page_without_a_session_redirects_to_login() {
    let demo = start_demo();
    let r = http()
        .get(format!("{}/messages?state=failed", demo.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/login?next=%2Fmessages%3Fstate%3Dfailed"
    );
    for path in [
        "/",
        "/send",
        "/conversations",
        "/customers",
        "/rules",
        "/system",
    ] {
        let r = http().get(format!("{}{path}", demo.base)).send().unwrap();
        assert_eq!(r.status(), 303, "{path}");
    }
    // A made-up cookie is no session; the live fragments answer 401 instead of a redirect.
    let r = http()
        .get(format!("{}/ui/dashboard", demo.base))
        .header("cookie", "pasarela_session=0123")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    // The API keeps its bearer token and does not take the session instead.
    let s = login(&demo.base, "admin", PASSWORD);
    let r = http()
        .get(format!("{}/api/messages", demo.base))
        .header("cookie", format!("pasarela_session={}", s.cookie))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn the_session_cookie_has_its_flags_and_logout_ends_the_session() {
    let demo = start_demo();
    let r = post_login(&demo.base, "admin", PASSWORD);
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let set = set_cookies(&r);
    let session = set
        .iter()
        .find(|c| c.starts_with("pasarela_session="))
        .unwrap();
    assert!(session.contains("; HttpOnly"), "{session}");
    assert!(session.contains("; SameSite=Strict"), "{session}");
    assert!(session.contains("; Path=/"), "{session}");
    assert!(
        !session.contains("Secure"),
        "plain HTTP cannot carry a Secure cookie: {session}"
    );
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));

    let s = login(&demo.base, "admin", PASSWORD);
    let (status, html) = s.get("/");
    assert_eq!(status, 200);
    assert!(html.contains("dBm"), "the modem's signal: {html}");
    let (status, _, _) = s.post("/logout", &[]);
    assert_eq!(status, 303);
    let (status, _) = s.get("/");
    assert_eq!(status, 303, "the session ended");
}

#[test]
fn a_form_without_the_csrf_token_is_refused() {
    let demo = start_demo();
    let s = login(&demo.base, "admin", PASSWORD);
    let (status, _, body) = s.post_raw(
        "/send",
        &[("to", "1123456789"), ("text", "hola"), ("channel", "sms")],
    );
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = s.post_raw(
        "/send",
        &[("to", "1123456789"), ("text", "hola"), ("csrf", "0000")],
    );
    assert_eq!(status, 403);
    // The counter's JSON call carries the token in a header.
    let r = http()
        .post(format!("{}/ui/preview", demo.base))
        .header("cookie", format!("pasarela_session={}", s.cookie))
        .json(&serde_json::json!({"template": "hola"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http()
        .post(format!("{}/ui/preview", demo.base))
        .header("cookie", format!("pasarela_session={}", s.cookie))
        .header("x-csrf-token", &s.csrf)
        .json(&serde_json::json!({"template": "¿Cómo está? Le escribe %empresa%"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["encoding"], "ucs2", "{v}");
    assert_eq!(v["parts"], 1);
    // A login form posted without its cookie is refused too.
    let r = http()
        .post(format!("{}/login", demo.base))
        .form(&[("username", "admin"), ("password", PASSWORD), ("csrf", "x")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    // Nothing was queued by the refused forms.
    let (_, html) = s.get("/messages");
    assert!(!html.contains("data-id="), "{html}");
}

#[test]
fn wrong_passwords_are_throttled() {
    let demo = start_demo();
    for _ in 0..5 {
        assert_eq!(post_login(&demo.base, "admin", "equivocada").status(), 401);
    }
    let r = post_login(&demo.base, "admin", PASSWORD);
    assert_eq!(r.status(), 429, "the right password waits too");
    let html = r.text().unwrap();
    assert!(html.contains("Demasiados intentos"), "{html}");
}

#[test]
fn users_from_the_command_line_and_an_operator_kept_out_of_admin_pages() {
    let demo = start_demo();
    let config = demo.dir.path().join("pasarela.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}\"\n",
            demo.dir.path().join("demo").display()
        ),
    )
    .unwrap();
    let user = |args: &[&str], stdin: &str| {
        let mut child = Command::new(common::bin())
            .arg("user")
            .args(args)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = user(&["add", "ana", "--role", "operator"], "clave de ana\n");
    assert!(ok, "{out}");
    let (ok, out) = user(&["add", "ana", "--role", "operator"], "clave de ana\n");
    assert!(!ok && out.contains("already exists"), "{out}");
    let (ok, out) = user(&["add", "beto", "--role", "admin"], "corta\n");
    assert!(!ok && out.contains("at least 8"), "{out}");
    let (ok, out) = user(&["list"], "");
    assert!(ok, "{out}");
    assert_eq!(out, "admin\tadmin\tes\nana\toperator\tes\n");

    let ana = login(&demo.base, "ana", "clave de ana");
    let (status, html) = ana.get("/rules");
    assert_eq!(status, 403, "{html}");
    let (status, _, _) = ana.post("/rules", &[("balance.reply", "x")]);
    assert_eq!(status, 403);
    let (status, html) = ana.get("/system");
    assert_eq!(status, 200);
    assert!(
        !html.contains("operator</td>"),
        "users are for admins: {html}"
    );
    assert!(!html.contains("/system/backup"), "{html}");
    let (status, _) = ana.get("/system/backup");
    assert_eq!(status, 403, "backups are for admins");
    let (status, html) = ana.get("/send");
    assert_eq!(status, 200, "operators send");
    assert!(!html.contains("href=\"/rules\""), "{html}");

    let (ok, out) = user(&["passwd", "ana"], "otra clave de ana\n");
    assert!(ok, "{out}");
    let (status, _) = ana.get("/");
    assert_eq!(status, 303, "a new password ends the sessions");
    assert_eq!(post_login(&demo.base, "ana", "clave de ana").status(), 401);
    login(&demo.base, "ana", "otra clave de ana");

    let admin = login(&demo.base, "admin", PASSWORD);
    let (status, html) = admin.get("/system");
    assert_eq!(status, 200);
    assert!(html.contains("<td>ana</td><td>operator</td>"), "{html}");
    assert!(html.contains("href=\"/system/backup\""), "{html}");
    let r = http()
        .get(format!("{}/system/backup", demo.base))
        .header("cookie", format!("pasarela_session={}", admin.cookie))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment"),
        "{:?}",
        r.headers()
    );
    let copy = r.bytes().unwrap();
    assert!(copy.starts_with(b"SQLite format 3\0"), "a database file");
}

#[test]
fn each_channel_sends_a_test_from_its_page() {
    let demo = start_demo();
    let s = login(&demo.base, "admin", PASSWORD);
    let (status, html) = s.get("/channels");
    assert_eq!(status, 200);
    assert!(html.contains("id=\"test-modem1\""), "{html}");
    let (status, _, html) = s.post("/channels/test", &[("channel", "sms"), ("to", "12")]);
    assert_eq!(status, 422);
    assert!(html.contains("to: "), "the number's error: {html}");
    let (status, location, _) = s.post(
        "/channels/test",
        &[("channel", "sms"), ("to", "011 15-2345-6789")],
    );
    assert_eq!(status, 303);
    assert!(location.starts_with("/messages/"), "{location}");
    wait_until("the test to be delivered", Duration::from_secs(60), || {
        s.get(&location).1.contains("state-delivered")
    });
    let (_, html) = s.get(&location);
    assert!(html.contains("Prueba de pasarela:"), "{html}");
    assert!(
        html.contains("<td>modem1</td>"),
        "the route that took it: {html}"
    );
    let sent = reqwest::blocking::get(format!("{}/sent", demo.sim))
        .unwrap()
        .text()
        .unwrap();
    assert!(sent.contains("Prueba de pasarela:"), "{sent}");
}

#[test]
fn send_see_it_delivered_reply_and_switch_language() {
    let demo = start_demo();
    let s = login(&demo.base, "admin", PASSWORD);
    let (status, html) = s.get("/send");
    assert_eq!(status, 200);
    assert!(html.contains("name=\"to\"") && html.contains("name=\"channel\""));
    assert!(html.contains("Ana Pérez (1001)"), "the customer picker");

    // A bad number is refused naming the field, and the text is kept.
    let (status, _, html) = s.post(
        "/send",
        &[
            ("to", "12"),
            ("text", "Hola desde la oficina"),
            ("channel", "sms"),
        ],
    );
    assert_eq!(status, 422);
    assert!(html.contains("to: "), "{html}");
    assert!(html.contains("Hola desde la oficina</textarea>"));

    let (status, location, _) = s.post(
        "/send",
        &[
            ("to", "011 15-2345-6789"),
            ("text", "Su pago fue registrado. ¡Gracias!"),
            ("channel", "sms"),
        ],
    );
    assert_eq!(status, 303);
    assert!(location.starts_with("/messages/"), "{location}");
    wait_until(
        "the message to be delivered",
        Duration::from_secs(60),
        || s.get(&location).1.contains("state-delivered"),
    );
    // Its page logs every state it went through, in order, with the route.
    let (_, html) = s.get(&location);
    let log = &html[html.find("id=\"state-log\"").expect("the state log")..];
    let states: Vec<&str> = log
        .split("<tr class=\"state-change\">")
        .skip(1)
        .filter_map(|row| row.split("class=\"state state-").nth(1)?.split('"').next())
        .collect();
    assert_eq!(states.first(), Some(&"queued"), "{log}");
    assert_eq!(states.last(), Some(&"delivered"), "{log}");
    let sent = states
        .iter()
        .position(|s| *s == "sent")
        .expect("sent logged");
    assert!(sent > 0 && sent < states.len() - 1, "{states:?}");
    assert!(log.contains("<td>modem1</td>"), "{log}");
    let (_, html) = s.get("/messages?direction=out&origin=manual&q=PAGO");
    assert!(html.contains("Su pago fue registrado"), "{html}");
    assert!(html.contains("(admin)"), "who sent it: {html}");
    let (_, html) = s.get("/messages?origin=auto");
    assert!(!html.contains("Su pago fue registrado"), "{html}");
    let (status, html) = s.get("/messages?since=nope");
    assert_eq!(status, 400);
    assert!(html.contains("since: `nope`"), "{html}");
    let r = http()
        .get(format!("{}/messages.csv?direction=out", demo.base))
        .header("cookie", format!("pasarela_session={}", s.cookie))
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = r.text().unwrap();
    assert!(csv.starts_with("id,created_at,direction"), "{csv}");
    assert!(csv.contains("Su pago fue registrado. ¡Gracias!"), "{csv}");

    // A customer texts "saldo": the thread shows the auto-reply, unread.
    let r = http()
        .post(format!("{}/inbound", demo.sim))
        .json(&serde_json::json!({"from": "+5491123456789", "text": "saldo"}))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    wait_until(
        "the auto-reply in the inbox",
        Duration::from_secs(60),
        || {
            let (_, html) = s.get("/ui/conversations");
            html.contains("Ana Pérez") && html.contains("$ 1.234,50") && html.contains("unread")
        },
    );
    let (_, html) = s.get("/conversations/%2B5491123456789");
    assert!(html.contains("respuesta automática"), "{html}");
    let (_, html) = s.get("/ui/conversations");
    assert!(!html.contains("thread unread"), "read once opened: {html}");
    let (status, location, _) = s.post(
        "/conversations/%2B5491123456789/reply",
        &[("text", "Ya le enviamos el detalle por correo.")],
    );
    assert_eq!(
        (status, location.as_str()),
        (303, "/conversations/%2B5491123456789")
    );
    let (_, html) = s.get("/ui/conversations/%2B5491123456789");
    assert!(html.contains("Ya le enviamos el detalle"), "{html}");
    assert!(html.contains("operador (admin)"), "{html}");

    let (status, _, _) = s.post("/lang", &[("lang", "en")]);
    assert_eq!(status, 303);
    let (_, html) = s.get("/");
    assert!(html.contains("<h1>Dashboard</h1>"), "{html}");
    assert!(html.contains("lang=\"en\""));
}

#[test]
fn customers_import_previews_errors_by_line_and_rules_show_errors_by_field() {
    let demo = start_demo();
    let s = login(&demo.base, "admin", PASSWORD);
    let csv = "codigo;nombre;telefono;deuda\n2001;Luis Díaz;1133334444;1.000,00\n2002;Sin Teléfono;12;abc\n";
    let (status, _, html) = s.post("/customers/import", &[("csv", csv)]);
    assert_eq!(status, 200);
    assert!(html.contains("Luis Díaz"), "{html}");
    assert!(html.contains("id=\"import-errors\""), "{html}");
    assert!(
        html.contains("<tr><td>3</td>"),
        "the bad row's line: {html}"
    );
    let (_, html) = s.get("/customers?q=Luis");
    assert!(!html.contains("2001"), "a preview changes nothing: {html}");
    let (status, _, html) = s.post("/customers/import", &[("csv", csv), ("commit", "1")]);
    assert_eq!(status, 200);
    assert!(html.contains("1 nuevos"), "{html}");
    let (_, html) = s.get("/customers?q=Luis");
    assert!(html.contains("/customers/2001"), "{html}");
    let (status, html) = s.get("/customers/2001");
    assert_eq!(status, 200);
    assert!(html.contains("+5491133334444"), "{html}");

    // A file larger than a plain form's 2 MiB is previewed too.
    let mut big = String::from("codigo;nombre\n");
    for i in 0..20_000 {
        big.push_str(&format!(
            "{};Cliente con un nombre largo para llenar la fila {}{}\n",
            50_000 + i,
            i,
            "x".repeat(90)
        ));
    }
    assert!(big.len() > 2 << 20);
    let (status, _, html) = s.post("/customers/import", &[("csv", &big)]);
    assert_eq!(status, 200);
    assert!(html.contains("20000"), "the count of valid rows");

    let (status, html) = s.get("/rules");
    assert_eq!(status, 200);
    assert!(html.contains("saldo, deuda, cuenta"), "{html}");
    let (status, _, html) = s.post(
        "/rules",
        &[
            ("balance.keywords", "saldo, deuda"),
            ("balance.reply", "Su saldo es %nodefinida%"),
        ],
    );
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"balance-reply-err\""), "{html}");
    assert!(html.contains("nodefinida"), "{html}");
    let (status, _, html) = s.post(
        "/rules",
        &[
            ("balance.keywords", "saldo, deuda"),
            ("balance.reply", "Su saldo es %deuda%."),
        ],
    );
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Reglas guardadas"), "{html}");
    assert!(html.contains("value=\"saldo, deuda\""), "{html}");

    let (status, html) = s.get("/channels");
    assert_eq!(status, 200);
    assert!(
        html.contains("modem1") && html.contains("pasarela.toml"),
        "{html}"
    );
    let (status, html) = s.get("/tickets");
    assert_eq!(status, 200, "{html}");
}

/// Outbound messages as the API lists them (newest first): their texts.
fn outbound_texts(demo: &Demo) -> Vec<String> {
    let body: serde_json::Value = http()
        .get(format!(
            "{}/api/messages?direction=out&limit=500",
            demo.base
        ))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn send_page_templates_and_a_csv_bulk_send_checked_by_line() {
    let demo = start_demo();
    let s = login(&demo.base, "admin", PASSWORD);
    let (_, html) = s.get("/send");
    assert!(
        html.contains("id=\"template\""),
        "the template picker: {html}"
    );
    assert!(html.contains("<option value=\"recordatorio\""), "{html}");

    // A template picked without a text: filled in for the customer of the number.
    let (status, location, html) = s.post(
        "/send",
        &[
            ("to", "1123456789"),
            ("text", ""),
            ("template", "recordatorio"),
        ],
    );
    assert_eq!(status, 303, "{html}");
    let (_, html) = s.get(&location);
    assert!(
        html.contains("Hola Ana Pérez, le recordamos que su saldo es $ 1.234,50, con vencimiento el 05/12/2026."),
        "{html}"
    );
    // %variables% for a number no customer has: refused naming `to`, nothing queued.
    let before = outbound_texts(&demo).len();
    let (status, _, html) = s.post(
        "/send",
        &[("to", "+5491144445555"), ("text", "Hola %nombre%")],
    );
    assert_eq!(status, 422);
    assert!(
        html.contains("to: ") && html.contains("aria-invalid"),
        "{html}"
    );
    let (status, _, html) = s.post("/send", &[("to", "1123456789"), ("text", "Hola %nombree%")]);
    assert_eq!(status, 422);
    assert!(html.contains("text: "), "{html}");
    assert_eq!(outbound_texts(&demo).len(), before);

    // A CSV with a bad number and a row whose %variables% find no customer: every problem
    // named by line and field, and nothing sent.
    let csv = "telefono,texto\r\n1123456789,\r\n12,Hola\r\n2614445566,Aviso para %nombre%\r\n+5491144445555,\r\n"; // CRLF, as browsers post it
    let (status, _, html) = s.post(
        "/send/bulk",
        &[
            ("csv", csv),
            ("text", "Corte programado, %nombre%"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"bulk-problems\""), "{html}");
    assert!(html.contains("CSV, línea 5, to: "), "{html}");
    assert!(html.contains("CSV, línea 3, to: "), "{html}");
    assert!(!html.contains("CSV, línea 2,"), "{html}");
    assert!(!html.contains("CSV, línea 4,"), "{html}");
    assert!(
        html.contains("Aviso para %nombre%"),
        "the CSV is kept: {html}"
    );
    assert_eq!(outbound_texts(&demo).len(), before, "nothing half-sent");
    let (status, _, html) = s.post(
        "/send/bulk",
        &[
            ("csv", "nombre\nAna\n"),
            ("text", "x"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(status, 422);
    assert!(html.contains("CSV, línea 1, to: "), "{html}");
    let (status, _, _) = s.post(
        "/send/bulk",
        &[
            ("csv", "telefono\n1123456789\n"),
            ("text", "x"),
            ("password", "not-mine"),
        ],
    );
    assert_eq!(status, 403);
    assert_eq!(outbound_texts(&demo).len(), before);

    // Fixed: the CSV's own text where it has one, the form's (a template) elsewhere.
    let csv = "telefono,texto\n1123456789,\n2614445566,Aviso para %nombre%\n";
    let (status, _, html) = s.post(
        "/send/bulk",
        &[
            ("csv", csv),
            ("numbers", "011 15-2345-6780"),
            ("template", "corte"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Mensajes encolados: 3"), "{html}");
    let texts = outbound_texts(&demo);
    assert_eq!(texts.len(), before + 3);
    assert!(
        texts.contains(&"Aviso para Comedor Los Álamos".to_string()),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("Estimado Bruno Díaz: mañana")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("Estimado Ana Pérez: mañana")),
        "{texts:?}"
    );
}

#[test]
fn the_system_page_runs_the_doctors_checks_and_admins_manage_users() {
    let demo = start_demo();
    let admin = login(&demo.base, "admin", PASSWORD);

    // The doctor's checks, run by the daemon itself: the simulated modem as it reports it.
    let (status, html) = admin.get("/system");
    assert_eq!(status, 200);
    assert!(html.contains("href=\"/system/checks#checks\""), "{html}");
    assert!(!html.contains("id=\"check-list\""), "checks run on demand");
    let (status, html) = admin.get("/system/checks");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"check-list\""), "{html}");
    assert!(
        html.contains("/pasarela.toml is valid (token set)"),
        "the demo's config, the file it wrote: {html}"
    );
    assert!(
        html.contains("modem1: modem answers AT") && html.contains("held by the running daemon"),
        "the modem's state from the daemon, the port left alone: {html}"
    );
    assert!(html.contains("modem1: SIM ready"), "{html}");
    assert!(html.contains("modem1: signal -"), "{html}");
    assert!(html.contains("admin API answers on"), "{html}");
    assert!(
        html.contains("class=\"check-fail\"") && html.contains("journald not reachable"),
        "the test hides the journal: that check fails with its fix: {html}"
    );

    // Add an operator, refused by field first.
    let (status, _, html) = admin.post(
        "/system/users",
        &[
            ("name", "ana pérez"),
            ("role", "operator"),
            ("password", "clave de ana"),
        ],
    );
    assert_eq!(status, 422);
    assert!(
        html.contains("name: `ana pérez` is not a user name"),
        "{html}"
    );
    assert!(html.contains("id=\"new-name\" name=\"name\" required autocomplete=\"off\" value=\"ana pérez\" aria-invalid=\"true\""), "{html}");
    let (status, _, html) = admin.post(
        "/system/users",
        &[
            ("name", "ana"),
            ("role", "jefe"),
            ("password", "clave de ana"),
        ],
    );
    assert_eq!(status, 422);
    assert!(
        html.contains("role: `jefe` is not admin or operator"),
        "{html}"
    );
    let (status, _, html) = admin.post(
        "/system/users",
        &[("name", "ana"), ("role", "operator"), ("password", "corta")],
    );
    assert_eq!(status, 422);
    assert!(
        html.contains("password: the password must have at least 8"),
        "{html}"
    );
    assert!(!html.contains("<td>ana</td>"), "nothing added: {html}");
    let (status, _, html) = admin.post(
        "/system/users",
        &[
            ("name", "ana"),
            ("role", "operator"),
            ("password", "clave de ana"),
        ],
    );
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Usuario agregado: ana"), "{html}");
    assert!(html.contains("<td>ana</td><td>operator</td>"), "{html}");
    let (status, _, html) = admin.post(
        "/system/users",
        &[
            ("name", "ana"),
            ("role", "admin"),
            ("password", "otra clave"),
        ],
    );
    assert_eq!(status, 422);
    assert!(html.contains("already exists"), "{html}");

    // The operator logs in, and cannot reach user management.
    let ana = login(&demo.base, "ana", "clave de ana");
    let (status, html) = ana.get("/system");
    assert_eq!(status, 200);
    assert!(!html.contains("id=\"user-add\""), "{html}");
    let (status, _, _) = ana.post(
        "/system/users",
        &[
            ("name", "eva"),
            ("role", "admin"),
            ("password", "clave de eva"),
        ],
    );
    assert_eq!(status, 403);
    let (status, _, _) = ana.post("/system/users/admin/password", &[("password", "tomada!!!")]);
    assert_eq!(status, 403);
    let (status, _, _) = ana.post("/system/users/admin/remove", &[]);
    assert_eq!(status, 403);
    assert!(post_login(&demo.base, "eva", "clave de eva").status() == 401);

    // A new password for the operator: their session ends, the new password works.
    let (status, _, html) = admin.post("/system/users/ana/password", &[("password", "corta")]);
    assert_eq!(status, 422);
    assert!(
        html.contains("id=\"password-ana\"") && html.contains("aria-invalid=\"true\""),
        "{html}"
    );
    let (status, _, html) = admin.post(
        "/system/users/ana/password",
        &[("password", "nueva clave de ana")],
    );
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Contraseña cambiada: ana"), "{html}");
    assert_eq!(ana.get("/").0, 303, "the old session ended");
    assert_eq!(post_login(&demo.base, "ana", "clave de ana").status(), 401);
    let ana = login(&demo.base, "ana", "nueva clave de ana");

    // Removing: not oneself, and the operator's session goes with the user.
    let (status, _, html) = admin.post("/system/users/admin/remove", &[]);
    assert_eq!(status, 422);
    assert!(html.contains("No puede quitarse a sí mismo"), "{html}");
    let (status, _, html) = admin.post("/system/users/ana/remove", &[]);
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Usuario quitado: ana"), "{html}");
    assert!(!html.contains("<td>ana</td>"), "{html}");
    assert_eq!(ana.get("/").0, 303, "a removed user's session ends");
    assert_eq!(
        post_login(&demo.base, "ana", "nueva clave de ana").status(),
        401
    );
    let (status, _, html) = admin.post("/system/users/nadie/remove", &[]);
    assert_eq!(status, 422);
    assert!(html.contains("there is no user `nadie`"), "{html}");
}

#[test]
fn rules_page_edits_windows_holidays_and_groups_with_errors_by_field() {
    let demo = start_demo();
    let s = login(&demo.base, "admin", PASSWORD);
    let api_rules = || -> serde_json::Value {
        http()
            .get(format!("{}/api/rules", demo.base))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let (status, html) = s.get("/rules");
    assert_eq!(status, 200);
    assert!(
        html.contains("name=\"group.0.name\" value=\"guardia\""),
        "the demo's on-call group: {html}"
    );
    assert!(html.contains("+5491156781234</textarea>"), "{html}");
    assert!(
        html.contains("id=\"win-0-name\" name=\"win.0.name\" value=\"\""),
        "a blank row to add a window: {html}"
    );
    assert!(
        html.contains("id=\"group-1-name\" name=\"group.1.name\" value=\"\""),
        "{html}"
    );
    // This year's computed national holidays are listed beside the editable days.
    let year = chrono::Datelike::year(
        &chrono::Utc::now().with_timezone(&chrono_tz::America::Argentina::Buenos_Aires),
    );
    assert!(html.contains("id=\"holiday-calendar\""), "{html}");
    assert!(
        html.contains(&format!(
            "<time datetime=\"{year}-07-09\">{year}-07-09</time> Día de la Independencia"
        )),
        "{html}"
    );
    assert!(html.contains("name=\"windows.not_holidays\""), "{html}");
    let before = api_rules();

    // Bad values: each error beside its field, nothing saved.
    let (status, _, html) = s.post(
        "/rules",
        &[
            ("windows.notifications", "always"),
            ("windows.bulk", "always"),
            ("windows.holidays", "2026-12-25\n2026-13-01"),
            ("win.0.name", "noche"),
            ("win.0.days", "lun-vie"),
            ("win.0.from", "25:00"),
            ("win.0.to", "23:00"),
            ("group.0.name", "guardia"),
            ("group.0.phones", "+5491156781234\n12"),
            ("group.0.window", "always"),
            ("group.1.name", ""),
            ("group.1.phones", ""),
            ("group.1.window", "always"),
        ],
    );
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("id=\"windows-holidays-err\">`2026-13-01` is not a date"),
        "{html}"
    );
    assert!(
        html.contains("id=\"win-0-from\" name=\"win.0.from\" value=\"25:00\" placeholder=\"09:00\" aria-invalid=\"true\""),
        "{html}"
    );
    assert!(
        html.contains("id=\"win-0-err\">`25:00` is not a time"),
        "{html}"
    );
    assert!(
        html.contains(
            "id=\"group-0-phones\" name=\"group.0.phones\" rows=\"3\" aria-invalid=\"true\""
        ),
        "{html}"
    );
    assert!(html.contains("id=\"group-0-err\">`12`: "), "{html}");
    assert_eq!(api_rules(), before, "nothing changed");

    // Good values: a new window, holidays, a group moved to that window and a new group.
    let (status, _, html) = s.post(
        "/rules",
        &[
            ("windows.notifications", "laboral"),
            ("windows.bulk", "always"),
            ("windows.holidays", "2026-12-25\r\n2026-12-31"),
            ("win.0.name", "noche"),
            ("win.0.days", "lun-dom"),
            ("win.0.from", "20:00"),
            ("win.0.to", "23:00"),
            ("win.0.holidays", "1"),
            ("group.0.name", "guardia"),
            ("group.0.phones", "+5491156781234\n011 15-5555-1234"),
            ("group.0.window", "noche"),
            ("group.1.name", "ventas"),
            ("group.1.phones", "1155554321"),
            ("group.1.window", "laboral"),
        ],
    );
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Reglas guardadas"), "{html}");
    assert!(
        html.contains("name=\"win.0.name\" value=\"noche\""),
        "{html}"
    );
    assert!(
        html.contains("name=\"group.1.name\" value=\"ventas\""),
        "{html}"
    );
    let rules = api_rules();
    assert_eq!(rules["windows"]["notifications"], "laboral");
    assert_eq!(
        rules["windows"]["holidays"],
        serde_json::json!(["2026-12-25", "2026-12-31"])
    );
    assert_eq!(
        rules["windows"]["custom"]["noche"],
        serde_json::json!({"days": "lun-dom", "from": "20:00", "to": "23:00", "holidays": true})
    );
    assert_eq!(rules["groups"][0]["window"], "noche");
    assert_eq!(
        rules["groups"][0]["phones"],
        serde_json::json!(["+5491156781234", "011 15-5555-1234"])
    );
    assert_eq!(rules["groups"][1]["name"], "ventas");

    // Removing the group tickets alert is refused, with the reason.
    let (status, _, html) = s.post(
        "/rules",
        &[
            ("windows.notifications", "laboral"),
            ("windows.bulk", "always"),
            ("windows.holidays", "2026-12-25"),
            ("group.0.name", ""),
            ("group.0.phones", "+5491156781234"),
            ("group.0.window", "noche"),
        ],
    );
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("`guardia` is not an operator group"),
        "{html}"
    );
    assert_eq!(api_rules(), rules, "nothing changed");
}

#[test]
fn send_page_offers_whatsapp_within_the_window_and_email_with_a_subject() {
    use hmac::{Hmac, Mac};
    const ACCESS: &str = "EAAG-test-token-0123456789";
    const SECRET: &str = "app-secret-for-tests";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let graph = rt.block_on(fake_graph::FakeGraph::start(ACCESS));
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    // The mail server's port answers nothing: the page's part ends when the mail is queued
    // (delivery over SMTP is tests/email.rs's).
    let conf = format!(
        "token = \"{TOKEN}\"\n[company]\nname = \"Red Sur\"\n\
         [webhooks]\nlisten = \"127.0.0.1:{hook}\"\n\
         [whatsapp]\nphone_number_id = \"{}\"\nwaba_id = \"9876543210\"\n\
         access_token = \"{ACCESS}\"\napp_secret = \"{SECRET}\"\nverify_token = \"v\"\n\
         base_url = \"{}\"\n\
         [[email]]\nname = \"general\"\nareas = [\"todo\"]\nfrom = \"Red Sur <avisos@redsur.com.ar>\"\n\
         host = \"127.0.0.1\"\nport = {}\n",
        fake_graph::PHONE_ID,
        graph.url,
        free_port()
    );
    let d = common::Daemon::start_full(dir.path(), "", &conf, &[]);
    add_user(&d.config, "maria", "operator", "clave-de-maria");
    let s = login(&d.base, "maria", "clave-de-maria");
    let (status, html) = s.get("/send");
    assert_eq!(status, 200);
    for option in [
        "<option value=\"sms\" selected>SMS</option>",
        "<option value=\"whatsapp\">WhatsApp</option>",
        "<option value=\"email\">Email</option>",
        "<label for=\"subject\">",
    ] {
        assert!(html.contains(option), "{option} in {html}");
    }

    // WhatsApp to a number that never wrote: refused with the reason, nothing queued.
    let api_messages = || -> serde_json::Value {
        http()
            .get(format!("{}/api/messages", d.base))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let (status, _, html) = s.post(
        "/send",
        &[
            ("to", "011 15-2345-6789"),
            ("text", "Hola Ana"),
            ("channel", "whatsapp"),
        ],
    );
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("dentro de las 24 horas") && html.contains("nunca escribió por WhatsApp"),
        "{html}"
    );
    assert!(
        html.contains("<option value=\"whatsapp\" selected>"),
        "the choice is kept: {html}"
    );
    assert_eq!(api_messages()["messages"], serde_json::json!([]));

    // The customer writes on WhatsApp: within 24 hours the same send goes, on WhatsApp.
    let body = serde_json::to_vec(&serde_json::json!({"object": "whatsapp_business_account",
        "entry": [{"id": "9876543210", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "5491155550000", "phone_number_id": fake_graph::PHONE_ID},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5491123456789"}],
        "messages": [{"from": "5491123456789", "id": "wamid.IN1", "timestamp": "1764633600",
                      "type": "text", "text": {"body": "Hola, una consulta"}}]}}]}]}))
    .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let r = http()
        .post(format!("http://127.0.0.1:{hook}/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .header("X-Hub-Signature-256", format!("sha256={signature}"))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_until(
        "the inbound WhatsApp message",
        Duration::from_secs(30),
        || {
            api_messages()["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["direction"] == "in")
        },
    );
    let (status, location, html) = s.post(
        "/send",
        &[
            ("to", "011 15-2345-6789"),
            ("text", "Hola Ana, le escribimos por acá"),
            ("channel", "whatsapp"),
        ],
    );
    assert_eq!(status, 303, "{html}");
    wait_until("the text on WhatsApp", Duration::from_secs(30), || {
        graph.with(|g| {
            g.sent.iter().any(|m| {
                m["type"] == "text" && m["text"]["body"] == "Hola Ana, le escribimos por acá"
            })
        })
    });
    let (_, html) = s.get(&location);
    assert!(html.contains("whatsapp"), "{html}");

    // 25 hours later (the customer's message moved back in the database) the window is
    // closed: the reply box is disabled with the reason, a reply and a send are refused.
    {
        let conn = rusqlite::Connection::open(d.db()).unwrap();
        let day_ago = chrono::Utc::now().timestamp_millis() - 25 * 3600 * 1000;
        let n = conn
            .execute(
                "UPDATE messages SET created_at = ?1 WHERE direction = 'in'",
                [day_ago],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let (_, html) = s.get("/conversations/%2B5491123456789");
    assert!(
        html.contains("id=\"reply-submit\" disabled") && html.contains("outside_window_template"),
        "{html}"
    );
    let (status, _, html) = s.post(
        "/conversations/%2B5491123456789/reply",
        &[("text", "¿Sigue ahí?")],
    );
    assert_eq!(status, 422, "{html}");
    let (status, _, html) = s.post(
        "/send",
        &[
            ("to", "011 15-2345-6789"),
            ("text", "¿Sigue ahí?"),
            ("channel", "whatsapp"),
        ],
    );
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("último mensaje:"), "{html}");

    // Email: address, subject and text through POST /api/messages; a missing subject is
    // refused by field.
    let (status, _, html) = s.post(
        "/send",
        &[
            ("to", "ana@example.com"),
            ("text", "Su factura está disponible."),
            ("channel", "email"),
        ],
    );
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("subject"), "{html}");
    let (status, location, html) = s.post(
        "/send",
        &[
            ("to", "ana@example.com"),
            ("subject", "Factura de diciembre"),
            ("text", "Su factura está disponible."),
            ("channel", "email"),
        ],
    );
    assert_eq!(status, 303, "{html}");
    let id = location.trim_start_matches("/messages/");
    let m: serde_json::Value = http()
        .get(format!("{}/api/messages/{id}", d.base))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(m["channel"], "email", "{m}");
    assert_eq!(m["peer"], "ana@example.com", "{m}");
    assert_eq!(m["email"]["subject"], "Factura de diciembre", "{m}");
    let (status, _, html) = s.post(
        "/send",
        &[
            ("to", "ana@example.com"),
            ("subject", "Saldo"),
            ("text", "Su saldo es %deuda%"),
            ("channel", "email"),
        ],
    );
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("text: las %variables%"), "{html}");
}

#[test]
fn messages_cancel_and_resend_tickets_assign_close_reopen_and_the_language_is_kept() {
    let demo = start_demo();
    let s = login(&demo.base, "admin", PASSWORD);
    let api = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut r = http()
            .request(method, format!("{}{path}", demo.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().unwrap())
    };

    // A notice held for a window that opens tomorrow: cancelled from its page, then resent.
    const DAYS: [&str; 7] = ["lun", "mar", "mie", "jue", "vie", "sab", "dom"];
    use chrono::Datelike;
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::America::Argentina::Buenos_Aires)
        .weekday()
        .num_days_from_monday() as usize;
    let window = serde_json::json!({"windows": {"custom": {"manana": {
        "days": DAYS[(today + 1) % 7], "from": "00:00", "to": "24:00", "holidays": true}}}});
    let (status, body) = api(reqwest::Method::PUT, "/api/rules", Some(window));
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(
        reqwest::Method::POST,
        "/api/messages",
        Some(
            serde_json::json!({"to": "011 15-2345-6789", "text": "Aviso de mañana", "window": "manana"}),
        ),
    );
    assert_eq!(
        (status, body["state"].as_str()),
        (202, Some("scheduled")),
        "{body}"
    );
    let id = body["id"].as_i64().unwrap();
    let (_, html) = s.get(&format!("/messages/{id}"));
    assert!(
        html.contains(&format!("action=\"/messages/{id}/cancel\"")),
        "{html}"
    );
    assert!(!html.contains("/resend\""), "nothing to resend yet: {html}");
    let (status, location, _) = s.post(&format!("/messages/{id}/cancel"), &[]);
    assert_eq!(
        (status, location.as_str()),
        (303, format!("/messages/{id}").as_str())
    );
    let (_, m) = api(reqwest::Method::GET, &format!("/api/messages/{id}"), None);
    assert_eq!(m["state"], "cancelled", "{m}");
    let (_, html) = s.get(&format!("/messages/{id}"));
    assert!(
        html.contains(&format!("action=\"/messages/{id}/resend\"")),
        "{html}"
    );
    let (status, _, _) = s.post(&format!("/messages/{id}/resend"), &[]);
    assert_eq!(status, 303);
    let (_, m) = api(reqwest::Method::GET, &format!("/api/messages/{id}"), None);
    assert_ne!(m["state"], "cancelled", "{m}");
    let (status, html) = s.get(&format!("/messages/{id}/cancel"));
    assert_eq!(status, 405, "an action is a POST: {html}");

    // A customer opens a ticket by SMS; the page assigns, closes and reopens it.
    let r = http()
        .post(format!("{}/inbound", demo.sim))
        .json(&serde_json::json!({"from": "+5491123456789", "text": "soporte: sin internet"}))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    wait_until("the ticket", Duration::from_secs(60), || {
        api(reqwest::Method::GET, "/api/tickets", None).1["tickets"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    });
    let ticket = api(reqwest::Method::GET, "/api/tickets", None).1["tickets"][0].clone();
    let tid = ticket["id"].as_i64().unwrap();
    let (_, html) = s.get("/tickets");
    assert!(
        html.contains(&format!("action=\"/tickets/{tid}/assign\"")),
        "{html}"
    );
    assert!(
        html.contains(&format!("action=\"/tickets/{tid}/close\"")),
        "{html}"
    );
    let ticket_now = || api(reqwest::Method::GET, &format!("/api/tickets/{tid}"), None).1;
    let (status, _, _) = s.post(&format!("/tickets/{tid}/assign"), &[("operator", "juan")]);
    assert_eq!(status, 303);
    assert_eq!(ticket_now()["operator"], "juan");
    let (status, _, _) = s.post(&format!("/tickets/{tid}/close"), &[]);
    assert_eq!(status, 303);
    assert_eq!(ticket_now()["state"], "closed");
    let (_, html) = s.get("/tickets?state=closed");
    assert!(
        html.contains(&format!("action=\"/tickets/{tid}/reopen\"")),
        "{html}"
    );
    let (status, _, _) = s.post(&format!("/tickets/{tid}/reopen"), &[]);
    assert_eq!(status, 303);
    assert_eq!(ticket_now()["state"], "open");
    let (status, _, html) = s.post(&format!("/tickets/{tid}/explode"), &[]);
    assert_eq!(status, 404, "{html}");

    // The language switch is kept on the user: a new session opens in English.
    let (status, _, _) = s.post("/lang", &[("lang", "en")]);
    assert_eq!(status, 303);
    let again = login(&demo.base, "admin", PASSWORD);
    let (_, html) = again.get("/tickets");
    assert!(
        html.contains("<h1>Tickets</h1>") && html.contains("lang=\"en\""),
        "{html}"
    );
}

#[test]
fn the_dashboard_lists_open_outages() {
    let demo = start_demo();
    let s = login(&demo.base, "admin", PASSWORD);
    let (_, html) = s.get("/ui/dashboard");
    assert!(!html.contains("data-outage="), "no outage yet");
    // The demo customers have plans, not zones: any customer field names the zone.
    let r = http()
        .post(format!("{}/api/outages", demo.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"zones": ["Fibra 300"], "field": "plan", "eta": "2030-01-01T18:00:00-03:00"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, html) = s.get("/");
    assert_eq!(status, 200);
    assert!(html.contains("Cortes abiertos"), "{html}");
    assert!(html.contains(&format!("data-outage=\"{id}\"")), "{html}");
    assert!(html.contains("plan: Fibra 300"), "{html}");
    let r = http()
        .post(format!("{}/api/outages/{id}/resolve", demo.base))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, html) = s.get("/ui/dashboard");
    assert!(
        !html.contains("data-outage="),
        "resolved outages leave the dashboard"
    );
}
