//! `[[email]]`: SMTP accounts, one route each, chosen by area (`facturas`, `tickets`,
//! `clientes`, falling back to `todo`). Owns the account checks ([`check`]), the SMTP route on
//! lettre ([`smtp`]), how a queued mail is stored ([`stored`]), mail for API requests and test
//! sends ([`api`]) and templated notices with a PDF attached ([`notice`]).

pub mod api;
pub mod check;
pub mod notice;
pub mod smtp;
pub mod stored;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::transport::kind::{BuildContext, Built, Kind, Task};
use crate::transport::{Sink, Transport};

pub use smtp::EmailTransport;

pub struct EmailKind;

pub const KIND: EmailKind = EmailKind;

impl Kind for EmailKind {
    fn name(&self) -> &'static str {
        "email"
    }

    fn check(&self, config: &Config) -> Vec<(String, String)> {
        check::check(config)
    }

    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Built> {
        let mut built = Built::default();
        let mut all = Vec::new();
        for cfg in &cx.config.email {
            let t = Arc::new(EmailTransport::new(cfg.clone()).map_err(|e| anyhow::anyhow!("{e}"))?);
            all.push(t.clone());
            built.transports.push(t);
        }
        if !all.is_empty() {
            let sink = cx.sink.clone();
            built.tasks.push(Task::new(
                "email-login",
                (all, sink),
                |(all, sink), shutdown| relogin(all, sink, shutdown),
            ));
        }
        Ok(built)
    }
}

/// How often an account whose login was refused tries again.
const RELOGIN_EVERY: Duration = Duration::from_secs(60);

/// Accounts whose login was refused try to log in every [`RELOGIN_EVERY`]; when one succeeds
/// the account is up again and the dispatcher is woken.
async fn relogin(
    accounts: Vec<Arc<EmailTransport>>,
    sink: Sink,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RELOGIN_EVERY) => {}
            _ = shutdown.wait() => return Ok(()),
        }
        for a in accounts.iter().filter(|a| a.auth_failed()) {
            match a.login().await {
                Ok(()) => {
                    log::info!(transport = a.config().name.as_str(); "{}: logged in again", a.config().name);
                    sink.came_up();
                }
                Err(e) => log::debug!("{e}"),
            }
        }
    }
}

/// The email accounts among `transports`.
pub fn accounts(transports: &[Arc<dyn Transport>]) -> Vec<&EmailTransport> {
    transports
        .iter()
        .filter_map(|t| t.as_any()?.downcast_ref::<EmailTransport>())
        .collect()
}

/// The account that sends mail of `area`: the one listing it, else the `todo` account.
pub fn account_for<'a>(
    transports: &'a [Arc<dyn Transport>],
    area: &str,
) -> Option<&'a EmailTransport> {
    let all = accounts(transports);
    all.iter()
        .find(|a| a.serves(area))
        .or_else(|| all.iter().find(|a| a.serves("todo")))
        .copied()
}
