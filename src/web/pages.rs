//! The page handlers and the data each template shows.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::auth::{self, LOGIN_COOKIE, SESSION_COOKIE};
use super::i18n::{Lang, Tr};
use super::{Ctx, Web, api_error};
use crate::rules::{Customer, Money};
use crate::store::directory as sql;
use crate::store::{
    Channel, Direction, ListFilter, Message, MessageId, Priority, State as MsgState,
};
use crate::store::{now_ms, overview, users};

pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/", get(dashboard))
        .route("/ui/dashboard", get(dashboard_live))
        .route("/logout", post(logout))
        .route("/lang", post(set_lang))
        .route("/send", get(send_form).post(send))
        .route(
            "/send/bulk",
            post(bulk).layer(axum::extract::DefaultBodyLimit::max(super::FORM_LIMIT)),
        )
        .route("/ui/preview", post(preview))
        .route("/messages", get(messages))
        .route("/messages.csv", get(messages_csv))
        .route("/messages/{id}", get(message))
        .route("/messages/{id}/resend", post(resend))
        .route("/messages/{id}/cancel", post(cancel))
        .route("/conversations", get(conversations))
        .route("/ui/conversations", get(conversations_live))
        .route("/conversations/{peer}", get(conversation))
        .route("/ui/conversations/{peer}", get(conversation_live))
        .route("/conversations/{peer}/reply", post(reply))
        .route("/customers", get(customers))
        .route(
            "/customers/import",
            post(import).layer(axum::extract::DefaultBodyLimit::max(super::FORM_LIMIT)),
        )
        .route("/customers/{code}", get(customer))
        .route("/tickets", get(tickets))
        .route("/tickets/{id}/{action}", post(ticket_action))
        .route("/rules", get(rules_form).post(save_rules))
        .route("/channels", get(channels))
        .route("/channels/test", post(channel_test))
        .route("/system", get(system))
        .route("/system/backup", get(system_backup))
        .route("/system/checks", get(system_checks))
        .route("/system/users", post(user_add))
        .route("/system/users/{name}/password", post(user_passwd))
        .route("/system/users/{name}/remove", post(user_remove))
        .merge(super::campaigns::routes())
}

// ----- common ---------------------------------------------------------------------------------

/// What the layout needs.
pub struct Page {
    pub tr: Tr,
    pub user: String,
    pub admin: bool,
    pub csrf: String,
    pub nav: &'static str,
    pub title: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub(super) fn page(ctx: &Ctx, nav: &'static str, title_key: &str) -> Page {
    let tr = ctx.tr();
    Page {
        tr,
        user: ctx.user.name.clone(),
        admin: ctx.admin(),
        csrf: ctx.csrf.clone(),
        nav,
        title: tr.t(title_key).to_string(),
        notice: None,
        error: None,
    }
}

pub(super) fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => internal(e),
    }
}

pub(super) fn internal(e: impl std::fmt::Display) -> Response {
    log::error!("pages: {e}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see `journalctl -u pasarela`",
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    p: Page,
}

pub(super) fn error_page(ctx: &Ctx, status: StatusCode, message: String) -> Response {
    let mut p = page(ctx, "", "error");
    p.error = Some(message);
    (status, render(&ErrorPage { p })).into_response()
}

fn forbidden(ctx: &Ctx) -> Response {
    error_page(ctx, StatusCode::FORBIDDEN, ctx.tr().t("forbidden").into())
}

pub(super) fn not_found(ctx: &Ctx) -> Response {
    error_page(ctx, StatusCode::NOT_FOUND, ctx.tr().t("not_found").into())
}

pub(super) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A path segment for a phone number or a customer code (`+` and the like escaped).
fn seg(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn who_key(m: &Message, author: Option<&String>) -> &'static str {
    match (m.direction, author, m.priority) {
        (Direction::In, _, _) => "who.customer",
        (_, Some(_), _) => "who.operator",
        (_, None, Priority::Reply) => "who.auto",
        (_, None, Priority::Bulk) => "who.campaign",
        (_, None, Priority::Notification) => "who.notice",
    }
}

/// One message as the lists show it.
pub struct MsgRow {
    pub id: i64,
    pub time: String,
    pub dir: &'static str,
    pub dir_key: &'static str,
    pub channel: &'static str,
    pub peer: String,
    pub peer_url: String,
    pub text: String,
    pub state: &'static str,
    pub who_key: &'static str,
    pub author: Option<String>,
    pub error: Option<String>,
}

async fn rows(web: &Web, messages: Vec<Message>) -> Result<Vec<MsgRow>, Response> {
    let ids: Vec<i64> = messages.iter().map(|m| m.id.0).collect();
    let authors = web
        .app
        .store
        .read(move |c| overview::authors(c, &ids))
        .await
        .map_err(internal)?;
    Ok(messages
        .into_iter()
        .map(|m| {
            let author = authors.get(&m.id.0).cloned();
            MsgRow {
                id: m.id.0,
                time: web.time(m.created_at),
                dir: m.direction.as_str(),
                dir_key: if m.direction == Direction::In {
                    "dir.in"
                } else {
                    "dir.out"
                },
                channel: m.channel.as_str(),
                peer_url: seg(&m.peer),
                who_key: who_key(&m, author.as_ref()),
                author,
                peer: m.peer,
                text: m.body,
                state: m.state.as_str(),
                error: m.last_error,
            }
        })
        .collect())
}

/// Local midnight of today in the company's time zone, as Unix ms.
fn local_midnight(web: &Web, date: Option<chrono::NaiveDate>) -> i64 {
    use chrono::TimeZone;
    let tz = web.app.rules.windows().tz();
    let date = date.unwrap_or_else(|| chrono::Utc::now().with_timezone(&tz).date_naive());
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

// ----- login ----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    tr: Tr,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

fn login_page(
    web: &Web,
    status: StatusCode,
    next: String,
    username: String,
    error: Option<String>,
) -> Response {
    let csrf = match auth::random_hex(16) {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let page = LoginPage {
        tr: Tr { lang: Lang::Es },
        csrf: csrf.clone(),
        next,
        username,
        error,
    };
    let cookie = auth::set_cookie(LOGIN_COOKIE, &csrf, Some(3600), web.secure);
    (status, [(header::SET_COOKIE, cookie)], render(&page)).into_response()
}

pub(super) async fn login_form(State(web): State<Web>, Query(q): Query<NextQuery>) -> Response {
    login_page(
        &web,
        StatusCode::OK,
        q.next.unwrap_or_default(),
        String::new(),
        None,
    )
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// Only a local path is a place to go back to after logging in.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

pub(super) async fn login(
    State(web): State<Web>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Form(form): Form<LoginForm>,
) -> Response {
    let es = Tr { lang: Lang::Es };
    let expected = auth::cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !auth::same_secret(&form.csrf, expected) {
        return login_page(
            &web,
            StatusCode::FORBIDDEN,
            form.next,
            form.username,
            Some(es.t("login.expired").into()),
        );
    }
    let name = form.username.trim().to_string();
    let keys = vec![
        format!("user:{name}"),
        format!("addr:{}", super::peer_addr(&extensions)),
    ];
    if let Some(wait) = web.throttle.locked(&keys) {
        log::warn!("pages: login for `{name}` refused: too many failures");
        return login_page(
            &web,
            StatusCode::TOO_MANY_REQUESTS,
            form.next,
            name,
            Some(format!(
                "{} {}",
                es.t("login.throttled"),
                wait.as_secs().max(1)
            )),
        );
    }
    let lookup = {
        let name = name.clone();
        web.app
            .store
            .read(move |c| users::user_by_name(c, &name))
            .await
    };
    let user = match lookup {
        Ok(u) => u,
        Err(e) => return internal(e),
    };
    let hash = user
        .as_ref()
        .map(|u| u.password.clone())
        .unwrap_or_else(|| auth::dummy_hash().to_string());
    let password = form.password;
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        web.throttle.fail(&keys);
        log::warn!("pages: failed login for `{name}`");
        return login_page(
            &web,
            StatusCode::UNAUTHORIZED,
            form.next,
            name,
            Some(es.t("login.wrong").into()),
        );
    };
    web.throttle.succeed(&keys[0]);
    let (token, csrf) = match (auth::random_hex(32), auth::random_hex(16)) {
        (Ok(t), Ok(c)) => (t, c),
        (Err(e), _) | (_, Err(e)) => return internal(e),
    };
    let hash = auth::token_hash(&token);
    let user_id = user.id;
    if let Err(e) = web
        .app
        .store
        .write(move |c| {
            users::purge_sessions(c, now_ms() - auth::IDLE.as_millis() as i64)?;
            users::insert_session(c, &hash, user_id, &csrf, now_ms())
        })
        .await
    {
        return internal(e);
    }
    log::info!("pages: `{}` logged in", user.name);
    let mut response = see_other(safe_next(&form.next));
    let h = response.headers_mut();
    for c in [
        auth::set_cookie(SESSION_COOKIE, &token, None, web.secure),
        auth::set_cookie(LOGIN_COOKIE, "", Some(0), web.secure),
    ] {
        if let Ok(v) = c.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    response
}

async fn logout(State(web): State<Web>, Extension(ctx): Extension<Ctx>) -> Response {
    let hash = ctx.token_hash.clone();
    if let Err(e) = web
        .app
        .store
        .write(move |c| users::delete_session(c, &hash))
        .await
    {
        return internal(e);
    }
    let cookie = auth::set_cookie(SESSION_COOKIE, "", Some(0), web.secure);
    ([(header::SET_COOKIE, cookie)], see_other("/login")).into_response()
}

#[derive(Deserialize)]
struct LangForm {
    lang: String,
}

/// The path of a same-site `Referer`, to go back to after a switch.
fn back(headers: &HeaderMap) -> String {
    let referer = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("/");
    let path = referer
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]))
        .unwrap_or("/");
    safe_next(path).to_string()
}

async fn set_lang(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Form(form): Form<LangForm>,
) -> Response {
    let lang = Lang::parse(&form.lang).code();
    let id = ctx.user.id;
    if let Err(e) = web
        .app
        .store
        .write(move |c| users::set_lang(c, id, lang))
        .await
    {
        return internal(e);
    }
    see_other(&back(&headers))
}

// ----- dashboard ------------------------------------------------------------------------------

pub struct RouteRow {
    pub name: String,
    pub channel: String,
    pub up: bool,
    pub detail: String,
    pub facts: String,
}

fn route_rows(web: &Web) -> Vec<RouteRow> {
    web.app
        .transports
        .iter()
        .map(|t| {
            let h = t.health();
            RouteRow {
                name: t.name().to_string(),
                channel: t.channel().as_str().to_string(),
                up: h.up,
                detail: h.detail,
                facts: t
                    .details()
                    .and_then(|d| serde_json::to_string_pretty(&d).ok())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// An open outage on the dashboard.
pub struct OutageRow {
    pub id: i64,
    /// `zona: norte, sur`.
    pub zones: String,
    pub started: String,
    pub eta: String,
    pub notified: u64,
    pub wrote: u64,
    pub replies: u64,
}

pub struct DashData {
    pub outages: Vec<OutageRow>,
    pub routes: Vec<RouteRow>,
    pub queue: Vec<(&'static str, u64)>,
    /// Channel, in, out.
    pub today: Vec<(String, u64, u64)>,
    pub failures: Vec<MsgRow>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    p: Page,
    outages: Vec<OutageRow>,
    routes: Vec<RouteRow>,
    queue: Vec<(&'static str, u64)>,
    today: Vec<(String, u64, u64)>,
    failures: Vec<MsgRow>,
}

#[derive(Template)]
#[template(path = "dash_live.html")]
struct DashLive {
    p: Page,
    outages: Vec<OutageRow>,
    routes: Vec<RouteRow>,
    queue: Vec<(&'static str, u64)>,
    today: Vec<(String, u64, u64)>,
    failures: Vec<MsgRow>,
}

async fn dash_data(web: &Web) -> Result<DashData, Response> {
    let states = vec![
        MsgState::Scheduled,
        MsgState::Queued,
        MsgState::Sending,
        MsgState::Failed,
    ];
    let counts = web
        .app
        .store
        .count_by_state(states.clone())
        .await
        .map_err(internal)?;
    let queue = states
        .iter()
        .map(|s| {
            let n = counts.iter().find(|(st, _)| st == s).map_or(0, |(_, n)| *n);
            (s.as_str(), n)
        })
        .collect();
    let since = local_midnight(web, None);
    let traffic = web
        .app
        .store
        .read(move |c| overview::traffic_since(c, since))
        .await
        .map_err(internal)?;
    let mut today: Vec<(String, u64, u64)> = Vec::new();
    for t in traffic {
        let i = match today.iter().position(|r| r.0 == t.channel) {
            Some(i) => i,
            None => {
                today.push((t.channel.clone(), 0, 0));
                today.len() - 1
            }
        };
        if t.direction == "in" {
            today[i].1 += t.count;
        } else {
            today[i].2 += t.count;
        }
    }
    let failed = web
        .app
        .store
        .list(ListFilter {
            state: Some(MsgState::Failed),
            limit: 5,
            ..Default::default()
        })
        .await
        .map_err(internal)?;
    let open = web
        .app
        .rules
        .outages(Some("open".into()), None, 50)
        .await
        .map_err(internal)?;
    let outages = open
        .into_iter()
        .map(|o| OutageRow {
            id: o.id,
            zones: format!("{}: {}", o.field, o.zones.join(", ")),
            started: web.time(o.created_at),
            eta: o.eta.map(|t| web.time(t)).unwrap_or_else(|| "—".into()),
            notified: o.counts.notified,
            wrote: o.counts.wrote,
            replies: o.counts.replies,
        })
        .collect();
    Ok(DashData {
        outages,
        routes: route_rows(web),
        queue,
        today,
        failures: rows(web, failed).await?,
    })
}

async fn dashboard(State(web): State<Web>, Extension(ctx): Extension<Ctx>) -> Response {
    match dash_data(&web).await {
        Ok(d) => render(&DashboardPage {
            p: page(&ctx, "dashboard", "nav.dashboard"),
            outages: d.outages,
            routes: d.routes,
            queue: d.queue,
            today: d.today,
            failures: d.failures,
        }),
        Err(r) => r,
    }
}

async fn dashboard_live(State(web): State<Web>, Extension(ctx): Extension<Ctx>) -> Response {
    match dash_data(&web).await {
        Ok(d) => render(&DashLive {
            p: page(&ctx, "dashboard", "nav.dashboard"),
            outages: d.outages,
            routes: d.routes,
            queue: d.queue,
            today: d.today,
            failures: d.failures,
        }),
        Err(r) => r,
    }
}

// ----- send -----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "send.html")]
struct SendPage {
    p: Page,
    customers: Vec<(String, String)>,
    /// The `[rules.templates]` texts: (name, text).
    templates: Vec<(String, String)>,
    to: String,
    text: String,
    /// The channels this gateway can send on: `sms`, and `whatsapp` and `email` when
    /// configured; `channel` is the chosen one.
    channels: Vec<&'static str>,
    channel: String,
    /// Email is configured: the subject field shows.
    email: bool,
    subject: String,
    field: String,
    bulk: BulkForm,
    /// A refused bulk send's problems, each naming its line and field.
    problems: Vec<String>,
}

/// Customers as picker entries: (label, first phone).
async fn picker(web: &Web) -> Result<Vec<(String, String)>, Response> {
    let found = web
        .app
        .store
        .read(|c| sql::search_customers(c, "", 500))
        .await
        .map_err(internal)?;
    Ok(found
        .into_iter()
        .filter_map(|c| {
            let phone = c.phones.first()?.clone();
            Some((format!("{} ({})", c.name, c.code), phone))
        })
        .collect())
}

/// The operators' saved texts (`[rules.templates]`, as `GET /api/rules` shows them now).
async fn saved_templates(web: &Web) -> Vec<(String, String)> {
    let (_, rules) = web.call(Method::GET, "/api/rules", None).await;
    rules["templates"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// What a send page shows besides the single-send form.
#[derive(Default)]
struct SendView {
    error: Option<(String, String)>,
    notice: Option<String>,
    bulk: BulkForm,
    problems: Vec<String>,
}

async fn send_page(
    web: &Web,
    ctx: &Ctx,
    status: StatusCode,
    form: SendForm,
    view: SendView,
) -> Response {
    let customers = match picker(web).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let templates = saved_templates(web).await;
    let mut p = page(ctx, "send", "send.title");
    p.notice = view.notice;
    let field = view.error.as_ref().map(|e| e.1.clone()).unwrap_or_default();
    p.error = view.error.map(|e| e.0);
    let mut bulk = view.bulk;
    bulk.password.clear();
    (
        status,
        render(&SendPage {
            p,
            customers,
            templates,
            to: form.to,
            text: form.text,
            channels: send_channels(web),
            email: send_channels(web).contains(&"email"),
            channel: if form.channel.is_empty() {
                "sms".to_string()
            } else {
                form.channel
            },
            subject: form.subject,
            field,
            bulk,
            problems: view.problems,
        }),
    )
        .into_response()
}

#[derive(Deserialize, Default)]
struct SendForm {
    #[serde(default)]
    to: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    channel: String,
    /// Email only.
    #[serde(default)]
    subject: String,
    /// A `[rules.templates]` name: its text when `text` is empty (the picker without script).
    #[serde(default)]
    template: String,
}

async fn send_form(State(web): State<Web>, Extension(ctx): Extension<Ctx>) -> Response {
    send_page(
        &web,
        &ctx,
        StatusCode::OK,
        SendForm::default(),
        SendView::default(),
    )
    .await
}

/// The text of a send: `text`, or the named template's when `text` is empty.
async fn chosen_text(web: &Web, text: &str, template: &str) -> Result<String, (String, String)> {
    if !text.trim().is_empty() || template.is_empty() {
        return Ok(text.to_string());
    }
    saved_templates(web)
        .await
        .into_iter()
        .find(|(name, _)| name == template)
        .map(|(_, t)| t)
        .ok_or_else(|| {
            (
                format!("template: no template named `{template}`"),
                "template".to_string(),
            )
        })
}

/// Fills a text's `%variables%` for the customer with number `to`, through
/// `POST /api/templates/preview`; a text without variables goes as written. Errors name the
/// field: `text` (an unknown variable) or `to` (no single customer has that number).
async fn personalize(web: &Web, text: &str, to: &str) -> Result<String, (String, String)> {
    if crate::rules::template::variables(text).is_empty() {
        return Ok(text.to_string());
    }
    let (status, body) = web
        .call(
            Method::POST,
            "/api/templates/preview",
            Some(serde_json::json!({"template": text, "phone": to, "uses": "customer"})),
        )
        .await;
    if !status.is_success() {
        let (message, field) = api_error(&body);
        let field = match field.as_str() {
            "phone" => "to".to_string(),
            "template" => "text".to_string(),
            _ => field,
        };
        let message = message
            .strip_prefix("phone: ")
            .map(|m| format!("to: {m}"))
            .or_else(|| {
                message
                    .strip_prefix("template: ")
                    .map(|m| format!("text: {m}"))
            })
            .unwrap_or(message);
        return Err((message, field));
    }
    Ok(body["text"].as_str().unwrap_or(text).to_string())
}

/// The channels the send page offers: SMS, and WhatsApp and email when a route of theirs is
/// configured.
fn send_channels(web: &Web) -> Vec<&'static str> {
    let mut out = vec!["sms"];
    for c in [Channel::Whatsapp, Channel::Email] {
        if web.app.transports.iter().any(|t| t.channel() == c) {
            out.push(c.as_str());
        }
    }
    out
}

/// WhatsApp carries free text only within 24 hours of the customer's last WhatsApp message
/// (unless `whatsapp.outside_window_template` carries it): the reason when it cannot go,
/// with the field it concerns. A number that does not parse is left to the API's check.
async fn whatsapp_text_allowed(web: &Web, tr: Tr, to: &str) -> Result<(), (String, String)> {
    let Ok(peer) = web.app.phones.normalize(to) else {
        return Ok(());
    };
    let last = web
        .app
        .store
        .list(ListFilter {
            peer: Some(peer.as_str().to_string()),
            direction: Some(Direction::In),
            channel: Some(Channel::Whatsapp),
            limit: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| (e.to_string(), String::new()))?;
    let at = last.first().map(|m| m.created_at);
    if at.is_some_and(|at| now_ms() < at + crate::transport::whatsapp::WINDOW_MS) {
        return Ok(());
    }
    let fallback = web
        .app
        .whatsapp
        .as_ref()
        .is_some_and(|w| w.outside_window_template.is_some());
    if fallback {
        return Ok(());
    }
    let when = match at {
        Some(at) => format!("{} {}", tr.t("send.wa_last"), web.time(at)),
        None => tr.t("send.wa_never").to_string(),
    };
    Err((
        format!("channel: {} ({when})", tr.t("send.wa_closed")),
        "channel".to_string(),
    ))
}

/// Queues one message through `POST /api/messages` and records the user who sent it.
async fn send_one(
    web: &Web,
    ctx: &Ctx,
    to: &str,
    text: &str,
    channel: &str,
    priority: &str,
) -> Result<i64, (String, String)> {
    let channel = if channel.is_empty() { "sms" } else { channel };
    send_json(
        web,
        ctx,
        serde_json::json!({"to": to, "text": text, "channel": channel, "priority": priority}),
    )
    .await
}

/// Queues one message given as `POST /api/messages`'s body; records who sent it.
async fn send_json(
    web: &Web,
    ctx: &Ctx,
    request: serde_json::Value,
) -> Result<i64, (String, String)> {
    let (status, body) = web.call(Method::POST, "/api/messages", Some(request)).await;
    if !status.is_success() {
        return Err(api_error(&body));
    }
    let id = body["id"].as_i64().unwrap_or_default();
    record_author(web, ctx, id, "message").await;
    Ok(id)
}

/// Records the operator who sent message `id` from a page (`what` names it in the log); a
/// failure to record is logged, the message stays sent.
async fn record_author(web: &Web, ctx: &Ctx, id: i64, what: &str) {
    let user = ctx.user.name.clone();
    if let Err(e) = web
        .app
        .store
        .write(move |c| overview::set_author(c, id, &user))
        .await
    {
        log::warn!("pages: cannot record who sent {what} {id}: {e}");
    }
    log::info!("pages: `{}` sent {what} {id}", ctx.user.name);
}

async fn send(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Form(form): Form<SendForm>,
) -> Response {
    let tr = ctx.tr();
    let result = async {
        let text = chosen_text(&web, &form.text, &form.template).await?;
        let channel = if form.channel.is_empty() {
            "sms"
        } else {
            form.channel.as_str()
        };
        let mut request = serde_json::json!({"to": form.to, "channel": channel,
                                             "priority": "notification"});
        if channel == "email" {
            // Variables are filled from a phone number's customer; an address finds none.
            if !crate::rules::template::variables(&text).is_empty() {
                return Err((
                    format!("text: {}", tr.t("send.email_vars")),
                    "text".to_string(),
                ));
            }
            request["text"] = text.into();
            request["subject"] = form.subject.clone().into();
        } else {
            if channel == "whatsapp" {
                whatsapp_text_allowed(&web, tr, &form.to).await?;
            }
            request["text"] = personalize(&web, &text, &form.to).await?.into();
        }
        send_json(&web, &ctx, request).await
    }
    .await;
    match result {
        Ok(id) => see_other(&format!("/messages/{id}")),
        Err(e) => {
            let view = SendView {
                error: Some(e),
                ..Default::default()
            };
            send_page(&web, &ctx, StatusCode::UNPROCESSABLE_ENTITY, form, view).await
        }
    }
}

#[derive(Deserialize, Default)]
struct BulkForm {
    /// A pasted list, one number a line.
    #[serde(default)]
    numbers: String,
    /// A CSV with a `to` column (or `telefono`, `numero`, `phone`) and optionally `text`.
    #[serde(default)]
    csv: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    template: String,
    #[serde(default)]
    password: String,
}

/// One recipient of a bulk send and where it came from (`numbers` or `csv`, 1-based line).
struct BulkRow {
    /// `send.src_numbers` or `send.src_csv`.
    source: &'static str,
    line: u64,
    to: String,
    text: Option<String>,
}

/// The recipients of a bulk send, or each problem naming its line and field.
fn bulk_rows(tr: Tr, form: &BulkForm) -> Result<Vec<BulkRow>, Vec<String>> {
    let csv_line = |n: u64| format!("{}, {} {n}", tr.t("send.src_csv"), tr.t("send.line"));
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, n) in form.numbers.lines().enumerate() {
        let n = n.trim();
        if !n.is_empty() {
            rows.push(BulkRow {
                source: "send.src_numbers",
                line: i as u64 + 1,
                to: n.to_string(),
                text: None,
            });
        }
    }
    if !form.csv.trim().is_empty() {
        // Browsers post a text area's lines with CRLF, which the csv reader counts as two
        // line ends: LF only, so the lines it names are the file's.
        let text = form.csv.replace("\r\n", "\n");
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers: Vec<String> = match reader.headers() {
            Ok(h) => h
                .iter()
                .map(|h| h.chars().map(crate::rules::text::fold_char).collect())
                .collect(),
            Err(e) => return Err(vec![format!("{}: {e}", csv_line(1))]),
        };
        let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
        let Some(to_col) = col(&["to", "telefono", "numero", "phone", "celular"]) else {
            return Err(vec![format!(
                "{}, to: {}",
                csv_line(1),
                tr.t("send.csv_no_to")
            )]);
        };
        let text_col = col(&["text", "texto", "mensaje"]);
        for record in reader.records() {
            match record {
                Ok(r) => {
                    let line = r.position().map_or(0, |p| p.line());
                    if r.iter().all(str::is_empty) {
                        continue;
                    }
                    let to = r.get(to_col).unwrap_or("").to_string();
                    if to.is_empty() {
                        problems.push(format!("{}, to: {}", csv_line(line), tr.t("send.empty")));
                        continue;
                    }
                    rows.push(BulkRow {
                        source: "send.src_csv",
                        line,
                        to,
                        text: text_col
                            .and_then(|c| r.get(c))
                            .filter(|t| !t.is_empty())
                            .map(str::to_string),
                    });
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    problems.push(format!("{}: {e}", csv_line(line)));
                }
            }
        }
    }
    if rows.is_empty() && problems.is_empty() {
        problems.push(format!("numbers: {}", tr.t("send.no_recipients")));
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

/// Bulk send to a pasted list or a CSV, after the user's password is typed again. Every row
/// is checked first (the text filled in for each customer, then `POST /api/messages/batch`,
/// one transaction): one bad row and nothing is sent, each problem naming its line and field.
async fn bulk(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Form(form): Form<BulkForm>,
) -> Response {
    let tr = ctx.tr();
    let hash = ctx.user.password.clone();
    let password = form.password.clone();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let refuse = |web: Web, ctx: Ctx, form: BulkForm, status, error, problems| async move {
        let view = SendView {
            error: Some(error),
            bulk: form,
            problems,
            ..Default::default()
        };
        send_page(&web, &ctx, status, SendForm::default(), view).await
    };
    if !ok {
        log::warn!(
            "pages: bulk send by `{}` refused: wrong password",
            ctx.user.name
        );
        let e = (
            tr.t("send.bad_password").to_string(),
            "password".to_string(),
        );
        return refuse(web, ctx, form, StatusCode::FORBIDDEN, e, Vec::new()).await;
    }
    let invalid = |n: usize| (format!("{} {n}", tr.t("send.bulk_invalid")), String::new());
    let rows = match bulk_rows(tr, &form) {
        Ok(r) => r,
        Err(problems) => {
            let e = invalid(problems.len());
            return refuse(
                web,
                ctx,
                form,
                StatusCode::UNPROCESSABLE_ENTITY,
                e,
                problems,
            )
            .await;
        }
    };
    let common = match chosen_text(&web, &form.text, &form.template).await {
        Ok(t) => t,
        Err(e) => {
            return refuse(
                web,
                ctx,
                form,
                StatusCode::UNPROCESSABLE_ENTITY,
                e,
                Vec::new(),
            )
            .await;
        }
    };
    let mut problems = Vec::new();
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        let where_ = format!("{}, {} {}", tr.t(row.source), tr.t("send.line"), row.line);
        let text = row.text.clone().unwrap_or_else(|| common.clone());
        if text.trim().is_empty() {
            problems.push(format!("{where_}, text: {}", tr.t("send.no_text")));
            continue;
        }
        // The API's own number check first, so a bad number is named even when the rows'
        // texts are not filled in.
        if let Err(e) = web.app.phones.normalize(&row.to) {
            problems.push(format!("{where_}, to: {e}"));
            continue;
        }
        match personalize(&web, &text, &row.to).await {
            Ok(t) => {
                messages.push(serde_json::json!({"to": row.to, "text": t, "priority": "bulk"}))
            }
            Err((message, _)) => problems.push(format!("{where_}, {message}")),
        }
    }
    if problems.is_empty() {
        let (status, body) = web
            .call(
                Method::POST,
                "/api/messages/batch",
                Some(serde_json::json!({"messages": messages})),
            )
            .await;
        if status.is_success() {
            let ids: Vec<i64> = body["ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_i64())
                .collect();
            let n = ids.len();
            let user = ctx.user.name.clone();
            if let Err(e) = web
                .app
                .store
                .write(move |c| {
                    for id in ids {
                        overview::set_author(c, id, &user)?;
                    }
                    Ok(())
                })
                .await
            {
                log::warn!("pages: cannot record who sent a bulk send: {e}");
            }
            log::info!("pages: `{}` sent {n} messages in bulk", ctx.user.name);
            let view = SendView {
                notice: Some(format!("{} {n}", tr.t("send.bulk_done"))),
                ..Default::default()
            };
            return send_page(&web, &ctx, StatusCode::OK, SendForm::default(), view).await;
        }
        let items = body["error"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if items.is_empty() {
            let e = api_error(&body);
            return refuse(
                web,
                ctx,
                form,
                StatusCode::UNPROCESSABLE_ENTITY,
                e,
                Vec::new(),
            )
            .await;
        }
        for item in items {
            let Some(row) = item["index"].as_u64().and_then(|i| rows.get(i as usize)) else {
                continue;
            };
            let field = item["field"].as_str().unwrap_or("");
            let field = field.rsplit('.').next().unwrap_or(field);
            problems.push(format!(
                "{}, {} {}, {}: {}",
                tr.t(row.source),
                tr.t("send.line"),
                row.line,
                field,
                item["message"].as_str().unwrap_or("")
            ));
        }
    }
    let e = invalid(problems.len());
    refuse(
        web,
        ctx,
        form,
        StatusCode::UNPROCESSABLE_ENTITY,
        e,
        problems,
    )
    .await
}

/// `POST /ui/preview`: `POST /api/templates/preview` for the pages' counters.
async fn preview(State(web): State<Web>, body: axum::body::Bytes) -> Response {
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": {"message": e.to_string()}})),
            )
                .into_response();
        }
    };
    let (status, answer) = web
        .call(Method::POST, "/api/templates/preview", Some(value))
        .await;
    (status, Json(answer)).into_response()
}

// ----- messages -------------------------------------------------------------------------------

#[derive(Deserialize, Default, serde::Serialize)]
struct MsgFilter {
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    direction: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    origin: String,
    #[serde(default)]
    q: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    cursor: String,
}

fn bad(field: &str, value: &str) -> String {
    format!("{field}: `{value}` is not a valid value")
}

fn to_list_filter(web: &Web, f: &MsgFilter, limit: u32) -> Result<ListFilter, String> {
    fn opt<T>(field: &str, v: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>, String> {
        if v.is_empty() {
            Ok(None)
        } else {
            parse(v).map(Some).ok_or_else(|| bad(field, v))
        }
    }
    let date = |field: &str, v: &str| -> Result<Option<chrono::NaiveDate>, String> {
        if v.is_empty() {
            Ok(None)
        } else {
            chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map(Some)
                .map_err(|_| bad(field, v))
        }
    };
    let since = date("since", &f.since)?.map(|d| local_midnight(web, Some(d)));
    let until = date("until", &f.until)?
        .and_then(|d| d.succ_opt())
        .map(|d| local_midnight(web, Some(d)));
    let manual = match f.origin.as_str() {
        "" => None,
        "manual" => Some(true),
        "auto" => Some(false),
        other => return Err(bad("origin", other)),
    };
    let before = if f.cursor.is_empty() {
        None
    } else {
        Some(MessageId(
            f.cursor.parse().map_err(|_| bad("cursor", &f.cursor))?,
        ))
    };
    Ok(ListFilter {
        direction: opt("direction", &f.direction, Direction::parse)?,
        state: opt("state", &f.state, MsgState::parse)?,
        channel: opt("channel", &f.channel, Channel::parse)?,
        peer: None,
        q: Some(f.q.trim().to_string()).filter(|q| !q.is_empty()),
        since,
        until,
        manual,
        before,
        limit,
    })
}

#[derive(Template)]
#[template(path = "messages.html")]
struct MessagesPage {
    p: Page,
    f: MsgFilter,
    channels: Vec<(&'static str, bool)>,
    states: Vec<(&'static str, bool)>,
    rows: Vec<MsgRow>,
    query: String,
    next: Option<String>,
}

const PAGE_SIZE: u32 = 50;

async fn messages(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Query(f): Query<MsgFilter>,
) -> Response {
    let mut p = page(&ctx, "messages", "msg.title");
    let (found, status) = match to_list_filter(&web, &f, PAGE_SIZE + 1) {
        Ok(filter) => match web.app.store.list(filter).await {
            Ok(rows) => (rows, StatusCode::OK),
            Err(e) => return internal(e),
        },
        Err(e) => {
            p.error = Some(e);
            (Vec::new(), StatusCode::BAD_REQUEST)
        }
    };
    let mut found = found;
    let next = if found.len() > PAGE_SIZE as usize {
        found.truncate(PAGE_SIZE as usize);
        let mut n = MsgFilter {
            cursor: found.last().map(|m| m.id.0.to_string()).unwrap_or_default(),
            ..f_clone(&f)
        };
        n.cursor = n.cursor.clone();
        serde_urlencoded::to_string(&n).ok()
    } else {
        None
    };
    let rows = match rows(&web, found).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let query = serde_urlencoded::to_string(MsgFilter {
        cursor: String::new(),
        ..f_clone(&f)
    })
    .unwrap_or_default();
    (
        status,
        render(&MessagesPage {
            p,
            channels: Channel::ALL
                .iter()
                .map(|c| (c.as_str(), f.channel == c.as_str()))
                .collect(),
            states: MsgState::ALL
                .iter()
                .map(|s| (s.as_str(), f.state == s.as_str()))
                .collect(),
            f,
            rows,
            query,
            next,
        }),
    )
        .into_response()
}

fn f_clone(f: &MsgFilter) -> MsgFilter {
    MsgFilter {
        since: f.since.clone(),
        until: f.until.clone(),
        direction: f.direction.clone(),
        channel: f.channel.clone(),
        state: f.state.clone(),
        origin: f.origin.clone(),
        q: f.q.clone(),
        cursor: f.cursor.clone(),
    }
}

/// Most rows one CSV export holds.
const CSV_MAX: usize = 100_000;

async fn messages_csv(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Query(f): Query<MsgFilter>,
) -> Response {
    let mut filter = match to_list_filter(&web, &f, 1000) {
        Ok(filter) => filter,
        Err(e) => return error_page(&ctx, StatusCode::BAD_REQUEST, e),
    };
    let mut out = csv::Writer::from_writer(Vec::new());
    let _ = out.write_record([
        "id",
        "created_at",
        "direction",
        "channel",
        "number",
        "text",
        "state",
        "route",
        "error",
        "sent_at",
        "delivered_at",
    ]);
    let mut written = 0;
    loop {
        let batch = match web.app.store.list(filter.clone()).await {
            Ok(b) => b,
            Err(e) => return internal(e),
        };
        let last = batch.last().map(|m| m.id);
        let n = batch.len();
        for m in batch {
            let t = |v: Option<i64>| v.map(crate::admin::rfc3339).unwrap_or_default();
            let _ = out.write_record([
                m.id.0.to_string(),
                crate::admin::rfc3339(m.created_at),
                m.direction.to_string(),
                m.channel.to_string(),
                m.peer,
                m.body,
                m.state.to_string(),
                m.transport.unwrap_or_default(),
                m.last_error.unwrap_or_default(),
                t(m.sent_at),
                t(m.delivered_at),
            ]);
        }
        written += n;
        if n < filter.limit as usize || written >= CSV_MAX {
            break;
        }
        filter.before = last;
    }
    let bytes = out.into_inner().unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"mensajes.csv\"",
            ),
        ],
        bytes,
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    p: Page,
    m: MsgRow,
    route: String,
    attempts: u32,
    times: Vec<(&'static str, String)>,
    parts: String,
    can_resend: bool,
    can_cancel: bool,
    /// Every state it went through: (time, state, route, error).
    log: Vec<(String, &'static str, String, String)>,
}

fn parse_id(raw: &str) -> Option<MessageId> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).map(MessageId)
}

async fn message(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return not_found(&ctx);
    };
    let m = match web.app.store.get(id).await {
        Ok(m) => m,
        Err(crate::store::StoreError::NotFound(_)) => return not_found(&ctx),
        Err(e) => return internal(e),
    };
    let parts = match web.app.store.parts_sent(id).await {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let log = match web
        .app
        .store
        .read(move |c| overview::state_changes(c, id.0))
        .await
    {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let log = log
        .into_iter()
        .map(|s| {
            (
                web.time_secs(s.at),
                MsgState::parse(&s.state).map_or("?", |st| st.as_str()),
                s.transport.unwrap_or_default(),
                s.error.unwrap_or_default(),
            )
        })
        .collect();
    let mut times = vec![("msg.created", web.time(m.created_at))];
    if let Some(t) = m.sent_at {
        times.push(("msg.sent", web.time(t)));
    }
    if let Some(t) = m.delivered_at {
        times.push(("msg.delivered", web.time(t)));
    }
    times.push(("msg.updated", web.time(m.updated_at)));
    let route = m.transport.clone().unwrap_or_else(|| "—".into());
    let attempts = m.attempts;
    let out = m.direction == Direction::Out;
    let can_resend = out
        && matches!(
            m.state,
            MsgState::Failed
                | MsgState::Cancelled
                | MsgState::Delivered
                | MsgState::Read
                | MsgState::Sent
        );
    let can_cancel = out && matches!(m.state, MsgState::Queued | MsgState::Scheduled);
    let mut rows = match rows(&web, vec![m]).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(row) = rows.pop() else {
        return not_found(&ctx);
    };
    let mut p = page(&ctx, "messages", "msg.title");
    p.title = format!("{} {}", p.title, row.id);
    render(&MessagePage {
        p,
        m: row,
        route,
        attempts,
        times,
        parts: if parts.is_empty() {
            "—".into()
        } else {
            parts
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
        can_resend,
        can_cancel,
        log,
    })
}

async fn message_action(web: &Web, ctx: &Ctx, id: &str, action: &str) -> Response {
    let Some(id) = parse_id(id) else {
        return not_found(ctx);
    };
    let (status, body) = web
        .call(Method::POST, &format!("/api/messages/{id}/{action}"), None)
        .await;
    if status.is_success() {
        log::info!("pages: `{}` did {action} on message {id}", ctx.user.name);
        see_other(&format!("/messages/{id}"))
    } else {
        error_page(ctx, status, api_error(&body).0)
    }
}

async fn resend(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    message_action(&web, &ctx, &id, "resend").await
}

async fn cancel(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    message_action(&web, &ctx, &id, "cancel").await
}

// ----- conversations --------------------------------------------------------------------------

pub struct ThreadRow {
    pub peer: String,
    pub peer_url: String,
    pub title: String,
    pub time: String,
    pub last: String,
    pub unread: bool,
    /// The campaign this number's newest inbound message answers (within its reply days).
    pub campaign: Option<String>,
}

#[derive(Template)]
#[template(path = "conversations.html")]
struct ConversationsPage {
    p: Page,
    threads: Vec<ThreadRow>,
}

#[derive(Template)]
#[template(path = "threads.html")]
struct ThreadsLive {
    p: Page,
    threads: Vec<ThreadRow>,
}

async fn thread_rows(web: &Web) -> Result<Vec<ThreadRow>, Response> {
    let threads = web
        .app
        .store
        .read(|c| {
            let threads = overview::threads(c, 100)?;
            let mut out = Vec::with_capacity(threads.len());
            for t in threads {
                let last = crate::store::messages::get(c, MessageId(t.last_id))?;
                let names: Vec<String> = sql::customers_by_phone(c, &t.peer)?
                    .into_iter()
                    .map(|c| c.name)
                    .collect();
                let campaign = last_reply_campaign(c, &t.peer)?;
                out.push((t, last, names, campaign));
            }
            Ok(out)
        })
        .await
        .map_err(internal)?;
    Ok(threads
        .into_iter()
        .map(|(t, last, names, campaign)| ThreadRow {
            campaign,
            title: if names.is_empty() {
                t.peer.clone()
            } else {
                format!("{} · {}", names.join(", "), t.peer)
            },
            peer_url: seg(&t.peer),
            peer: t.peer,
            time: web.time(last.created_at),
            last: last.body,
            unread: t.unread,
        })
        .collect())
}

/// The name of the campaign whose message the newest inbound one from `peer` answers.
fn last_reply_campaign(
    c: &rusqlite::Connection,
    peer: &str,
) -> Result<Option<String>, crate::store::StoreError> {
    use rusqlite::OptionalExtension;
    let newest_in: Option<i64> = c
        .prepare_cached(
            "SELECT created_at FROM messages WHERE peer = ?1 AND direction = 'in' \
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row([peer], |r| r.get(0))
        .optional()?;
    let Some(at) = newest_in else {
        return Ok(None);
    };
    Ok(crate::store::campaigns::campaign_for_reply(c, peer, at)?.map(|(_, name)| name))
}

async fn conversations(State(web): State<Web>, Extension(ctx): Extension<Ctx>) -> Response {
    match thread_rows(&web).await {
        Ok(threads) => render(&ConversationsPage {
            p: page(&ctx, "conversations", "conv.title"),
            threads,
        }),
        Err(r) => r,
    }
}

async fn conversations_live(State(web): State<Web>, Extension(ctx): Extension<Ctx>) -> Response {
    match thread_rows(&web).await {
        Ok(threads) => render(&ThreadsLive {
            p: page(&ctx, "conversations", "conv.title"),
            threads,
        }),
        Err(r) => r,
    }
}

#[derive(Template)]
#[template(path = "conversation.html")]
struct ConversationPage {
    p: Page,
    peer_url: String,
    rows: Vec<MsgRow>,
    reply: ReplyChannel,
}

/// The channel a reply goes on and, for WhatsApp, the customer's 24-hour window.
pub struct ReplyChannel {
    pub channel: Channel,
    /// WhatsApp only: when the window closes (it is open), or `None` (closed).
    pub open_until: Option<String>,
    /// WhatsApp only: the last message from the customer, as a time.
    pub last_in: Option<String>,
    /// WhatsApp with the window closed: `whatsapp.outside_window_template`'s name, which
    /// carries the text; without it nothing can go but an approved template.
    pub via_template: Option<String>,
}

impl ReplyChannel {
    pub fn whatsapp(&self) -> bool {
        self.channel == Channel::Whatsapp
    }

    /// Free text cannot go at all (WhatsApp, window closed, no fallback template).
    pub fn blocked(&self) -> bool {
        self.whatsapp() && self.open_until.is_none() && self.via_template.is_none()
    }
}

/// The channel the customer last wrote on, and WhatsApp's 24-hour window on it (counted
/// from their last message, as the WhatsApp route counts it).
async fn reply_channel(web: &Web, peer: &str) -> Result<ReplyChannel, Response> {
    let last_in = web
        .app
        .store
        .list(ListFilter {
            peer: Some(peer.to_string()),
            direction: Some(Direction::In),
            limit: 1,
            ..Default::default()
        })
        .await
        .map_err(internal)?;
    let channel = last_in.first().map_or(Channel::Sms, |m| m.channel);
    let mut reply = ReplyChannel {
        channel,
        open_until: None,
        last_in: None,
        via_template: None,
    };
    if channel == Channel::Whatsapp {
        let at = last_in.first().map_or(0, |m| m.created_at);
        let closes = at + crate::transport::whatsapp::WINDOW_MS;
        reply.last_in = Some(web.time(at));
        if now_ms() < closes {
            reply.open_until = Some(web.time(closes));
        } else {
            reply.via_template = web
                .app
                .whatsapp
                .as_ref()
                .and_then(|w| w.outside_window_template.as_ref())
                .map(|t| t.name.clone());
        }
    }
    Ok(reply)
}

#[derive(Template)]
#[template(path = "thread.html")]
struct ThreadLive {
    p: Page,
    rows: Vec<MsgRow>,
}

/// The messages with one number, oldest first; marks the conversation read.
async fn thread(web: &Web, peer: &str) -> Result<Vec<MsgRow>, Response> {
    let mut found = web
        .app
        .store
        .list(ListFilter {
            peer: Some(peer.to_string()),
            limit: 200,
            ..Default::default()
        })
        .await
        .map_err(internal)?;
    found.reverse();
    let p = peer.to_string();
    if let Err(e) = web
        .app
        .store
        .write(move |c| overview::mark_read(c, &p))
        .await
    {
        log::warn!("pages: cannot mark a conversation read: {e}");
    }
    rows(web, found).await
}

async fn conversation(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Path(peer): Path<String>,
) -> Response {
    let rows = match thread(&web, &peer).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let names = {
        let peer = peer.clone();
        web.app
            .store
            .read(move |c| sql::customers_by_phone(c, &peer))
            .await
            .map(|found| found.into_iter().map(|c| c.name).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut p = page(&ctx, "conversations", "conv.title");
    p.title = if names.is_empty() {
        peer.clone()
    } else {
        format!("{} · {peer}", names.join(", "))
    };
    let reply = match reply_channel(&web, &peer).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    render(&ConversationPage {
        p,
        peer_url: seg(&peer),
        rows,
        reply,
    })
}

async fn conversation_live(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Path(peer): Path<String>,
) -> Response {
    match thread(&web, &peer).await {
        Ok(rows) => render(&ThreadLive {
            p: page(&ctx, "conversations", "conv.title"),
            rows,
        }),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct ReplyForm {
    text: String,
}

async fn reply(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Path(peer): Path<String>,
    Form(form): Form<ReplyForm>,
) -> Response {
    // Answer on the channel the customer last wrote on; not free text on WhatsApp outside
    // the 24-hour window without a template to carry it.
    let reply = match reply_channel(&web, &peer).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if reply.blocked() {
        return error_page(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            ctx.tr().t("conv.wa_closed").to_string(),
        );
    }
    let channel = reply.channel;
    match send_one(&web, &ctx, &peer, &form.text, channel.as_str(), "reply").await {
        Ok(_) => see_other(&format!("/conversations/{}", seg(&peer))),
        Err((message, _)) => error_page(&ctx, StatusCode::UNPROCESSABLE_ENTITY, message),
    }
}

// ----- customers ------------------------------------------------------------------------------

pub struct CustRow {
    pub code: String,
    pub code_url: String,
    pub name: String,
    pub phones: String,
    pub balance: String,
}

fn cust_row(web: &Web, c: &Customer) -> CustRow {
    CustRow {
        code: c.code.clone(),
        code_url: seg(&c.code),
        name: c.name.clone(),
        phones: c.phones.join(", "),
        balance: c
            .balance
            .map(|b: Money| b.format(web.app.rules.company.language))
            .unwrap_or_default(),
    }
}

pub struct ImportPreview {
    pub good: usize,
    pub sample: Vec<CustRow>,
    /// Line, field, error.
    pub rejected: Vec<(String, String, String)>,
    pub warnings: Vec<String>,
}

#[derive(Template)]
#[template(path = "customers.html")]
struct CustomersPage {
    p: Page,
    q: String,
    total: u64,
    rows: Vec<CustRow>,
    preview: Option<ImportPreview>,
    csv: String,
}

#[derive(Deserialize, Default)]
struct CustQuery {
    #[serde(default)]
    q: String,
}

/// What the customers page shows beside the search results.
#[derive(Default)]
struct CustomersView {
    q: String,
    preview: Option<ImportPreview>,
    csv: String,
    notice: Option<String>,
    error: Option<String>,
}

async fn customers_page(web: &Web, ctx: &Ctx, view: CustomersView, status: StatusCode) -> Response {
    let CustomersView {
        q,
        preview,
        csv,
        notice,
        error,
    } = view;
    let text = q.trim().to_string();
    let found = web
        .app
        .store
        .read(move |c| {
            Ok((
                sql::search_customers(c, &text, 100)?,
                sql::count_customers(c)?,
            ))
        })
        .await;
    let (found, total) = match found {
        Ok(f) => f,
        Err(e) => return internal(e),
    };
    let mut p = page(ctx, "customers", "cust.title");
    p.notice = notice;
    p.error = error;
    (
        status,
        render(&CustomersPage {
            p,
            q,
            total,
            rows: found.iter().map(|c| cust_row(web, c)).collect(),
            preview,
            csv,
        }),
    )
        .into_response()
}

async fn customers(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<CustQuery>,
) -> Response {
    customers_page(
        &web,
        &ctx,
        CustomersView {
            q: q.q,
            ..Default::default()
        },
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
struct ImportForm {
    csv: String,
    #[serde(default)]
    commit: String,
}

/// Without `commit`: parses the CSV and shows its first rows and its errors by line,
/// changing nothing. With `commit=1`: imports the good rows (`POST /api/customers/import`).
async fn import(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Form(mut form): Form<ImportForm>,
) -> Response {
    // A browser posts a text area with CRLF line ends; the CSV reader numbers CRLF lines
    // wrongly (one short per line), so rows are read with LF ends and keep their file's lines.
    form.csv = form.csv.replace("\r\n", "\n");
    if form.commit == "1" {
        let r = crate::directory::import_csv(
            &web.app.store,
            form.csv.into_bytes(),
            web.app.rules.directory_config.clone(),
            web.app.phones.clone(),
        )
        .await;
        return match r {
            Ok(report) => {
                log::info!(
                    "pages: `{}` imported customers: {} inserted, {} updated, {} rejected",
                    ctx.user.name,
                    report.inserted,
                    report.updated,
                    report.rejected.len()
                );
                let tr = ctx.tr();
                let notice = format!(
                    "{} {} {}, {} {}",
                    tr.t("cust.done"),
                    report.inserted,
                    tr.t("cust.inserted"),
                    report.updated,
                    tr.t("cust.updated")
                );
                customers_page(
                    &web,
                    &ctx,
                    CustomersView {
                        notice: Some(notice),
                        ..Default::default()
                    },
                    StatusCode::OK,
                )
                .await
            }
            Err(e) => {
                customers_page(
                    &web,
                    &ctx,
                    CustomersView {
                        error: Some(e.to_string()),
                        ..Default::default()
                    },
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await
            }
        };
    }
    let bytes = form.csv.clone().into_bytes();
    let config = web.app.rules.directory_config.clone();
    let phones = web.app.phones.clone();
    let parsed =
        tokio::task::spawn_blocking(move || crate::directory::parse_csv(&bytes, &config, &phones))
            .await;
    match parsed {
        Ok(Ok((good, rejected, warnings))) => {
            let sample = good
                .iter()
                .take(10)
                .map(|c| CustRow {
                    code: c.code.clone(),
                    code_url: seg(&c.code),
                    name: c.name.clone(),
                    phones: c.phones.join(", "),
                    balance: c
                        .balance
                        .map(|b| b.format(web.app.rules.company.language))
                        .unwrap_or_default(),
                })
                .collect();
            let preview = ImportPreview {
                good: good.len(),
                sample,
                rejected: rejected
                    .into_iter()
                    .map(|r| {
                        (
                            r.line.map(|l| l.to_string()).unwrap_or_default(),
                            r.field.unwrap_or_default(),
                            r.error,
                        )
                    })
                    .collect(),
                warnings,
            };
            customers_page(
                &web,
                &ctx,
                CustomersView {
                    preview: Some(preview),
                    csv: form.csv,
                    ..Default::default()
                },
                StatusCode::OK,
            )
            .await
        }
        Ok(Err(e)) => {
            customers_page(
                &web,
                &ctx,
                CustomersView {
                    csv: form.csv,
                    error: Some(e.0),
                    ..Default::default()
                },
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => internal(e),
    }
}

pub struct TicketRow {
    pub id: i64,
    pub time: String,
    pub peer: String,
    pub peer_url: String,
    pub text: String,
    pub open: bool,
    pub operator: String,
    pub forward: Option<String>,
}

fn ticket_rows(web: &Web, tickets: Vec<sql::Ticket>) -> Vec<TicketRow> {
    tickets
        .into_iter()
        .map(|t| TicketRow {
            id: t.id,
            time: web.time(t.created_at),
            peer_url: seg(&t.peer),
            peer: t.peer,
            text: t.text,
            open: t.state == "open",
            operator: t.operator,
            forward: t.forward_state.map(|s| match t.forward_error {
                Some(e) => format!("{s} ({} × {e})", t.forward_attempts),
                None => s,
            }),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage {
    p: Page,
    c: CustRow,
    phones: Vec<(String, String)>,
    optout: String,
    tickets: Vec<TicketRow>,
    rows: Vec<MsgRow>,
}

async fn customer(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Path(code): Path<String>,
) -> Response {
    let found = {
        let code = code.clone();
        web.app
            .store
            .read(move |c| {
                let Some(customer) = sql::customer_by_code(c, &code)? else {
                    return Ok(None);
                };
                let tickets = sql::list_tickets(c, None, Some(&code), None, 50)?;
                let mut messages = Vec::new();
                for phone in &customer.phones {
                    messages.extend(crate::store::messages::list(
                        c,
                        &ListFilter {
                            peer: Some(phone.clone()),
                            limit: 100,
                            ..Default::default()
                        },
                    )?);
                }
                messages.sort_by_key(|m| m.id);
                Ok(Some((customer, tickets, messages)))
            })
            .await
    };
    let (customer, tickets, messages) = match found {
        Ok(Some(f)) => f,
        Ok(None) => return not_found(&ctx),
        Err(e) => return internal(e),
    };
    let rows = match rows(&web, messages).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let tr = ctx.tr();
    let o = customer.optout;
    let optout = [("SMS", o.sms), ("WhatsApp", o.whatsapp), ("email", o.email)]
        .iter()
        .map(|(k, v)| format!("{k}: {}", if *v { tr.t("yes") } else { tr.t("no") }))
        .collect::<Vec<_>>()
        .join(" · ");
    let mut p = page(&ctx, "customers", "cust.title");
    p.title = format!("{} ({})", customer.name, customer.code);
    render(&CustomerPage {
        p,
        phones: customer
            .phones
            .iter()
            .map(|ph| (ph.clone(), seg(ph)))
            .collect(),
        c: cust_row(&web, &customer),
        optout,
        tickets: ticket_rows(&web, tickets),
        rows,
    })
}

// ----- tickets --------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "tickets.html")]
struct TicketsPage {
    p: Page,
    state: String,
    tickets: Vec<TicketRow>,
}

#[derive(Deserialize, Default)]
struct TicketQuery {
    #[serde(default)]
    state: String,
}

async fn tickets(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<TicketQuery>,
) -> Response {
    let state = match q.state.as_str() {
        "open" | "closed" => Some(q.state.clone()),
        _ => None,
    };
    let found = web
        .app
        .store
        .read(move |c| sql::list_tickets(c, state.as_deref(), None, None, 200))
        .await;
    match found {
        Ok(t) => render(&TicketsPage {
            p: page(&ctx, "tickets", "tick.title"),
            state: q.state,
            tickets: ticket_rows(&web, t),
        }),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct AssignForm {
    #[serde(default)]
    operator: String,
}

async fn ticket_action(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<AssignForm>,
) -> Response {
    let body = match action.as_str() {
        "close" | "reopen" => None,
        "assign" => Some(serde_json::json!({"operator": form.operator})),
        _ => return not_found(&ctx),
    };
    let (status, answer) = web
        .call(Method::POST, &format!("/api/tickets/{id}/{action}"), body)
        .await;
    if status.is_success() {
        log::info!("pages: `{}` did {action} on ticket {id}", ctx.user.name);
        see_other(&back(&headers))
    } else {
        error_page(&ctx, status, api_error(&answer).0)
    }
}

// ----- rules ----------------------------------------------------------------------------------

pub struct RuleSection {
    pub key: &'static str,
    /// Which variables the preview allows (`customer`, `ticket`).
    pub uses: &'static str,
    pub title_key: &'static str,
    pub has_keywords: bool,
    pub keywords: String,
    pub reply: String,
    pub keywords_error: Option<String>,
    pub reply_error: Option<String>,
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesPage {
    p: Page,
    sections: Vec<RuleSection>,
    customers: Vec<(String, String)>,
    sched: ScheduleView,
}

/// A custom delivery window as the form shows it; `error` is (field, message).
#[derive(Default)]
pub struct WindowRow {
    pub name: String,
    pub days: String,
    pub from: String,
    pub to: String,
    pub holidays: bool,
    pub error: Option<(&'static str, String)>,
}

/// An operator group as the form shows it: phones one per line.
#[derive(Default)]
pub struct GroupRow {
    pub name: String,
    pub phones: String,
    pub window: String,
    pub error: Option<(&'static str, String)>,
}

/// `[windows]` and `[[groups]]` as the form shows them, with errors by field.
#[derive(Default)]
pub struct ScheduleView {
    pub notifications: String,
    pub bulk: String,
    /// Days added to the national calendar, one date per line.
    pub holidays: String,
    /// Days taken out of it, one per line; `None` when a form did not carry the field.
    pub not_holidays: Option<String>,
    /// The holidays honoured this year (date, name), computed; shown, not edited.
    pub calendar: Vec<(String, String)>,
    pub windows: Vec<WindowRow>,
    pub groups: Vec<GroupRow>,
    /// Every window name a select offers: `always`, the built-in ones, the custom ones.
    pub names: Vec<String>,
    /// (field: `notifications`, `bulk`, `holidays` or `not_holidays`; message).
    pub errors: Vec<(&'static str, String)>,
}

impl ScheduleView {
    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    /// From `GET /api/rules`'s `windows` and `groups`; one blank row each to add.
    fn from_json(rules: &serde_json::Value) -> ScheduleView {
        let w = &rules["windows"];
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        let lines = |v: &serde_json::Value, sep: &str| {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(sep)
        };
        let windows = w["custom"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, spec)| WindowRow {
                name: name.clone(),
                days: match &spec["days"] {
                    serde_json::Value::String(d) => d.clone(),
                    list => lines(list, ","),
                },
                from: text(&spec["from"]),
                to: text(&spec["to"]),
                holidays: spec["holidays"].as_bool().unwrap_or(false),
                error: None,
            })
            .collect();
        let groups = rules["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| GroupRow {
                name: text(&g["name"]),
                phones: lines(&g["phones"], "\n"),
                window: text(&g["window"]),
                error: None,
            })
            .collect();
        let mut view = ScheduleView {
            notifications: text(&w["notifications"]),
            bulk: text(&w["bulk"]),
            holidays: lines(&w["holidays"], "\n"),
            not_holidays: Some(lines(&w["not_holidays"], "\n")),
            calendar: rules["holidays"]["this_year"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| (text(&h["date"]), text(&h["name"])))
                .collect(),
            windows,
            groups,
            ..Default::default()
        };
        view.finish();
        view
    }

    /// Adds the blank rows and the names the selects offer.
    fn finish(&mut self) {
        self.windows.push(WindowRow::default());
        self.groups.push(GroupRow {
            window: "always".into(),
            ..Default::default()
        });
        self.names = ["always", "laboral", "extendido", "fulltime"]
            .into_iter()
            .map(str::to_string)
            .chain(
                self.windows
                    .iter()
                    .filter(|w| !w.name.is_empty())
                    .map(|w| w.name.clone()),
            )
            .collect();
    }

    /// From the form's fields: `windows.notifications`, `windows.bulk`, `windows.holidays`,
    /// `win.N.name|days|from|to|holidays`, `group.N.name|phones|window`. A row whose name is
    /// empty is left out (that is how one is removed). `None` when the form had no schedule.
    fn from_form(get: &dyn Fn(String) -> Option<String>) -> Option<ScheduleView> {
        let notifications = get("windows.notifications".into())?;
        let mut view = ScheduleView {
            notifications,
            bulk: get("windows.bulk".into()).unwrap_or_default(),
            holidays: get("windows.holidays".into()).unwrap_or_default(),
            not_holidays: get("windows.not_holidays".into()),
            ..Default::default()
        };
        for i in 0.. {
            let Some(name) = get(format!("win.{i}.name")) else {
                break;
            };
            let field = |f: &str| get(format!("win.{i}.{f}")).unwrap_or_default();
            if name.trim().is_empty() {
                continue;
            }
            view.windows.push(WindowRow {
                name: name.trim().to_string(),
                days: field("days"),
                from: field("from"),
                to: field("to"),
                holidays: get(format!("win.{i}.holidays")).is_some(),
                error: None,
            });
        }
        for i in 0.. {
            let Some(name) = get(format!("group.{i}.name")) else {
                break;
            };
            if name.trim().is_empty() {
                continue;
            }
            let field = |f: &str| get(format!("group.{i}.{f}")).unwrap_or_default();
            view.groups.push(GroupRow {
                name: name.trim().to_string(),
                phones: field("phones"),
                window: field("window"),
                error: None,
            });
        }
        Some(view)
    }

    /// The `windows` and `groups` of a `PUT /api/rules` body.
    fn patch(&self, patch: &mut serde_json::Value) {
        let list = |text: &str| -> Vec<String> {
            text.split(['\n', ','])
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let custom: serde_json::Map<String, serde_json::Value> = self
            .windows
            .iter()
            .map(|w| {
                (
                    w.name.clone(),
                    serde_json::json!({"days": w.days.trim(), "from": w.from.trim(),
                                       "to": w.to.trim(), "holidays": w.holidays}),
                )
            })
            .collect();
        patch["windows"] = serde_json::json!({
            "notifications": self.notifications.trim(),
            "bulk": self.bulk.trim(),
            "holidays": list(&self.holidays),
            "custom": custom,
        });
        if let Some(removed) = &self.not_holidays {
            patch["windows"]["not_holidays"] = list(removed).into();
        }
        patch["groups"] = self
            .groups
            .iter()
            .map(|g| {
                serde_json::json!({"name": g.name, "phones": list(&g.phones),
                                   "window": g.window.trim()})
            })
            .collect();
    }

    /// Places an error of `PUT /api/rules` (`windows.*`, `groups.N.*`) beside its field;
    /// `false` when it is not one of this form's.
    fn place(&mut self, field: &str, text: &str) -> bool {
        let text = text.to_string();
        match field {
            "windows.notifications" => self.errors.push(("notifications", text)),
            "windows.bulk" => self.errors.push(("bulk", text)),
            "windows.holidays" => self.errors.push(("holidays", text)),
            "windows.not_holidays" => self.errors.push(("not_holidays", text)),
            _ => {
                if let Some(name) = field.strip_prefix("windows.custom.")
                    && let Some(row) = self.windows.iter_mut().find(|w| w.name == name)
                {
                    let (f, t) = ["days", "from", "to"]
                        .into_iter()
                        .find_map(|f| {
                            text.strip_prefix(&format!("{f}: "))
                                .map(|t| (f, t.to_string()))
                        })
                        .unwrap_or(("name", text));
                    row.error = Some((f, t));
                    return true;
                }
                let Some(rest) = field.strip_prefix("groups.") else {
                    return false;
                };
                let Some((i, f)) = rest.split_once('.') else {
                    return false;
                };
                let (Ok(i), Some(f)) = (
                    i.parse::<usize>(),
                    ["name", "phones", "window"].into_iter().find(|x| *x == f),
                ) else {
                    return false;
                };
                let Some(row) = self.groups.get_mut(i) else {
                    return false;
                };
                row.error = Some((f, text));
            }
        }
        true
    }
}

/// Where a setting is in `[rules]` as JSON: (table, key); an empty table is the top level.
type JsonPath = (&'static str, &'static str);

/// The sections the page edits: (form key, title, keywords JSON path, reply JSON path).
const SECTIONS: &[(&str, &str, Option<JsonPath>, JsonPath)] = &[
    (
        "balance",
        "rules.balance",
        Some(("balance", "keywords")),
        ("balance", "reply"),
    ),
    (
        "ticket",
        "rules.ticket",
        Some(("ticket", "keywords")),
        ("ticket", "reply"),
    ),
    (
        "optout",
        "rules.optout",
        Some(("optout", "stop_keywords")),
        ("optout", "stop_reply"),
    ),
    ("unknown", "rules.unknown", None, ("", "help_reply")),
];

fn at<'a>(v: &'a serde_json::Value, (table, key): (&str, &str)) -> &'a serde_json::Value {
    if table.is_empty() {
        &v[key]
    } else {
        &v[table][key]
    }
}

fn sections_from(rules: &serde_json::Value) -> Vec<RuleSection> {
    SECTIONS
        .iter()
        .map(|(key, title, kw, reply)| RuleSection {
            key,
            uses: if *key == "ticket" {
                "ticket"
            } else {
                "customer"
            },
            title_key: title,
            has_keywords: kw.is_some(),
            keywords: kw
                .map(|k| {
                    at(rules, k)
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            reply: at(rules, *reply).as_str().unwrap_or("").to_string(),
            keywords_error: None,
            reply_error: None,
        })
        .collect()
}

async fn rules_page(
    web: &Web,
    ctx: &Ctx,
    status: StatusCode,
    (sections, sched): (Vec<RuleSection>, ScheduleView),
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let customers = match web
        .app
        .store
        .read(|c| sql::search_customers(c, "", 200))
        .await
    {
        Ok(c) => c
            .into_iter()
            .map(|c| (format!("{} ({})", c.name, c.code), c.code))
            .collect(),
        Err(e) => return internal(e),
    };
    let mut p = page(ctx, "rules", "rules.title");
    p.notice = notice;
    p.error = error;
    (
        status,
        render(&RulesPage {
            p,
            sections,
            customers,
            sched,
        }),
    )
        .into_response()
}

async fn rules_form(State(web): State<Web>, Extension(ctx): Extension<Ctx>) -> Response {
    if !ctx.admin() {
        return forbidden(&ctx);
    }
    let (_, rules) = web.call(Method::GET, "/api/rules", None).await;
    rules_page(
        &web,
        &ctx,
        StatusCode::OK,
        (sections_from(&rules), ScheduleView::from_json(&rules)),
        None,
        None,
    )
    .await
}

/// Saves through `PUT /api/rules` (the same checks); errors are shown beside their field.
async fn save_rules(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if !ctx.admin() {
        return forbidden(&ctx);
    }
    // Only the fields the form sent are changed (PUT /api/rules keeps the others).
    let get = |k: String| {
        form.iter()
            .find(|(f, _)| *f == k)
            .map(|(_, v)| v.replace("\r\n", "\n"))
    };
    let (_, current) = web.call(Method::GET, "/api/rules", None).await;
    let mut sections = sections_from(&current);
    let mut patch = serde_json::json!({});
    for (s, (key, _, kw, reply)) in sections.iter_mut().zip(SECTIONS) {
        if let (Some((table, k)), Some(keywords)) = (kw, get(format!("{key}.keywords"))) {
            let list: Vec<String> = keywords
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            patch[*table][*k] = serde_json::json!(list);
            s.keywords = keywords;
        }
        if let Some(reply_text) = get(format!("{key}.reply")) {
            let value = if reply_text.trim().is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::Value::String(reply_text.clone())
            };
            if reply.0.is_empty() {
                patch[reply.1] = value;
            } else {
                patch[reply.0][reply.1] = value;
            }
            s.reply = reply_text;
        }
    }
    let mut sched = ScheduleView::from_form(&get);
    if let Some(s) = &sched {
        s.patch(&mut patch);
    }
    let (status, body) = web.call(Method::PUT, "/api/rules", Some(patch)).await;
    if status.is_success() {
        log::info!("pages: `{}` saved the rules", ctx.user.name);
        let notice = ctx.tr().t("rules.saved").to_string();
        return rules_page(
            &web,
            &ctx,
            StatusCode::OK,
            (sections_from(&body), ScheduleView::from_json(&body)),
            Some(notice),
            None,
        )
        .await;
    }
    let (message, _) = api_error(&body);
    let mut unplaced = Vec::new();
    for piece in message.split("; ") {
        let (field, text) = piece.split_once(": ").unwrap_or(("", piece));
        let field = field.trim_start_matches("rules.");
        let mut placed = false;
        for (s, (_, _, kw, reply)) in sections.iter_mut().zip(SECTIONS) {
            let path = |(t, k): (&str, &str)| {
                if t.is_empty() {
                    k.to_string()
                } else {
                    format!("{t}.{k}")
                }
            };
            if kw.is_some_and(|k| field.starts_with(&path(k))) {
                s.keywords_error = Some(text.to_string());
                placed = true;
            } else if field == path(*reply) {
                s.reply_error = Some(text.to_string());
                placed = true;
            }
        }
        if !placed && let Some(s) = sched.as_mut() {
            placed = s.place(field, text);
        }
        if !placed {
            unplaced.push(piece.to_string());
        }
    }
    let error = if unplaced.is_empty() {
        None
    } else {
        Some(unplaced.join("; "))
    };
    let sched = match sched {
        Some(mut s) => {
            s.finish();
            s
        }
        None => ScheduleView::from_json(&current),
    };
    rules_page(
        &web,
        &ctx,
        StatusCode::UNPROCESSABLE_ENTITY,
        (sections, sched),
        None,
        error,
    )
    .await
}

// ----- channels and system --------------------------------------------------------------------

#[derive(Template)]
#[template(path = "channels.html")]
struct ChannelsPage {
    p: Page,
    routes: Vec<RouteRow>,
}

async fn channels(State(web): State<Web>, Extension(ctx): Extension<Ctx>) -> Response {
    render(&ChannelsPage {
        p: page(&ctx, "channels", "chan.title"),
        routes: route_rows(&web),
    })
}

#[derive(Deserialize)]
struct ChannelTest {
    channel: String,
    to: String,
}

/// "Send a test": a short text on a route's channel, at once (window `always`), through
/// `POST /api/messages`; its page then shows which route took it and each state.
async fn channel_test(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Form(form): Form<ChannelTest>,
) -> Response {
    let tr = ctx.tr();
    let text = format!("{} {}", tr.t("chan.test_text"), web.time(now_ms()));
    let (status, body) = web
        .call(
            Method::POST,
            "/api/messages",
            Some(
                serde_json::json!({"to": form.to, "text": text, "channel": form.channel,
                                    "priority": "notification", "window": "always"}),
            ),
        )
        .await;
    if !status.is_success() {
        let mut p = page(&ctx, "channels", "chan.title");
        p.error = Some(api_error(&body).0);
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&ChannelsPage {
                p,
                routes: route_rows(&web),
            }),
        )
            .into_response();
    }
    let id = body["id"].as_i64().unwrap_or_default();
    record_author(&web, &ctx, id, "test message").await;
    see_other(&format!("/messages/{id}"))
}

#[derive(Template)]
#[template(path = "system.html")]
struct SystemPage {
    p: Page,
    version: &'static str,
    uptime: u64,
    db_size: String,
    customers: u64,
    users: Vec<(String, String)>,
    /// The doctor's checks when asked for.
    checks: Option<Vec<CheckRow>>,
    /// The user form's field in error, to mark it.
    field: String,
    /// What the add-user form had (name, role), kept after an error.
    new_user: (String, String),
}

/// One of the doctor's checks as the page shows it.
pub struct CheckRow {
    /// `ok`, `fail`, `warn` or `skip` (the row's class).
    pub outcome: &'static str,
    /// The outcome in the user's language.
    pub word: &'static str,
    pub what: String,
    pub fix: String,
}

/// What a System page shows besides the facts.
#[derive(Default)]
struct SystemView {
    checks: Option<Vec<CheckRow>>,
    notice: Option<String>,
    /// (message, field).
    error: Option<(String, String)>,
    new_user: (String, String),
}

async fn system_page(web: &Web, ctx: &Ctx, status: StatusCode, view: SystemView) -> Response {
    let facts = web
        .app
        .store
        .read(|c| {
            Ok((
                overview::database_size(c)?,
                sql::count_customers(c)?,
                users::list_users(c)?,
            ))
        })
        .await;
    let (size, customers, list) = match facts {
        Ok(f) => f,
        Err(e) => return internal(e),
    };
    let wal =
        std::fs::metadata(format!("{}-wal", web.app.store.path().display())).map_or(0, |m| m.len());
    let mut p = page(ctx, "system", "sys.title");
    p.notice = view.notice;
    let field = view.error.as_ref().map(|e| e.1.clone()).unwrap_or_default();
    p.error = view.error.map(|e| e.0);
    let page = SystemPage {
        p,
        version: env!("CARGO_PKG_VERSION"),
        uptime: web.app.started.elapsed().as_secs(),
        db_size: format!("{:.1} MiB", (size + wal) as f64 / 1048576.0),
        customers,
        users: if ctx.admin() {
            list.into_iter()
                .map(|u| (u.name, u.role.to_string()))
                .collect()
        } else {
            Vec::new()
        },
        checks: view.checks,
        field,
        new_user: view.new_user,
    };
    (status, render(&page)).into_response()
}

async fn system(State(web): State<Web>, Extension(ctx): Extension<Ctx>) -> Response {
    system_page(&web, &ctx, StatusCode::OK, SystemView::default()).await
}

/// `GET /system/checks`: the System page with `pasarela doctor`'s checks, run by the daemon
/// itself (its own permissions, its modem state as `GET /api/status` reports it).
async fn system_checks(State(web): State<Web>, Extension(ctx): Extension<Ctx>) -> Response {
    let Some(doctor) = web.doctor.clone() else {
        return not_found(&ctx);
    };
    let (code, status) = web.call(Method::GET, "/api/status", None).await;
    let status = if code.is_success() {
        Ok(status)
    } else {
        Err(format!("GET /api/status answered {code}"))
    };
    let (loaded, base) = &*doctor;
    let checks = crate::doctor::run_in_daemon(loaded, base, status).await;
    log::info!(
        "pages: `{}` ran the doctor's checks ({} failed)",
        ctx.user.name,
        checks.iter().filter(|c| c.failed()).count()
    );
    let tr = ctx.tr();
    let checks = checks
        .into_iter()
        .map(|c| {
            use crate::doctor::Outcome;
            let (outcome, fix) = match c.outcome {
                Outcome::Ok => ("ok", String::new()),
                Outcome::Fail { fix } => ("fail", fix),
                Outcome::Warn { fix } => ("warn", fix),
                Outcome::Skip => ("skip", String::new()),
            };
            let word = tr.t(match outcome {
                "ok" => "chk.ok",
                "fail" => "chk.fail",
                "warn" => "chk.warn",
                _ => "chk.skip",
            });
            CheckRow {
                outcome,
                word,
                what: c.what,
                fix,
            }
        })
        .collect();
    let view = SystemView {
        checks: Some(checks),
        ..Default::default()
    };
    system_page(&web, &ctx, StatusCode::OK, view).await
}

#[derive(Deserialize, Default)]
struct UserForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

/// Answers a user form: back to the System page with a notice, or the error by field.
async fn user_done(
    web: &Web,
    ctx: &Ctx,
    result: Result<String, (String, String)>,
    new_user: (String, String),
) -> Response {
    match result {
        Ok(notice) => {
            let view = SystemView {
                notice: Some(notice),
                ..Default::default()
            };
            system_page(web, ctx, StatusCode::OK, view).await
        }
        Err(error) => {
            let view = SystemView {
                error: Some(error),
                new_user,
                ..Default::default()
            };
            system_page(web, ctx, StatusCode::UNPROCESSABLE_ENTITY, view).await
        }
    }
}

/// `POST /system/users` (admins): adds a user with a role, as `pasarela user add` does.
async fn user_add(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Form(form): Form<UserForm>,
) -> Response {
    if !ctx.admin() {
        return forbidden(&ctx);
    }
    let tr = ctx.tr();
    let result = async {
        let name = form.name.trim();
        auth::check_user_name(name).map_err(|e| (format!("name: {e}"), "name".into()))?;
        let role = users::Role::parse(&form.role).ok_or_else(|| {
            (
                format!("role: `{}` is not admin or operator", form.role),
                "role".to_string(),
            )
        })?;
        auth::check_new_password(&form.password)
            .map_err(|e| (format!("password: {e}"), "password".into()))?;
        super::accounts::add(&web.app.store, name, role, &form.password)
            .await
            .map_err(|e| (format!("name: {e:#}"), "name".to_string()))?;
        log::info!("pages: `{}` added user `{name}` ({role})", ctx.user.name);
        Ok(format!("{} {name}", tr.t("sys.user_added")))
    }
    .await;
    user_done(&web, &ctx, result, (form.name.clone(), form.role.clone())).await
}

/// `POST /system/users/{name}/password` (admins): a new password; the user's sessions end.
async fn user_passwd(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Path(name): Path<String>,
    Form(form): Form<UserForm>,
) -> Response {
    if !ctx.admin() {
        return forbidden(&ctx);
    }
    let tr = ctx.tr();
    let result = async {
        auth::check_new_password(&form.password)
            .map_err(|e| (format!("password: {e}"), format!("password-{name}")))?;
        super::accounts::passwd(&web.app.store, &name, &form.password)
            .await
            .map_err(|e| (format!("{e:#}"), format!("password-{name}")))?;
        log::info!(
            "pages: `{}` changed the password of `{name}`",
            ctx.user.name
        );
        Ok(format!("{} {name}", tr.t("sys.password_changed")))
    }
    .await;
    if result.is_ok() && name == ctx.user.name {
        // Their own sessions ended with the change, this one too.
        return see_other("/login");
    }
    user_done(&web, &ctx, result, Default::default()).await
}

/// `POST /system/users/{name}/remove` (admins): removes a user and ends their sessions; not
/// oneself, not the last admin.
async fn user_remove(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Path(name): Path<String>,
) -> Response {
    if !ctx.admin() {
        return forbidden(&ctx);
    }
    let tr = ctx.tr();
    let result = async {
        if name == ctx.user.name {
            return Err((tr.t("sys.not_yourself").to_string(), String::new()));
        }
        super::accounts::remove(&web.app.store, &name)
            .await
            .map_err(|e| (format!("{e:#}"), String::new()))?;
        log::info!("pages: `{}` removed user `{name}`", ctx.user.name);
        Ok(format!("{} {name}", tr.t("sys.user_removed")))
    }
    .await;
    user_done(&web, &ctx, result, Default::default()).await
}

/// `GET /system/backup` (admins): `GET /api/backup`'s consistent copy, streamed as it is made.
async fn system_backup(State(web): State<Web>, Extension(ctx): Extension<Ctx>) -> Response {
    if !ctx.admin() {
        return forbidden(&ctx);
    }
    let request = match axum::http::Request::builder()
        .method(Method::GET)
        .uri("/api/backup")
        .body(axum::body::Body::empty())
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    use tower::ServiceExt;
    let response = match web.api.clone().oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    log::info!("pages: `{}` downloaded a backup", ctx.user.name);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next("/messages?q=a"), "/messages?q=a");
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next(""), "/");
    }

    #[test]
    fn crlf_from_a_form_keeps_the_rows_line_numbers() {
        let csv = "codigo;nombre;telefono;deuda\r\n2001;Luis Díaz;1133334444;1.000,00\r\n2002;Mal Número;12;10\r\n";
        let phones = crate::config::CompanyConfig::default().phone_context();
        let parse = |text: &str| {
            crate::directory::parse_csv(text.as_bytes(), &Default::default(), &phones).unwrap()
        };
        let (good, bad, _) = parse(&csv.replace("\r\n", "\n"));
        assert_eq!(good.len(), 1);
        assert_eq!(bad[0].line, Some(3), "{bad:?}");
        // What the import route gets from a CRLF file today (left for the directory's owner).
        assert_eq!(parse(csv).1[0].line, Some(2));
    }

    #[test]
    fn numbers_are_escaped_in_paths() {
        assert_eq!(seg("+5491123456789"), "%2B5491123456789");
        assert_eq!(seg("1001"), "1001");
    }
}
