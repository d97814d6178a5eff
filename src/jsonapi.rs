//! HTTP answers shared by every listener pasarela serves (the admin API and the webhook
//! listener): the JSON error body, body-size limits and strict JSON parsing, and the time
//! format of answers. Knows nothing of the store or of any feature.

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An error answer: `{"error":{"code","message","field"?,"items"?}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable word to branch on: `unauthorized`, `invalid_json`, `invalid_field`,
    /// `not_found`, `conflict`, `payload_too_large`, `internal`…
    #[schema(value_type = String, example = "invalid_field")]
    pub code: &'static str,
    /// What is wrong and how to fix it, for a person.
    pub message: String,
    /// The offending field's path (`messages[3].to`), when one field is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub field: Option<String>,
    /// Per-item problems of a rejected batch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub items: Vec<ItemError>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

/// The JSON of every error answer: `{"error":{…}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope<'a> {
    #[schema(value_type = ErrorBody)]
    pub error: &'a ErrorBody,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(ErrorEnvelope { error: &self.body })).into_response()
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

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A body of at most `limit` bytes, refused before reading when `Content-Length` says it is
/// larger. The error is the 413 answer to give.
pub async fn read_body(request: Request, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| too_large(limit))
}
