//! The operators' pages on the admin listener: login, dashboard, conversations, messages,
//! send, customers, tickets, rules, channels and system. Server-rendered from askama
//! templates compiled into the binary, one stylesheet and one small script (embedded too),
//! under a strict Content-Security-Policy; nothing is fetched from elsewhere.
//!
//! Pages use a session cookie (see [`auth`]), never the API's bearer token. Every POST needs
//! the session's CSRF token (form field `csrf` or header `X-CSRF-Token`). Whatever the JSON
//! API already checks (sends, previews, rules, tickets), the pages ask the API's own handlers
//! in-process, so a page and `curl` get the same answer.

pub mod accounts;
pub mod auth;
mod campaigns;
pub mod i18n;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tower::ServiceExt;

use crate::admin::AppState;
use crate::store::now_ms;
use crate::store::users::{self, User};
use auth::Throttle;
use i18n::{Lang, Tr};

/// Largest form the pages accept (a customer CSV pasted or chosen as a file).
pub const FORM_LIMIT: usize = 16 * 1024 * 1024;

/// Choices the listener makes for the pages.
#[derive(Debug, Clone, Default)]
pub struct WebOptions {
    /// Mark the session cookie `Secure`: set when the admin listener serves TLS.
    pub secure_cookies: bool,
    /// The daemon's configuration as it started and its admin API's base address: the System
    /// page runs the doctor's checks against them. `None` (a router built without a daemon)
    /// leaves the checks out.
    pub doctor: Option<Arc<(crate::config::Loaded, String)>>,
}

/// What the page handlers share.
#[derive(Clone)]
pub(crate) struct Web {
    pub app: AppState,
    /// The JSON API's routes without the bearer-token check: reached only after the page's
    /// own session and CSRF checks.
    api: Router,
    pub throttle: Arc<Throttle>,
    pub secure: bool,
    pub doctor: Option<Arc<(crate::config::Loaded, String)>>,
}

/// The logged-in user of a request, put there by [`require_session`].
#[derive(Clone)]
pub(crate) struct Ctx {
    pub user: User,
    pub csrf: String,
    pub token_hash: String,
}

impl Ctx {
    pub fn tr(&self) -> Tr {
        Tr {
            lang: Lang::parse(&self.user.lang),
        }
    }

    pub fn admin(&self) -> bool {
        self.user.role == users::Role::Admin
    }
}

/// Builds the pages' router. `api` is the JSON API's router with its state, without the
/// token check.
pub fn router(app: AppState, api: Router, opts: WebOptions) -> Router {
    let web = Web {
        app,
        api,
        throttle: Arc::new(Throttle::default()),
        secure: opts.secure_cookies,
        doctor: opts.doctor,
    };
    let pages =
        pages::routes().route_layer(middleware::from_fn_with_state(web.clone(), require_session));
    Router::new()
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .merge(pages)
        .layer(middleware::from_fn(security_headers))
        .with_state(web)
}

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The Content-Security-Policy of every page: this origin only, no inline script or style,
/// no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The client's address, when the listener records it.
pub(crate) fn peer_addr(request_extensions: &axum::http::Extensions) -> String {
    request_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Finds the session of a request or sends it to `/login`; on POST also checks the CSRF
/// token. Puts a [`Ctx`] into the request.
async fn require_session(State(web): State<Web>, request: Request, next: Next) -> Response {
    let token = auth::cookie(request.headers(), auth::SESSION_COOKIE).map(auth::token_hash);
    let session = match token {
        Some(hash) => {
            let idle_since = now_ms() - auth::IDLE.as_millis() as i64;
            let h = hash.clone();
            match web
                .app
                .store
                .read(move |c| users::session(c, &h, idle_since))
                .await
            {
                Ok(s) => s.map(|s| (hash, s)),
                Err(e) => {
                    log::error!("pages: cannot read a session: {e}");
                    return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
                }
            }
        }
        None => None,
    };
    let Some((token_hash, session)) = session else {
        return to_login(&request);
    };
    let now = now_ms();
    if now - session.last_seen > auth::TOUCH_EVERY_MS {
        let h = token_hash.clone();
        if let Err(e) = web
            .app
            .store
            .write(move |c| users::touch_session(c, &h, now))
            .await
        {
            log::warn!("pages: cannot record a session's activity: {e}");
        }
    }
    let ctx = Ctx {
        user: session.user,
        csrf: session.csrf,
        token_hash,
    };
    let mut request = if request.method() == Method::POST {
        match check_csrf(request, &ctx.csrf).await {
            Ok(r) => r,
            Err(response) => return response,
        }
    } else {
        request
    };
    request.extensions_mut().insert(ctx);
    next.run(request).await
}

fn to_login(request: &Request) -> Response {
    let path = request.uri().path();
    if path.starts_with("/ui/") {
        return (StatusCode::UNAUTHORIZED, "log in at /login").into_response();
    }
    if request.method() == Method::GET {
        let target = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let next: String = serde_urlencoded::to_string([("next", target)]).unwrap_or_default();
        Redirect::to(&format!("/login?{next}")).into_response()
    } else {
        Redirect::to("/login").into_response()
    }
}

/// Passes the request on when its `X-CSRF-Token` header or its form field `csrf` is the
/// session's token; answers 403 otherwise.
async fn check_csrf(request: Request, expected: &str) -> Result<Request, Response> {
    let refuse = || {
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "CSRF check failed: reload the page and try again",
        )
            .into_response()
    };
    if let Some(h) = request.headers().get("x-csrf-token") {
        return if auth::same_secret(h.to_str().unwrap_or(""), expected) {
            Ok(request)
        } else {
            Err(refuse())
        };
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the form is larger than {} MiB", FORM_LIMIT >> 20),
        )
            .into_response()
    })?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let ok = fields
        .iter()
        .any(|(k, v)| k == "csrf" && auth::same_secret(v, expected));
    if !ok {
        return Err(refuse());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

impl Web {
    /// Calls the JSON API in-process; answers its status and JSON body.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let builder = Request::builder().method(method).uri(uri);
        let request = match body {
            Some(v) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string())),
            None => builder.body(Body::empty()),
        };
        let Ok(request) = request else {
            return (
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": {"message": "bad request"}}),
            );
        };
        let response = match self.api.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
            .await
            .unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// A timestamp in the company's time zone, the date as the company's language writes it
    /// (as its messages do): es `05/12/2026 14:30`, en `12/05/2026 14:30`.
    pub fn time(&self, ms: i64) -> String {
        self.time_as(ms, "%H:%M")
    }

    fn time_as(&self, ms: i64, clock: &str) -> String {
        let tz = self.app.rules.windows().tz();
        let date = match self.app.rules.company.language {
            crate::config::Language::Es => "%d/%m/%Y",
            crate::config::Language::En => "%m/%d/%Y",
        };
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| {
                t.with_timezone(&tz)
                    .format(&format!("{date} {clock}"))
                    .to_string()
            })
            .unwrap_or_default()
    }
}

impl Web {
    /// [`Web::time`] with seconds, for a message's state changes: `05/12/2026 14:30:07`.
    pub fn time_secs(&self, ms: i64) -> String {
        self.time_as(ms, "%H:%M:%S")
    }
}

/// The message of an API error answer.
pub(crate) fn api_error(body: &serde_json::Value) -> (String, String) {
    let e = &body["error"];
    (
        e["message"].as_str().unwrap_or("error").to_string(),
        e["field"].as_str().unwrap_or("").to_string(),
    )
}
