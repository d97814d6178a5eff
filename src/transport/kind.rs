//! What a transport kind is: the [`Kind`] trait each adapter implements, what it is given to
//! build its routes ([`BuildContext`]) and what it builds ([`Built`]: transports, supervised
//! [`Task`]s, an optional webhook router). The list of kinds is [`crate::registry`].

use std::sync::Arc;

use crate::config::Config;
use crate::phone::PhoneContext;
use crate::shutdown::Shutdown;
use crate::transport::{BoxFuture, Sink, Transport};

/// What a kind is given to build its routes.
#[derive(Clone)]
pub struct BuildContext<'a> {
    pub config: &'a Config,
    /// The narrow handle transports report through; never the store.
    pub sink: Sink,
    pub phones: PhoneContext,
}

/// A long-lived task of a transport; the daemon runs it supervised (restarted with backoff
/// when it fails) until the transports' shutdown, which comes after the dispatcher's.
pub struct Task {
    /// For logs: `modem`, `phone`.
    pub name: &'static str,
    pub run: Arc<dyn Fn(Shutdown) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>,
}

impl Task {
    /// A task that runs `run(value, stop)` on a fresh clone of `value` each time the daemon
    /// starts (or restarts) it.
    pub fn new<T, F, Fut>(name: &'static str, value: T, run: F) -> Self
    where
        T: Clone + Send + Sync + 'static,
        F: Fn(T, Shutdown) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Task {
            name,
            run: Arc::new(move |stop| Box::pin(run(value.clone(), stop))),
        }
    }
}

/// What a kind built.
#[derive(Default)]
pub struct Built {
    pub transports: Vec<Arc<dyn Transport>>,
    pub tasks: Vec<Task>,
    /// Routes relative to `/webhooks/<kind>` (`/{name}`), if the kind takes webhooks.
    pub webhooks: Option<axum::Router>,
}

/// One kind of transport.
pub trait Kind: Sync {
    /// The kind's config table (`[[android]]`) and its webhook path segment.
    fn name(&self) -> &'static str;

    /// Problems in this kind's tables, as (dotted key, message): `("android.url", "…")`. Route
    /// names (unique, well formed) are checked by the config itself.
    fn check(&self, config: &Config) -> Vec<(String, String)> {
        let _ = config;
        Vec::new()
    }

    /// Builds every route of this kind configured in `cx.config`. An error stops start-up.
    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Built>;
}
