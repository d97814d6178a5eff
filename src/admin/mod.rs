//! The admin HTTP face: the JSON API under `/api/` and the operators' pages (`crate::web`),
//! on one listener.
//!
//! Every route but `GET /api/health` needs `Authorization: Bearer <token>` (compared in
//! constant time). With no token configured those routes answer 503 saying how to set one.
//! Errors are JSON `{"error":{"code","message","field"?}}`; bodies are size-limited and
//! unknown JSON fields are rejected.

mod api;
mod rules_api;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{DispatchConfig, Secret};
use crate::dispatch::DispatchHandle;
use crate::phone::PhoneContext;
use crate::store::Store;
use crate::transport::Transport;

pub use api::{MessageView, SendRequest, rfc3339};

/// Everything a request handler may touch.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub token: Option<Secret>,
    pub phones: PhoneContext,
    pub dispatch: DispatchHandle,
    pub dispatch_config: DispatchConfig,
    pub transports: Vec<Arc<dyn Transport>>,
    pub started: Instant,
    /// Customers, rules, windows: what the keyword and billing routes need.
    pub rules: crate::inbox::RulesContext,
}

/// Builds the router. Serve it with `axum::serve` on a listener bound by the caller.
pub fn router(state: AppState) -> Router {
    router_with(state, crate::web::WebOptions::default())
}

/// [`router`] with the pages' options (a TLS listener marks cookies `Secure`).
pub fn router_with(state: AppState, web: crate::web::WebOptions) -> Router {
    let protected = api::routes()
        .merge(rules_api::routes())
        .layer(middleware::from_fn_with_state(
            Arc::new(state.token.clone()),
            require_token,
        ));
    // The pages reach the same handlers in-process, after their own session and CSRF checks.
    let unguarded = api::routes()
        .merge(rules_api::routes())
        .with_state(state.clone());
    Router::new()
        .route("/api/health", axum::routing::get(api::health))
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

/// An error answer: `{"error":{"code","message","field"?,"items"?}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Per-item problems of a rejected batch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemError {
    pub index: usize,
    pub field: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                field: None,
                items: Vec::new(),
            },
        }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let field = field.into();
        let message = format!("{field}: {}", message.into());
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message);
        e.body.field = Some(field);
        e
    }

    /// Names the offending field of an error built with [`ApiError::new`].
    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.body.field = Some(field.into());
        self
    }

    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        log::error!("admin API: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see `journalctl -u pasarela`",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Wrapper<'a> {
            error: &'a ErrorBody,
        }
        (self.status, axum::Json(Wrapper { error: &self.body })).into_response()
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

/// A JSON body of at most `LIMIT` bytes, parsed strictly: malformed JSON, wrong types and
/// unknown fields are 400 answers that name the field (`messages[3].to`).
pub struct JsonBody<T, const LIMIT: usize>(pub T);

impl<S, T, const LIMIT: usize> FromRequest<S> for JsonBody<T, LIMIT>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > LIMIT) {
            return Err(too_large(LIMIT));
        }
        let bytes = axum::body::to_bytes(req.into_body(), LIMIT)
            .await
            .map_err(|_| too_large(LIMIT))?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than {} KiB", limit / 1024),
    )
}

/// Strict JSON parse with the failing field's path in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body is empty; send a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        if path.is_empty() || path == "." || inner.is_syntax() || inner.is_eof() {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON for this route: {message}"),
            )
        } else {
            ApiError::field(path, message)
        }
    })
}
