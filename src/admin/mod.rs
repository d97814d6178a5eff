//! The admin HTTP face: the JSON API under `/api/` and the operators' pages (`crate::web`),
//! on one listener.
//!
//! Every route but `GET /api/health` and `GET /api/openapi.json` (and the pages, which have
//! their own login) needs `Authorization: Bearer <token>` (compared in
//! constant time). With no token configured those routes answer 503 saying how to set one.
//! Errors are JSON `{"error":{"code","message","field"?}}`; bodies are size-limited and
//! unknown JSON fields are rejected.

mod api;
mod backup;
pub mod campaigns_api;
pub mod email_api;
pub mod metrics_api;
pub mod openapi;
pub mod outage_api;
mod rules_api;
pub mod ussd_api;
mod whatsapp_api;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::config::{DispatchConfig, Secret};
use crate::dispatch::DispatchHandle;
use crate::phone::PhoneContext;
use crate::store::Store;
use crate::transport::Transport;

pub use crate::jsonapi::{ApiError, ErrorBody, ItemError, JsonBody, parse_json, rfc3339};
pub use api::{MessageView, SendRequest};

/// Everything a request handler may touch: [`AppParts`] behind one `Arc`. Every route of the
/// routers holds its own clone of the state, so a clone is one pointer, not the whole set.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> AppState {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct AppParts {
    pub store: Store,
    pub token: Option<Secret>,
    pub phones: PhoneContext,
    pub dispatch: DispatchHandle,
    pub dispatch_config: DispatchConfig,
    pub transports: Vec<Arc<dyn Transport>>,
    pub started: Instant,
    /// Customers, rules, windows: what the keyword and billing routes need.
    pub rules: crate::inbox::RulesContext,
    /// `[events]`: which channels carry billing events.
    pub events: Arc<crate::config::EventsConfig>,
    /// `[whatsapp]`, for the template registry's sync.
    pub whatsapp: Option<Arc<crate::config::WhatsappConfig>>,
    /// Campaigns: the store, rules and routes they use, and the feeder's wake-up.
    pub campaigns: crate::campaign::Campaigns,
}

/// Builds the router. Serve it with `axum::serve` on a listener bound by the caller.
pub fn router(state: AppState) -> Router {
    router_with(state, crate::web::WebOptions::default())
}

/// The routes answered without the token: health and the OpenAPI document.
pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/api/health", axum::routing::get(api::health))
        .route(
            "/api/openapi.json",
            axum::routing::get(openapi::openapi_json),
        )
}

/// The JSON API's routes behind the token, and `/metrics`, before the token guard.
pub fn protected_routes() -> Router<AppState> {
    api::routes()
        .merge(rules_api::routes())
        .merge(backup::routes())
        .merge(whatsapp_api::routes())
        .merge(email_api::routes())
        .merge(metrics_api::routes())
        .merge(outage_api::routes())
        .merge(campaigns_api::routes())
        .merge(ussd_api::routes())
}

/// [`router`] with the pages' options (a TLS listener marks cookies `Secure`).
pub fn router_with(state: AppState, web: crate::web::WebOptions) -> Router {
    let protected = protected_routes().layer(middleware::from_fn_with_state(
        Arc::new(state.token.clone()),
        require_token,
    ));
    // The pages reach the same handlers in-process, after their own session and CSRF checks.
    // (The backup only for admins: `/system/backup` checks the role.)
    let unguarded = api::routes()
        .merge(rules_api::routes())
        .merge(outage_api::routes())
        .merge(backup::routes())
        .merge(campaigns_api::routes())
        .with_state(state.clone());
    public_routes()
        .merge(protected)
        .with_state(state.clone())
        .merge(crate::web::router(state, unguarded, web))
        .fallback(not_found)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; the API lives under /api/ (see the README)",
    )
}

async fn require_token(
    State(token): State<Arc<Option<Secret>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token.as_ref() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_token_configured",
            "the API is off because no admin token is set: put `token = \"...\"` (16+ characters) \
             or `token_file = \"/etc/pasarela/admin.token\"` under [admin] in the config and restart",
        )
        .into_response();
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match presented {
        Some(candidate) if token.matches(candidate) => next.run(request).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is wrong",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send `Authorization: Bearer <token>` with the admin token from the config",
        )
        .into_response(),
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        use crate::store::StoreError as E;
        match e {
            E::NotFound(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("message {id} not found"),
            ),
            E::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            E::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "pasarela is stopping; try again in a moment",
            ),
            other => ApiError::internal(other),
        }
    }
}
