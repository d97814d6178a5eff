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

use crate::config::Config;
use crate::transport::Transport;
use crate::transport::kind::{BuildContext, Built, Kind};

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
        for cfg in &cx.config.email {
            let t = EmailTransport::new(cfg.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
            built.transports.push(Arc::new(t));
        }
        Ok(built)
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
