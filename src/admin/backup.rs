//! `GET /api/backup`: a consistent copy of the database, streamed. The copy is written with
//! `VACUUM INTO` next to the database (same file system, no memory held), opened, unlinked,
//! and streamed from the open file, so nothing is left behind even if the client goes away.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::io::AsyncReadExt;

use super::{ApiError, AppState};
use crate::store::backup::backup_to;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/backup", get(backup))
}

/// This route in the OpenAPI document (`crate::admin::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(backup))]
pub(super) struct Doc;

/// The answer's body in the document: the file's bytes (`format: binary`), not a JSON array.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // only named by the OpenAPI annotation; the bytes are streamed
struct DatabaseFile(Vec<u8>);

/// The bytes of an open file, chunk by chunk, through a small bounded channel.
struct Chunks(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl futures_core::Stream for Chunks {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// A consistent copy of the database (`VACUUM INTO`), streamed.
#[utoipa::path(get, path = "/api/backup", tag = "backup",
    responses((status = 200, description = "the SQLite database file", body = DatabaseFile, content_type = "application/vnd.sqlite3")))]
async fn backup(State(state): State<AppState>) -> Result<Response, ApiError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let db = state.store.path().to_path_buf();
    let dir = db.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let tmp = dir.join(format!(
        ".backup-{}-{}.db",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let size = {
        let (db, tmp) = (db.clone(), tmp.clone());
        tokio::task::spawn_blocking(move || backup_to(&db, &tmp))
            .await
            .map_err(ApiError::internal)?
    };
    let opened = match size {
        Ok(size) => tokio::fs::File::open(&tmp).await.map(|f| (f, size)),
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(ApiError::internal(e));
        }
    };
    let _ = tokio::fs::remove_file(&tmp).await;
    let (mut file, size) = opened.map_err(ApiError::internal)?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    });
    let name = chrono::Utc::now().format("pasarela-%Y%m%d-%H%M%S.db");
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.sqlite3".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(Chunks(rx)),
    )
        .into_response())
}
