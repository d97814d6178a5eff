//! JSON API for outages by zone (`crate::outage`): open, list, show, update, resolve.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;

use super::{ApiError, AppState, JsonBody, rfc3339};

/// Largest resolve body.
const RESOLVE_LIMIT: usize = 64 * 1024;
use crate::outage::{OpenRequest, Origin, OutageError, parse_eta};
use crate::store::outages::Outage;

const SMALL_LIMIT: usize = 64 * 1024;
/// Zones (or nodes) one outage may name.
const MAX_ZONES: usize = 500;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/outages", post(open).get(list))
        .route("/api/outages/{id}", get(get_one))
        .route("/api/outages/{id}/update", post(update))
        .route(
            "/api/outages/{id}/resolve",
            post(resolve).layer(axum::extract::DefaultBodyLimit::max(RESOLVE_LIMIT)),
        )
}

/// These routes in the OpenAPI document (`crate::admin::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(open, list, get_one, update, resolve))]
pub(super) struct Doc;

/// `POST /api/outages` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OpenBody {
    /// Zone names (the customers' `zona`; case and spaces ignored).
    #[serde(default)]
    zones: Option<Vec<String>>,
    /// Shorthand for `"field": "nodo"` with these values.
    #[serde(default)]
    nodes: Option<Vec<String>>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    eta: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    eta: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `open` or `resolved`.
    state: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// An outage as the API shows it.
pub fn outage_json(o: &Outage) -> serde_json::Value {
    serde_json::json!({
        "id": o.id,
        "state": o.state,
        "field": o.field,
        "zones": o.zones,
        "message": o.message,
        "eta": o.eta.map(rfc3339),
        "source": o.source,
        "alert_zone": o.alert_zone,
        "master_ticket": o.master_ticket,
        "started_at": rfc3339(o.created_at),
        "updated_at": rfc3339(o.updated_at),
        "resolved_at": o.resolved_at.map(rfc3339),
        "counts": o.counts,
    })
}

impl From<OutageError> for ApiError {
    fn from(e: OutageError) -> ApiError {
        let message = e.to_string();
        match e {
            OutageError::UnknownField(..) => ApiError::field("field", message),
            OutageError::NoCustomers { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "no_customers", message)
                    .with_field("zones")
            }
            OutageError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            OutageError::AlreadyResolved(_) => {
                ApiError::new(StatusCode::CONFLICT, "already_resolved", message)
            }
            OutageError::Store(s) => s.into(),
        }
    }
}

/// Checks a message: at most 500 characters (it goes into an SMS).
fn check_message(m: &str) -> Result<(), ApiError> {
    if m.chars().count() > 500 {
        return Err(ApiError::field(
            "message",
            "is longer than 500 characters; it goes into every notice",
        ));
    }
    Ok(())
}

/// `POST /api/outages`: `201 {"id", "affected", "notified"}`.
#[utoipa::path(post, path = "/api/outages", tag = "outages", request_body = OpenBody,
    responses(
        (status = 201, description = "`{\"id\",\"affected\",\"notified\"}`", body = serde_json::Value),
        (status = 422, description = "`no_customers`: no customer is in those zones", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn open(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<OpenBody, SMALL_LIMIT>,
) -> Result<impl IntoResponse, ApiError> {
    let (key, field, zones) = match (body.zones, body.nodes) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "nodes",
                "give either zones or nodes, not both",
            ));
        }
        (Some(z), None) => ("zones", body.field.unwrap_or_else(|| "zona".into()), z),
        (None, Some(n)) => {
            if body.field.as_deref().is_some_and(|f| f != "nodo") {
                return Err(ApiError::field(
                    "field",
                    "nodes always match the `nodo` field; use zones with another field",
                ));
            }
            ("nodes", "nodo".to_string(), n)
        }
        (None, None) => {
            return Err(ApiError::field(
                "zones",
                "is missing: name the zones out, like [\"norte\"] (or nodes)",
            ));
        }
    };
    let zones: Vec<String> = zones.iter().map(|z| z.trim().to_string()).collect();
    if zones.is_empty() || zones.len() > MAX_ZONES {
        return Err(ApiError::field(
            key,
            format!("must name 1 to {MAX_ZONES} values"),
        ));
    }
    if let Some(i) = zones.iter().position(|z| z.is_empty()) {
        return Err(ApiError::field(format!("{key}[{i}]"), "is empty"));
    }
    check_message(&body.message)?;
    let eta = body
        .eta
        .as_deref()
        .map(parse_eta)
        .transpose()
        .map_err(|e| ApiError::field("eta", e))?;
    let opened = state
        .rules
        .open_outage(OpenRequest {
            field,
            zones,
            message: body.message.trim().to_string(),
            eta,
            origin: Origin::Api,
        })
        .await
        .map_err(|e| match e {
            // Name the list the caller sent.
            OutageError::NoCustomers { .. } => ApiError::from(e).with_field(key),
            e => e.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "id": opened.id,
            "affected": opened.affected,
            "notified": opened.notified,
        })),
    ))
}

/// Outages, newest first.
#[utoipa::path(get, path = "/api/outages", tag = "outages", params(ListQuery),
    responses((status = 200, description = "`{\"outages\":[`{\"id\",\"state\",\"field\",\"zones\",\"message\",\"eta\",…}`],\"next_before\"}`", body = serde_json::Value)))]
async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(s) = &q.state
        && !["open", "resolved"].contains(&s.as_str())
    {
        return Err(ApiError::field(
            "state",
            format!("`{s}` is not open or resolved"),
        ));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let list = state.rules.outages(q.state, q.before, limit).await?;
    Ok(Json(serde_json::json!({
        "outages": list.iter().map(outage_json).collect::<Vec<_>>(),
        "next_before": if list.len() as u32 == limit { list.last().map(|o| o.id) } else { None },
    })))
}

/// One outage.
#[utoipa::path(get, path = "/api/outages/{id}", tag = "outages", params(("id" = i64, Path, description = "the outage's id")),
    responses(
        (status = 200, description = "`{\"id\",\"state\",\"field\",\"zones\",\"message\",\"eta\",…}`", body = serde_json::Value),
        (status = 404, description = "no such outage", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(outage_json(&state.rules.outage(id).await?)))
}

/// A new message or time estimate, texted to the customers already told.
#[utoipa::path(post, path = "/api/outages/{id}/update", tag = "outages", params(("id" = i64, Path, description = "the outage's id")), request_body = UpdateBody,
    responses(
        (status = 200, description = "`{\"id\",\"state\",\"field\",\"zones\",\"message\",\"eta\",…}`", body = serde_json::Value),
        (status = 404, description = "no such outage", body = crate::jsonapi::ErrorEnvelope),
        (status = 409, description = "`already_resolved`", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<UpdateBody, SMALL_LIMIT>,
) -> Result<impl IntoResponse, ApiError> {
    if body.message.is_none() && body.eta.is_none() {
        return Err(ApiError::field(
            "message",
            "nothing to change: send message and/or eta",
        ));
    }
    if let Some(m) = &body.message {
        check_message(m)?;
    }
    let eta = body
        .eta
        .as_deref()
        .map(parse_eta)
        .transpose()
        .map_err(|e| ApiError::field("eta", e))?;
    let o = state
        .rules
        .update_outage(id, body.message.map(|m| m.trim().to_string()), eta)
        .await?;
    Ok(Json(outage_json(&o)))
}

/// Resolves an outage; the customers told about it are told it is over.
#[utoipa::path(post, path = "/api/outages/{id}/resolve", tag = "outages", params(("id" = i64, Path, description = "the outage's id")),
    request_body(content = Option<ResolveBody>, description = "optional: `{}`, `{\"message\": …}` or nothing"),
    responses(
        (status = 200, description = "`{\"id\",\"state\",\"field\",\"zones\",\"message\",\"eta\",…}`", body = serde_json::Value),
        (status = 404, description = "no such outage", body = crate::jsonapi::ErrorEnvelope),
        (status = 409, description = "`already_resolved`: a second resolve", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // The body is optional: `{}`, `{"message": …}` or nothing.
    let message = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        super::parse_json::<ResolveBody>(&body)?.message
    };
    if let Some(m) = &message {
        check_message(m)?;
    }
    let o = state
        .rules
        .resolve_outage(id, message.map(|m| m.trim().to_string()))
        .await?;
    Ok(Json(outage_json(&o)))
}
