//! WhatsApp routes of the admin API: `GET /api/whatsapp/usage`, the per-day cost counters the
//! webhooks' pricing feeds (by category: marketing, utility, authentication, service).

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::{ApiError, AppState};
use crate::transport::whatsapp::webhook::CATEGORIES;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/whatsapp/usage", get(usage))
}

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
