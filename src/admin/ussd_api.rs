//! `POST /api/modems/{name}/ussd`: a USSD session on a modem the daemon owns (what
//! `pasarela ussd` asks while the daemon runs). Body `{"code": "*444#", "replies": ["1", "2"]}`
//! (`replies` optional: menu answers sent in turn in the same session). 200 with the steps
//! ([`crate::modem::ussd::UssdAnswer`]); 400 for a bad code or reply (naming the field), 404
//! for no such modem, 502 when the network refused or ended the session (`ussd_ended`,
//! `ussd_not_supported`, `ussd_refused`), 503 while the modem is down, 504 on no answer.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, JsonBody};
use crate::modem::gsm::GsmTransport;
use crate::modem::ussd::{UssdError, check_request};

const BODY_LIMIT: usize = 16 * 1024;
/// Menu answers one request may carry.
const MAX_REPLIES: usize = 10;

/// This route in the OpenAPI document (`crate::admin::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(ussd))]
pub(super) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/modems/{name}/ussd", post(ussd))
}

/// `POST /api/modems/{name}/ussd` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UssdRequest {
    /// The USSD code: digits, `*` and `#`, ending in `#` (`*444#`).
    pub code: String,
    /// Menu answers, sent in turn in the same session (at most 10).
    #[serde(default)]
    pub replies: Vec<String>,
}

/// What the network answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UssdReply {
    pub modem: String,
    pub code: String,
    /// The last answer's: `done`, or `menu` when the network waits for an answer.
    pub status: crate::modem::ussd::UssdStatus,
    /// The last answer's text, decoded.
    pub text: String,
    /// Each request (the code, then each menu answer) and its answer.
    pub steps: Vec<crate::modem::ussd::UssdStep>,
}

#[utoipa::path(post, path = "/api/modems/{name}/ussd", tag = "modems", request_body = UssdRequest,
    params(("name" = String, Path, description = "the `[[modem]]`'s name")),
    responses(
        (status = 200, description = "the answer, each step decoded", body = UssdReply),
        (status = 404, description = "`not_found`: no `[[modem]]` by that name", body = crate::jsonapi::ErrorEnvelope),
        (status = 502, description = "`ussd_ended`, `ussd_not_supported`, `ussd_refused`: the network ended or refused the session", body = crate::jsonapi::ErrorEnvelope),
        (status = 503, description = "`modem_down`: the modem is not connected", body = crate::jsonapi::ErrorEnvelope),
        (status = 504, description = "`ussd_timeout`: no answer in `ussd_timeout_secs`", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn ussd(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<UssdRequest, BODY_LIMIT>,
) -> Result<Json<UssdReply>, ApiError> {
    check_request(&req.code, true).map_err(|why| ApiError::field("code", why))?;
    if req.replies.len() > MAX_REPLIES {
        return Err(ApiError::field(
            "replies",
            format!("at most {MAX_REPLIES} menu answers"),
        ));
    }
    for (i, r) in req.replies.iter().enumerate() {
        check_request(r, false).map_err(|why| ApiError::field(format!("replies[{i}]"), why))?;
    }
    let modem = state
        .transports
        .iter()
        .filter(|t| t.name() == name)
        .find_map(|t| t.as_any()?.downcast_ref::<GsmTransport>())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no [[modem]] named `{name}`"),
            )
        })?;
    let answer = modem
        .ussd(&req.code, &req.replies)
        .await
        .map_err(api_error)?;
    Ok(Json(UssdReply {
        modem: name,
        code: req.code,
        status: answer.status(),
        text: answer.text().to_string(),
        steps: answer.steps,
    }))
}

fn api_error(e: UssdError) -> ApiError {
    let (status, code) = match &e {
        UssdError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_field"),
        UssdError::Timeout(_) | UssdError::NetworkTimeout => {
            (StatusCode::GATEWAY_TIMEOUT, "ussd_timeout")
        }
        UssdError::Ended(_) => (StatusCode::BAD_GATEWAY, "ussd_ended"),
        UssdError::NotSupported(_) => (StatusCode::BAD_GATEWAY, "ussd_not_supported"),
        UssdError::OtherClient | UssdError::Modem(_) => (StatusCode::BAD_GATEWAY, "ussd_refused"),
        UssdError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "modem_down"),
    };
    ApiError::new(status, code, e.to_string())
}
