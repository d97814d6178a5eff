//! WhatsApp routes of the admin API: `GET /api/whatsapp/usage`, the per-day cost counters the
//! webhooks' pricing feeds (by category: marketing, utility, authentication, service); the
//! template registry (`POST /api/whatsapp/templates/sync` from Meta, `GET /api/whatsapp/templates`)
//! with each configured template mapping checked against what Meta approved.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::{ApiError, AppState};
use crate::transport::whatsapp::client::{Template, fetch_templates};
use crate::transport::whatsapp::webhook::CATEGORIES;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/whatsapp/usage", get(usage))
        .route("/api/whatsapp/templates", get(templates))
        .route("/api/whatsapp/templates/sync", axum::routing::post(sync))
}

/// These routes in the OpenAPI document (`crate::admin::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(usage, templates, sync))]
pub(super) struct Doc;

type Stored = Vec<Template>;

async fn stored(state: &AppState) -> Result<Stored, ApiError> {
    Ok(state
        .store
        .read(|c| {
            let mut stmt = c.prepare(
                "SELECT name, language, category, status, components FROM whatsapp_templates \
                 ORDER BY name, language",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    let components: String = r.get(4)?;
                    Ok(Template {
                        name: r.get(0)?,
                        language: r.get(1)?,
                        category: r.get(2)?,
                        status: r.get(3)?,
                        components: serde_json::from_str(&components).unwrap_or_default(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?)
}

/// Each configured mapping checked against the registry, as (key, problem).
fn mapping_problems(state: &AppState, registry: &Stored) -> Vec<serde_json::Value> {
    let mut mappings = Vec::new();
    if let Some(inv) = &state.events.invoice
        && let Some(t) = &inv.whatsapp_template
    {
        mappings.push(("events.invoice.whatsapp_template", t.clone()));
    }
    if let Some(t) = &state.rules.settings().payment.whatsapp_template {
        mappings.push(("rules.payment.whatsapp_template", t.clone()));
    }
    let mut out = Vec::new();
    for (key, m) in mappings {
        let problem = match registry
            .iter()
            .find(|t| t.name == m.name && t.language == m.language)
        {
            None => Some(format!(
                "Meta lists no template `{}` in {}",
                m.name, m.language
            )),
            Some(t) if !t.status.eq_ignore_ascii_case("approved") => Some(format!(
                "template `{}` is {}, not approved",
                m.name, t.status
            )),
            Some(t) if t.body_params() != m.body.len() => Some(format!(
                "template `{}` takes {} body parameters; the mapping gives {}",
                m.name,
                t.body_params(),
                m.body.len()
            )),
            Some(t) if t.document_header() != m.document.is_some() => {
                Some(if m.document.is_some() {
                    format!(
                        "template `{}` has no document header; remove document",
                        m.name
                    )
                } else {
                    format!(
                        "template `{}` needs a document header; set document",
                        m.name
                    )
                })
            }
            Some(_) => None,
        };
        if let Some(p) = problem {
            out.push(serde_json::json!({"key": key, "problem": p}));
        }
    }
    out
}

/// The templates Meta approved (as last synced), and each configured mapping's problems.
#[utoipa::path(get, path = "/api/whatsapp/templates", tag = "whatsapp",
    responses((status = 200, description = "`{\"templates\":[…],\"mapping_problems\":[{\"key\",\"problem\"}]}`", body = serde_json::Value)))]
async fn templates(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let registry = stored(&state).await?;
    let problems = mapping_problems(&state, &registry);
    Ok(Json(
        serde_json::json!({"templates": registry, "mapping_problems": problems}),
    ))
}

/// Fetches the approved templates from Meta now.
#[utoipa::path(post, path = "/api/whatsapp/templates/sync", tag = "whatsapp",
    responses(
        (status = 200, description = "`{\"synced\",\"mapping_problems\"}`", body = serde_json::Value),
        (status = 409, description = "the whatsapp channel is not configured", body = crate::jsonapi::ErrorEnvelope),
        (status = 502, description = "`whatsapp_error`: Meta refused or could not be reached", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn sync(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(cfg) = state.whatsapp.clone() else {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "not_configured",
            "the whatsapp channel is not configured ([whatsapp])",
        ));
    };
    let fail = |m: String| ApiError::new(axum::http::StatusCode::BAD_GATEWAY, "whatsapp_error", m);
    let token = crate::transport::whatsapp::read_token(&cfg).map_err(fail)?;
    let http = crate::net::http::client(
        &crate::net::http::ClientOptions::new(std::time::Duration::from_secs(cfg.timeout_secs))
            .ca_file(cfg.ca_file.as_deref()),
    )
    .map_err(fail)?;
    let list = fetch_templates(&http, &cfg, &token).await.map_err(fail)?;
    let now = crate::model::now_ms();
    let rows = list.clone();
    state
        .store
        .write(move |c| {
            c.execute("DELETE FROM whatsapp_templates", [])?;
            for t in &rows {
                c.execute(
                    "INSERT OR REPLACE INTO whatsapp_templates (name, language, category, status, \
                     components, synced_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![
                        t.name,
                        t.language,
                        t.category,
                        t.status,
                        serde_json::to_string(&t.components).unwrap_or_default(),
                        now
                    ],
                )?;
            }
            Ok(())
        })
        .await?;
    let problems = mapping_problems(&state, &list);
    Ok(Json(
        serde_json::json!({"synced": list.len(), "mapping_problems": problems}),
    ))
}

/// Billable WhatsApp messages per day and pricing category.
#[utoipa::path(get, path = "/api/whatsapp/usage", tag = "whatsapp",
    responses((status = 200, description = "`{\"days\":[{\"day\",\"marketing\",\"utility\",…}]}`", body = serde_json::Value)))]
async fn usage(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let rows: Vec<(String, i64)> = state
        .store
        .read(|c| {
            let mut stmt = c.prepare(
                "SELECT key, value FROM meta WHERE key >= 'whatsapp.cost:' AND key < 'whatsapp.cost;' \
                 ORDER BY key",
            )?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?;
    let mut days: BTreeMap<String, BTreeMap<&str, i64>> = BTreeMap::new();
    for (key, n) in rows {
        let Some((day, category)) = key
            .strip_prefix("whatsapp.cost:")
            .and_then(|k| k.split_once(':'))
        else {
            continue;
        };
        let Some(cat) = CATEGORIES.iter().find(|c| **c == category) else {
            continue;
        };
        let entry = days
            .entry(day.to_string())
            .or_insert_with(|| CATEGORIES.iter().map(|c| (*c, 0)).collect());
        entry.insert(cat, n);
    }
    let days: Vec<serde_json::Value> = days
        .into_iter()
        .rev()
        .map(|(day, counts)| {
            let mut v = serde_json::json!({"day": day});
            for (k, n) in counts {
                v[k] = n.into();
            }
            v
        })
        .collect();
    Ok(Json(serde_json::json!({ "days": days })))
}
