//! Email templates of the admin API: subject, text and HTML per document type (`invoice`,
//! `payment`, `ticket_opened`, `ticket_closed`). `GET /api/email/templates` lists the four (the
//! saved one, else the built-in one in the company's language); `GET|PUT|DELETE
//! /api/email/templates/{kind}` reads, saves (checked first: an unknown `%variable%` is a 400
//! naming it and the part, and nothing is saved) or drops one (back to the built-in).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde_json::{Value, json};

use super::{ApiError, AppState, JsonBody};
use crate::transport::email::notice::{DocKind, MailTemplate, check_template, default_template};

const TEMPLATE_LIMIT: usize = 256 * 1024;

pub const KINDS: [DocKind; 4] = [
    DocKind::Invoice,
    DocKind::Payment,
    DocKind::TicketOpened,
    DocKind::TicketClosed,
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/email/templates", get(list))
        .route(
            "/api/email/templates/{kind}",
            get(get_one).put(save).delete(remove),
        )
}

/// These routes in the OpenAPI document (`crate::admin::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, get_one, save, remove))]
pub(super) struct Doc;

fn kind_name(kind: DocKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn parse_kind(raw: &str) -> Result<DocKind, ApiError> {
    serde_json::from_value(Value::String(raw.to_string())).map_err(|_| {
        ApiError::field(
            "kind",
            format!("`{raw}` is not invoice, payment, ticket_opened or ticket_closed"),
        )
    })
}

/// The template mail of `kind` goes out with: the saved one, else the built-in one in the
/// company's language.
pub async fn template_for(
    state: &AppState,
    kind: DocKind,
) -> Result<(MailTemplate, bool), ApiError> {
    let saved = state.store.email_template(kind_name(kind)).await?;
    Ok(match saved {
        Some((subject, text, html)) => (
            MailTemplate {
                subject,
                text,
                html,
            },
            true,
        ),
        None => (default_template(kind, state.rules.company.language), false),
    })
}

fn view(kind: DocKind, t: &MailTemplate, saved: bool) -> Value {
    json!({
        "kind": kind_name(kind),
        "source": if saved { "saved" } else { "default" },
        "subject": t.subject,
        "text": t.text,
        "html": t.html,
    })
}

/// The four templates.
#[utoipa::path(get, path = "/api/email/templates", tag = "email",
    responses((status = 200, description = "`{\"templates\":[…]}`, each `{\"kind\",\"subject\",\"text\",\"html\",\"saved\"}`: the saved template, else the built-in one", body = serde_json::Value)))]
async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for kind in KINDS {
        let (t, saved) = template_for(&state, kind).await?;
        out.push(view(kind, &t, saved));
    }
    Ok(Json(json!({ "templates": out })))
}

/// One document type's template.
#[utoipa::path(get, path = "/api/email/templates/{kind}", tag = "email", params(("kind" = String, Path, description = "`invoice`, `payment`, `ticket_opened` or `ticket_closed`")),
    responses(
        (status = 200, description = "`{\"kind\",\"subject\",\"text\",\"html\",\"saved\"}`: the saved template, else the built-in one", body = serde_json::Value),
        (status = 400, description = "`kind` is not a document type", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn get_one(
    State(state): State<AppState>,
    Path(kind): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let kind = parse_kind(&kind)?;
    let (t, saved) = template_for(&state, kind).await?;
    Ok(Json(view(kind, &t, saved)))
}

/// Saves a template, checked first (an unknown `%variable%` is refused, naming the part).
#[utoipa::path(put, path = "/api/email/templates/{kind}", tag = "email", params(("kind" = String, Path, description = "`invoice`, `payment`, `ticket_opened` or `ticket_closed`")),
    request_body = crate::transport::email::notice::MailTemplate,
    responses(
        (status = 200, description = "`{\"kind\",\"subject\",\"text\",\"html\",\"saved\"}`: the saved template, else the built-in one", body = serde_json::Value),
    ))]
async fn save(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    JsonBody(t): JsonBody<MailTemplate, TEMPLATE_LIMIT>,
) -> Result<Json<Value>, ApiError> {
    let kind = parse_kind(&kind)?;
    if t.subject.trim().is_empty() {
        return Err(ApiError::field("subject", "the subject is empty"));
    }
    if t.text.trim().is_empty() {
        return Err(ApiError::field(
            "text",
            "the text part is empty (it always goes beside the HTML)",
        ));
    }
    let extra = state.rules.extra_fields().await?;
    check_template(kind, &t, &extra).map_err(|(part, e)| ApiError::field(part, e))?;
    state
        .store
        .set_email_template(
            kind_name(kind),
            t.subject.clone(),
            t.text.clone(),
            t.html.clone().filter(|h| !h.trim().is_empty()),
        )
        .await?;
    let (t, saved) = template_for(&state, kind).await?;
    Ok(Json(view(kind, &t, saved)))
}

/// Back to the built-in template.
#[utoipa::path(delete, path = "/api/email/templates/{kind}", tag = "email", params(("kind" = String, Path, description = "`invoice`, `payment`, `ticket_opened` or `ticket_closed`")),
    responses(
        (status = 200, description = "`{\"kind\",\"subject\",\"text\",\"html\",\"saved\"}`: the saved template, else the built-in one", body = serde_json::Value),
        (status = 400, description = "`kind` is not a document type", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn remove(
    State(state): State<AppState>,
    Path(kind): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let kind = parse_kind(&kind)?;
    state.store.delete_email_template(kind_name(kind)).await?;
    let (t, saved) = template_for(&state, kind).await?;
    Ok(Json(view(kind, &t, saved)))
}
