//! A campaign's replies and its report mail: the real binary with an Android phone route (the
//! phone's inbox read by polling) and an `[[email]]` account. A recipient's answer counts as
//! a reply on the campaign and its report, and the conversations inbox names the campaign;
//! when the campaign ends its report is queued as a mail with the CSV attached.

mod common;
use common::users::add_user;
#[path = "common/fake_phone.rs"]
mod fake_phone;

use common::{Daemon, TOKEN, api, free_port, wait_for};
use fake_phone::{FakePhone, PASSWORD, SIGNING_KEY};
use reqwest::Method;
use serde_json::{Value, json};

const UI_PASSWORD: &str = "campaign-ui-password-1";

fn cookie(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| {
            let first = v.to_str().ok()?.split(';').next()?;
            let (k, v) = first.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
        .unwrap_or_else(|| panic!("no cookie {name}"))
}

/// Logs in through the form; the session cookie.
async fn login(base: &str, user: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    let login_cookie = cookie(&page, "pasarela_login");
    let html = page.text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &html[at..at + html[at..].find('"').unwrap()];
    let r = http
        .post(format!("{base}/login"))
        .header("cookie", format!("pasarela_login={login_cookie}"))
        .form(&[
            ("username", user),
            ("password", UI_PASSWORD),
            ("csrf", csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    cookie(&r, "pasarela_session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_linked_and_the_report_is_mailed() {
    let phone = FakePhone::start().await;
    let dir = tempfile::tempdir().unwrap();
    let nowhere = free_port();
    let smtp = free_port();
    let hook = free_port();
    let conf = format!(
        "token = \"{TOKEN}\"\n\
         [windows]\nbulk = \"always\"\n\
         [webhooks]\nlisten = \"127.0.0.1:{hook}\"\n\
         [[android]]\nname = \"phone1\"\nurl = \"{}\"\npassword = \"{PASSWORD}\"\n\
         health_interval_secs = 1\nrequest_timeout_secs = 2\n\
         inbound = \"poll\"\npoll_interval_secs = 1\n\
         webhook_url = \"http://127.0.0.1:{nowhere}/webhooks/android/phone1\"\n\
         signing_key = \"{SIGNING_KEY}\"\n\
         [[email]]\nname = \"correo\"\nareas = [\"todo\"]\n\
         from = \"Cobranzas <cobranzas@fibrasur.com.ar>\"\nhost = \"127.0.0.1\"\nport = {smtp}\n",
        phone.url()
    );
    let d = tokio::task::block_in_place(|| Daemon::start_full(dir.path(), "", &conf, &[]));
    let customers: Vec<Value> = (1..=3)
        .map(|i| {
            json!({"code": format!("A{i}"), "name": format!("Cliente {i}"),
                   "phone": format!("+549114000000{i}"), "balance": 12000, "due_date": "2026-12-01"})
        })
        .collect();
    let (s, b) = api(
        Method::POST,
        format!("{}/api/customers", d.base),
        Some(Value::Array(customers)),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = api(
        Method::POST,
        format!("{}/api/campaigns", d.base),
        Some(json!({
            "name": "Cobranza diciembre",
            "channel": "sms",
            "template": "%nombre%: debe %deuda%. Responda PAGUE si ya pagó.",
            "selection": {"balance_min": "10.000"},
            "report_to": "gerencia@fibrasur.com.ar",
            "reply_days": 3
        })),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let id = b["id"].as_i64().unwrap();
    let (s, b) = api(
        Method::POST,
        format!("{}/api/campaigns/{id}/start", d.base),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    wait_for("the campaign sent", 30, async || {
        phone.with(|i| i.sent.len()) >= 3
    })
    .await;
    let get = |path: String| async move { api(Method::GET, path, None).await.1 };
    wait_for("the campaign done", 30, async || {
        get(format!("{}/api/campaigns/{id}", d.base)).await["state"] == "done"
    })
    .await;

    // The report mail is queued to the address given, with the CSV attached.
    let mails = get(format!("{}/api/messages?channel=email", d.base)).await;
    let mails = mails["messages"].as_array().unwrap();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["peer"], "gerencia@fibrasur.com.ar");
    assert_eq!(
        mails[0]["email"]["subject"],
        "Campaña «Cobranza diciembre» terminada"
    );
    assert!(
        mails[0]["email"]
            .to_string()
            .contains(&format!("campaign-{id}.csv")),
        "{}",
        mails[0]
    );

    // A recipient answers: a reply on the campaign, in its report, and in the inbox.
    phone.receive_sms("text:9001", "+5491140000002", "PAGUE ayer");
    wait_for("the reply counted", 30, async || {
        get(format!("{}/api/campaigns/{id}", d.base)).await["progress"]["replied"] == 1
    })
    .await;
    let csv = common::client()
        .get(format!("{}/api/campaigns/{id}/report.csv", d.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The report shows each message's state now: the phone may have reported it delivered.
    let line = |code: &str, phone: &str, replied: &str| {
        ["sent", "delivered"].iter().any(|state| {
            let want = format!("{code},sms,{phone},{state},,,{replied}");
            csv.lines().any(|l| l == want)
        })
    };
    assert!(line("A2", "+5491140000002", "yes"), "{csv}");
    assert!(line("A1", "+5491140000001", "no"), "{csv}");

    add_user(&d.config, "ana", "operator", UI_PASSWORD);
    let session = login(&d.base, "ana").await;
    let html = reqwest::Client::new()
        .get(format!("{}/conversations", d.base))
        .header("cookie", format!("pasarela_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row = html
        .split("<li")
        .find(|l| l.contains("+5491140000002"))
        .unwrap_or_else(|| panic!("no thread for the reply: {html}"));
    assert!(row.contains("campaña: Cobranza diciembre"), "{row}");
    let other = html
        .split("<li")
        .find(|l| l.contains("+5491140000001"))
        .unwrap();
    assert!(!other.contains("Cobranza diciembre"), "{other}");
}

/// The pages: the create form (its preview without JavaScript, its live preview count, an
/// error naming the field), create, start, the progress view and the list, pause and resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_pages_create_start_and_show_progress() {
    let phone = FakePhone::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let conf = format!(
        "token = \"{TOKEN}\"\n[windows]\nbulk = \"always\"\n\
         [webhooks]\nlisten = \"127.0.0.1:{hook}\"\n\
         [[android]]\nname = \"phone1\"\nurl = \"{}\"\npassword = \"{PASSWORD}\"\n\
         health_interval_secs = 1\nrequest_timeout_secs = 2\n",
        phone.url()
    );
    let d = tokio::task::block_in_place(|| Daemon::start_full(dir.path(), "", &conf, &[]));
    let customers: Vec<Value> = (1..=4)
        .map(|i| {
            json!({"code": format!("P{i}"), "name": format!("Cliente {i}"),
                   "phone": format!("+549114100000{i}"), "balance": 3000 * i, "due_date": "2026-12-01"})
        })
        .collect();
    let (s, _) = api(
        Method::POST,
        format!("{}/api/customers", d.base),
        Some(Value::Array(customers)),
    )
    .await;
    assert_eq!(s, 200);
    add_user(&d.config, "ana", "operator", UI_PASSWORD);
    let session = login(&d.base, "ana").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| {
        http.get(format!("{}{path}", d.base))
            .header("cookie", format!("pasarela_session={session}"))
            .send()
    };
    let html = get("/campaigns/new").await.unwrap().text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = html[at..at + html[at..].find('"').unwrap()].to_string();
    let post = |path: &str, form: Vec<(&'static str, String)>| {
        let mut form = form;
        form.push(("csrf", csrf.clone()));
        http.post(format!("{}{path}", d.base))
            .header("cookie", format!("pasarela_session={session}"))
            .form(&form)
            .send()
    };
    let fields = |extra: &[(&'static str, &str)]| {
        let mut f: Vec<(&'static str, String)> = vec![
            ("name", "Deuda mayor a $ 6.000".into()),
            ("channel", "sms".into()),
            ("template", "%nombre%: debe %deuda%".into()),
            ("balance_min", "6.000,01".into()),
        ];
        f.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        f
    };
    // The live preview count: customers 3 and 4 owe more than $ 6.000.
    let live: Value = post("/ui/campaigns/preview", fields(&[]))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        live["text"]
            .as_str()
            .unwrap()
            .starts_with("2 clientes coinciden · 2 recibirían"),
        "{live}"
    );
    // Without JavaScript: the preview button shows it on the form.
    let r = post("/campaigns", fields(&[("action", "preview")]))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("2 clientes coinciden"));
    // A bad field: the form again, the error naming it, the field marked.
    let r = post(
        "/campaigns",
        fields(&[("rate", "pronto"), ("action", "create")]),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("rate: "), "{html}");
    assert!(html.contains("name=\"rate\" value=\"pronto\" placeholder=\"600/hour\" aria-describedby=\"c-rate-hint\" aria-invalid=\"true\""), "{html}");
    let r = post("/campaigns", fields(&[("action", "create")]))
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let at = r.headers()["location"].to_str().unwrap().to_string();
    let id: i64 = at.trim_start_matches("/campaigns/").parse().unwrap();
    let html = get(&at).await.unwrap().text().await.unwrap();
    assert!(html.contains("borrador"), "{html}");
    assert!(html.contains("id=\"campaign-start\""), "{html}");
    let r = post(&format!("/campaigns/{id}/start"), vec![])
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    wait_for("both sent", 30, async || phone.with(|i| i.sent.len()) >= 2).await;
    wait_for("the view says finished", 30, async || {
        get(&format!("/ui/campaigns/{id}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("terminada")
    })
    .await;
    let html = get(&format!("/campaigns/{id}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The phone may report delivery before the page is read: both count as gone out.
    let row = |label: &str| -> u32 {
        let head = format!("<th scope=\"row\">{label}</th><td>");
        let at = html
            .find(&head)
            .unwrap_or_else(|| panic!("{label}: {html}"))
            + head.len();
        html[at..at + html[at..].find('<').unwrap()]
            .parse()
            .unwrap()
    };
    assert_eq!(row("Enviados") + row("Entregados"), 2, "{html}");
    assert_eq!(
        row("Fallidos") + row("Por enviar") + row("En cola"),
        0,
        "{html}"
    );
    assert!(!html.contains("campaign-cancel"), "{html}");
    let list = get("/campaigns").await.unwrap().text().await.unwrap();
    assert!(
        list.contains(&format!(
            "<a href=\"/campaigns/{id}\">Deuda mayor a $ 6.000</a>"
        )),
        "{list}"
    );
    let csv = get(&format!("/campaigns/{id}/report.csv"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    // Cancel after the end: the error page says why.
    let r = post(&format!("/campaigns/{id}/cancel"), vec![])
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
}
