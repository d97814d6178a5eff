//! The accept loop of pasarela's HTTP listeners (admin and webhooks): plain HTTP/1.1 or
//! HTTPS from a [`CertStore`], with the input limits a LAN-facing listener needs: a cap on open
//! connections, a TLS-handshake timeout, a header-read timeout and a body-read timeout, so slow
//! or half-open clients cannot starve the others (request bodies are capped per route by the
//! routers themselves). A plain-http request to an https listener fails its
//! handshake and is closed; the listener goes on.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::tls::CertStore;
use crate::shutdown::Shutdown;

/// Input limits of a listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; one more waits in the kernel's backlog until one closes.
    pub max_connections: usize,
    /// A client must finish the TLS handshake within this.
    pub handshake_timeout: Duration,
    /// A client must send a request's whole header within this (also bounds an idle
    /// keep-alive connection waiting for its next request).
    pub header_timeout: Duration,
    /// A request body that stalls this long between two pieces fails (the route answers an
    /// error and the connection closes).
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, over TLS when `tls` is given. At shutdown
/// it stops accepting, lets open requests finish (the caller bounds how long) and returns.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<CertStore>>,
    limits: Limits,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    let body_timeout = limits.body_timeout;
    let acceptor = tls.map(|store| tokio_rustls::TlsAcceptor::from(store.server_config()));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing_tx, closing) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.wait() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: pause rather than spin.
                    log::warn!("listener {:?}: accept failed: {e}", listener.local_addr().ok());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        while connections.try_join_next().is_some() {}
        let router = router.clone();
        let acceptor = acceptor.clone();
        let mut closing = closing.clone();
        connections.spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            // Handlers may read the client's address (`ConnectInfo`), e.g. to throttle logins.
            // The body's read timeout wraps each request here rather than as a router layer:
            // layering a router the caller still holds (to serve again after a failure)
            // would copy its whole route table.
            let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                router,
                move |req: axum::http::Request<hyper::body::Incoming>| {
                    let mut req =
                        req.map(|body| tower_http::timeout::TimeoutBody::new(body_timeout, body));
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    req
                },
            ));
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            match acceptor {
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(
                        limits.handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            log::debug!("TLS handshake with {peer} failed: {e}");
                            return;
                        }
                        Err(_) => {
                            log::debug!("TLS handshake with {peer} timed out");
                            return;
                        }
                    };
                    let conn = http.serve_connection(TokioIo::new(tls), service);
                    drive(conn, &mut closing).await;
                }
                None => {
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    drive(conn, &mut closing).await;
                }
            }
        });
    }
    let _ = closing_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Runs one connection; when `closing` turns true, finishes the request in progress and
/// closes.
async fn drive<I, S>(
    conn: hyper::server::conn::http1::Connection<I, S>,
    closing: &mut watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                log::debug!("HTTP connection ended: {e}");
            }
        }
        _ = async { let _ = closing.wait_for(|c| *c).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
