//! The simulator's HTTP control API.
//!
//! | route            | body                                  | answer                          |
//! |------------------|---------------------------------------|---------------------------------|
//! | `POST /inbound`  | `{"from","text"}`                     | `{"parts":N}`                   |
//! | `GET /sent`      |                                       | `[SentMessage]`                 |
//! | `DELETE /sent`   |                                       | `{"cleared":N}`                 |
//! | `GET /sim`       |                                       | `SimContents`                   |
//! | `POST /fault`    | `{"kind":"hang","secs":10}` …         | `{"ok":true}`                   |
//! | `GET /config`    |                                       | `SimConfig`                     |
//! | `POST /config`   | `ConfigPatch` (all fields optional)   | the resulting `SimConfig`       |
//!
//! Contract: a bad request is a 400 with `{"error": "...", "field": "..."}` naming the field
//! (the JSON path for malformed JSON); nothing a client sends can panic the simulator.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::watch;

use super::{ConfigPatch, Fault, Sim, SimError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inbound {
    from: String,
    text: String,
}

/// A 400 answer naming the field at fault.
struct BadRequest {
    field: String,
    error: String,
}

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": self.error, "field": self.field })),
        )
            .into_response()
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, BadRequest> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        BadRequest {
            field: if path == "." {
                "body".to_string()
            } else {
                path
            },
            error: e.into_inner().to_string(),
        }
    })
}

fn refused(e: SimError) -> Response {
    BadRequest {
        field: e.field().to_string(),
        error: e.to_string(),
    }
    .into_response()
}

async fn inbound(State(sim): State<Sim>, body: Bytes) -> Response {
    let req: Inbound = match parse(&body) {
        Ok(r) => r,
        Err(bad) => return bad.into_response(),
    };
    match sim.inbound(&req.from, &req.text) {
        Ok(parts) => axum::Json(json!({ "parts": parts })).into_response(),
        Err(e) => refused(e),
    }
}

async fn sent(State(sim): State<Sim>) -> Response {
    axum::Json(sim.sent()).into_response()
}

async fn clear_sent(State(sim): State<Sim>) -> Response {
    let cleared = sim.sent().len();
    sim.clear_sent();
    axum::Json(json!({ "cleared": cleared })).into_response()
}

async fn sim_contents(State(sim): State<Sim>) -> Response {
    axum::Json(sim.sim_messages()).into_response()
}

async fn fault(State(sim): State<Sim>, body: Bytes) -> Response {
    let fault: Fault = match parse(&body) {
        Ok(f) => f,
        Err(bad) => return bad.into_response(),
    };
    match sim.fault(&fault) {
        Ok(()) => axum::Json(json!({ "ok": true })).into_response(),
        Err(e) => refused(e),
    }
}

async fn get_config(State(sim): State<Sim>) -> Response {
    axum::Json(sim.config()).into_response()
}

async fn set_config(State(sim): State<Sim>, body: Bytes) -> Response {
    let patch: ConfigPatch = match parse(&body) {
        Ok(p) => p,
        Err(bad) => return bad.into_response(),
    };
    match sim.set_config(patch) {
        Ok(()) => axum::Json(sim.config()).into_response(),
        Err(e) => refused(e),
    }
}

/// The routes, for serving or for driving in tests without a socket.
pub fn router(sim: Sim) -> Router {
    Router::new()
        .route("/inbound", post(inbound))
        .route("/sent", get(sent).delete(clear_sent))
        .route("/sim", get(sim_contents))
        .route("/fault", post(fault))
        .route("/config", get(get_config).post(set_config))
        .with_state(sim)
}

/// Serves the API on `listener` until `stop` turns true.
pub async fn serve(listener: tokio::net::TcpListener, sim: Sim, mut stop: watch::Receiver<bool>) {
    let shutdown = async move {
        super::stopped(&mut stop).await;
    };
    if let Err(e) = axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown)
        .await
    {
        log::error!("modem-sim: control API stopped: {e}");
    }
}
