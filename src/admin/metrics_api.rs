//! `GET /metrics`: the Prometheus exposition ([`crate::metrics`]). On the admin listener it
//! needs the token like the API; on the `[metrics] listen` listener (loopback only) it needs
//! none, so a local Prometheus or its agent scrapes it without holding the admin token.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState};
use crate::metrics::{CONTENT_TYPE, RouteSample, Scrape};

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// This route in the OpenAPI document (`crate::admin::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(metrics))]
pub(super) struct Doc;

/// The router of the `[metrics] listen` listener: `/metrics` and nothing else, no token.
pub fn listener_router(state: AppState) -> Router {
    routes().with_state(state).fallback(|| async {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            "this listener only serves GET /metrics",
        )
    })
}

/// Reads the queue (one indexed query) and each route's health, then renders every figure.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus metrics in OpenMetrics text (see the README's Monitoring)", body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let queue = state.store.queue_breakdown().await?;
    let routes = state
        .transports
        .iter()
        .map(|t| RouteSample::of(t.as_ref()))
        .collect();
    let body = crate::metrics::global().render(&Scrape { queue, routes });
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}
