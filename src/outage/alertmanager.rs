//! The Prometheus Alertmanager webhook receiver: `POST /webhooks/alertmanager` on the
//! `[webhooks]` listener, so the ISP's monitoring opens and closes outages by itself.
//!
//! Alertmanager's webhook JSON, version `"4"`: `version`, `groupKey`, `status`, `receiver`,
//! `groupLabels`, `commonLabels`, `commonAnnotations`, `externalURL`, `truncatedAlerts` and
//! `alerts[]`, each with `status` (`firing` | `resolved`), `labels`, `annotations`, `startsAt`,
//! `endsAt`, `generatorURL`, `fingerprint`. The label `zone_label` (`zona` by default) of each
//! alert names the zone:
//! - a zone with a firing alert opens an outage for it, or updates the open one (message from
//!   the `summary` or `description` annotation, ETA from an `eta` annotation in RFC 3339);
//! - a zone whose alerts are all resolved resolves its open outage.
//!
//! `Authorization: Bearer <token>` is required (Alertmanager's `http_config.authorization`).
//! The whole payload is checked before anything is applied: an unknown version, an alert
//! without the zone label or a zone matching no customer answers 400 / 422 naming what is
//! wrong, and nothing changes. Alertmanager re-sends firing groups every `repeat_interval`;
//! updating an open outage is idempotent and sends nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{OpenRequest, Origin, OutageError, canonical_field, parse_eta};
use crate::config::AlertmanagerConfig;
use crate::inbox::RulesContext;
use crate::jsonapi::{ApiError, parse_json, read_body};

/// Largest payload accepted: Alertmanager's groups are a few KiB per alert.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The webhook payload, as Alertmanager sends it. Fields this receiver does not use are
/// accepted and ignored (Alertmanager adds some between releases).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub version: Option<String>,
    #[serde(default)]
    pub group_key: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub receiver: Option<String>,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub alerts: Option<Vec<Alert>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: Option<String>,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// What a payload asks for one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneAction {
    /// `message` is the alert's summary or description, if it has one.
    Firing {
        message: Option<String>,
        eta: Option<i64>,
    },
    Resolved,
}

/// An alert's text cut to the outage message's limit on a character boundary: the payload comes
/// from monitoring, which would resend a refused one forever, and the text goes into every
/// notice.
fn clip(text: &str) -> String {
    match text.char_indices().nth(crate::outage::MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", text[..at].trim_end()),
        None => text.to_string(),
    }
}

/// Checks a payload and reduces it to one action per zone (a zone with any firing alert is
/// firing). Errors are (field, message) for a 400.
pub fn plan(
    p: &Payload,
    zone_label: &str,
) -> Result<BTreeMap<String, ZoneAction>, (String, String)> {
    match p.version.as_deref() {
        Some("4") => {}
        Some(v) => {
            return Err((
                "version".into(),
                format!(
                    "`{v}` is not a webhook version this receiver knows; it reads version \"4\""
                ),
            ));
        }
        None => {
            return Err((
                "version".into(),
                "is missing; Alertmanager's webhook payload carries \"version\": \"4\"".into(),
            ));
        }
    }
    let Some(alerts) = &p.alerts else {
        return Err(("alerts".into(), "is missing".into()));
    };
    if alerts.is_empty() {
        return Err(("alerts".into(), "is empty".into()));
    }
    let mut zones: BTreeMap<String, ZoneAction> = BTreeMap::new();
    for (i, a) in alerts.iter().enumerate() {
        let zone = a
            .labels
            .get(zone_label)
            .map(|z| z.trim())
            .filter(|z| !z.is_empty())
            .ok_or_else(|| {
                (
                    format!("alerts[{i}].labels.{zone_label}"),
                    format!(
                        "is missing: the alert has no `{zone_label}` label naming the zone \
                         (webhooks.alertmanager.zone_label)"
                    ),
                )
            })?
            .to_string();
        let action = match a.status.as_str() {
            "firing" => {
                let eta = match a.annotations.get("eta") {
                    Some(raw) => Some(
                        parse_eta(raw).map_err(|e| (format!("alerts[{i}].annotations.eta"), e))?,
                    ),
                    None => None,
                };
                let message = ["summary", "description"]
                    .iter()
                    .find_map(|k| a.annotations.get(*k).or(p.common_annotations.get(*k)))
                    .map(|m| clip(m.trim()))
                    .filter(|m| !m.is_empty());
                ZoneAction::Firing { message, eta }
            }
            "resolved" => ZoneAction::Resolved,
            other => {
                return Err((
                    format!("alerts[{i}].status"),
                    format!("`{other}` is not firing or resolved"),
                ));
            }
        };
        match (zones.get(&zone), &action) {
            // One firing alert keeps the zone firing.
            (Some(ZoneAction::Firing { .. }), ZoneAction::Resolved) => {}
            _ => {
                zones.insert(zone, action);
            }
        }
    }
    Ok(zones)
}

#[derive(Clone)]
pub struct AlertState {
    pub rules: RulesContext,
    pub config: Arc<AlertmanagerConfig>,
}

/// The receiver's route, relative to the webhook listener's root: `POST /webhooks/alertmanager`.
pub fn router(state: AlertState) -> Router {
    routes().with_state(state)
}

/// [`router`] before its state: what the OpenAPI drift test walks.
pub fn routes() -> Router<AlertState> {
    Router::new().route("/webhooks/alertmanager", axum::routing::post(receive))
}

/// This route in the OpenAPI document (`crate::admin::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(receive))]
pub struct Doc;

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    r
}

/// Prometheus Alertmanager's webhook: a firing alert opens an outage for its zone, a resolved
/// one resolves it.
#[utoipa::path(post, path = "/webhooks/alertmanager", tag = "webhooks",
    request_body(content = serde_json::Value, description = "Alertmanager's webhook payload (version 4: `status`, `alerts[]` with `labels`)"),
    responses(
        (status = 200, description = "what each alert did", body = serde_json::Value),
        (status = 400, description = "not Alertmanager's payload", body = crate::jsonapi::ErrorEnvelope),
        (status = 401, description = "missing or wrong bearer token (`webhooks.alertmanager.token`)", body = crate::jsonapi::ErrorEnvelope),
        (status = 413, description = "`payload_too_large`", body = crate::jsonapi::ErrorEnvelope),
        (status = 422, description = "an alert cannot be applied", body = crate::jsonapi::ErrorEnvelope),
    ),
    security(("alertmanager_token" = [])))]
async fn receive(State(state): State<AlertState>, request: Request) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match presented {
        None => {
            log::warn!("alertmanager: a webhook without a bearer token was refused");
            return unauthorized(
                "send `Authorization: Bearer <token>` (http_config.authorization in alertmanager.yml) \
                 with webhooks.alertmanager.token",
            );
        }
        Some(t) if !state.config.token.matches(t) => {
            log::warn!("alertmanager: a webhook with a wrong bearer token was refused");
            return unauthorized("the bearer token is wrong");
        }
        Some(_) => {}
    }
    let body = match read_body(request, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match apply(&state, &body).await {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => {
            log::warn!("alertmanager: webhook refused: {}", e.body.message);
            e.into_response()
        }
    }
}

/// Checks the whole payload, then applies it zone by zone.
async fn apply(state: &AlertState, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let payload: Payload = parse_json(body)?;
    let zones = plan(&payload, &state.config.zone_label).map_err(|(f, m)| ApiError::field(f, m))?;
    let field = canonical_field(&state.config.field);
    let rules = &state.rules;
    // Which open outage each zone has; zones to open must match customers (else 422, before
    // anything changes).
    let mut current = BTreeMap::new();
    for (zone, action) in &zones {
        let z = zone.clone();
        let open = rules
            .store
            .read(move |c| crate::store::outages::open_alert_outage(c, &z))
            .await?;
        if open.is_none() && matches!(action, ZoneAction::Firing { .. }) {
            let (f, zs) = (field.clone(), vec![zone.clone()]);
            let any = rules
                .store
                .read(move |c| crate::store::outages::any_affected(c, &f, &zs))
                .await?;
            if !any {
                return Err(ApiError::from(OutageError::NoCustomers {
                    field: field.clone(),
                    zones: vec![zone.clone()],
                })
                .with_field(format!("alerts.labels.{}", state.config.zone_label)));
            }
        }
        current.insert(zone.clone(), open);
    }
    let (mut opened, mut updated, mut resolved) = (Vec::new(), Vec::new(), Vec::new());
    for (zone, action) in zones {
        match (action, current.get(&zone).copied().flatten()) {
            (ZoneAction::Firing { message, eta }, Some(id)) => {
                // An alert without a text keeps the one the outage has (perhaps an operator's).
                rules.update_outage(id, message, eta).await?;
                updated.push(id);
            }
            (ZoneAction::Firing { message, eta }, None) => {
                let o = rules
                    .open_outage(OpenRequest {
                        field: field.clone(),
                        zones: vec![zone.clone()],
                        message: message.unwrap_or_default(),
                        eta,
                        origin: Origin::Alertmanager(zone.clone()),
                    })
                    .await?;
                opened.push(o.id);
            }
            (ZoneAction::Resolved, Some(id)) => match rules.resolve_outage(id, None).await {
                Ok(_) | Err(OutageError::AlreadyResolved(_)) => resolved.push(id),
                Err(e) => return Err(e.into()),
            },
            (ZoneAction::Resolved, None) => {}
        }
    }
    log::info!(
        "alertmanager: group {} from receiver {}: {} opened, {} updated, {} resolved",
        payload.group_key.as_deref().unwrap_or("?"),
        payload.receiver.as_deref().unwrap_or("?"),
        opened.len(),
        updated.len(),
        resolved.len()
    );
    Ok(serde_json::json!({"opened": opened, "updated": updated, "resolved": resolved}))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alertmanager's published example payload, with a `zona` label.
    const SAMPLE: &str = r#"{
      "receiver": "pasarela", "status": "firing",
      "alerts": [{
        "status": "firing",
        "labels": {"alertname": "NodoCaido", "zona": "norte", "severity": "critical"},
        "annotations": {"summary": "Nodo norte sin enlace", "eta": "2026-12-02T18:00:00-03:00"},
        "startsAt": "2026-12-02T13:08:45.828Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph", "fingerprint": "1a30ba71cca2921f"
      }, {
        "status": "resolved",
        "labels": {"alertname": "NodoCaido", "zona": "sur"},
        "annotations": {}, "startsAt": "2026-12-02T12:00:00Z", "endsAt": "2026-12-02T13:00:00Z",
        "fingerprint": "2b"
      }],
      "groupLabels": {"alertname": "NodoCaido"}, "commonLabels": {"alertname": "NodoCaido"},
      "commonAnnotations": {}, "externalURL": "http://alertmanager.example:9093",
      "version": "4", "groupKey": "{}:{alertname=\"NodoCaido\"}", "truncatedAlerts": 0
    }"#;

    #[test]
    fn a_published_payload_becomes_one_action_per_zone() {
        let p: Payload = serde_json::from_str(SAMPLE).unwrap();
        let zones = plan(&p, "zona").unwrap();
        assert_eq!(
            zones.get("norte"),
            Some(&ZoneAction::Firing {
                message: Some("Nodo norte sin enlace".into()),
                eta: Some(parse_eta("2026-12-02T18:00:00-03:00").unwrap()),
            })
        );
        assert_eq!(zones.get("sur"), Some(&ZoneAction::Resolved));
    }

    #[test]
    fn long_texts_are_cut_and_missing_ones_change_nothing() {
        let mut v: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
        v["alerts"][0]["annotations"]["summary"] = "ñ".repeat(1500).into();
        let p: Payload = serde_json::from_value(v.clone()).unwrap();
        let Some(ZoneAction::Firing {
            message: Some(m), ..
        }) = plan(&p, "zona").unwrap().remove("norte")
        else {
            panic!("not firing");
        };
        assert_eq!(
            m.chars().count(),
            crate::outage::MAX_MESSAGE_CHARS + 1,
            "{m}"
        );
        assert!(m.ends_with('…'));
        v["alerts"][0]["annotations"] = serde_json::json!({});
        let p: Payload = serde_json::from_value(v).unwrap();
        assert_eq!(
            plan(&p, "zona").unwrap().get("norte"),
            Some(&ZoneAction::Firing {
                message: None,
                eta: None
            })
        );
    }

    #[test]
    fn unknown_versions_and_missing_labels_are_named() {
        let mut v: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
        v["version"] = "5".into();
        let p: Payload = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(plan(&p, "zona").unwrap_err().0, "version");
        v.as_object_mut().unwrap().remove("version");
        let p: Payload = serde_json::from_value(v).unwrap();
        assert!(plan(&p, "zona").unwrap_err().1.contains("missing"));
        let p: Payload = serde_json::from_str(SAMPLE).unwrap();
        assert_eq!(plan(&p, "nodo").unwrap_err().0, "alerts[0].labels.nodo");
    }
}
