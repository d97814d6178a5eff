//! The transport boundary: one adapter per kind (GSM modem, Android phone, WhatsApp, SMTP),
//! each of which only moves messages over its protocol. Transports know nothing of keywords,
//! customers or queues; the dispatcher hands them one message at a time and they answer with
//! a [`SendReceipt`] or a [`TransportError`] that says whether a retry can help.
//!
//! Inbound messages, delivery reports, health changes and a transport's own keyed state go
//! through its [`Sink`], the one narrow handle every transport shares; no transport sees the
//! store. Each kind builds itself from its config ([`kind::Kind`]); [`crate::registry`] lists them.

pub mod android;
pub mod email;
pub mod http_sms;
pub mod kind;
pub mod pace;
pub mod sink;
pub mod whatsapp;

pub use sink::Sink;

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

pub use crate::model::{Channel, Content, Outgoing};

/// A boxed future, for trait methods that must stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a transport returns when it handed a message to the network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReceipt {
    /// The transport's reference for the message (modem TP-MR, provider id), used to match
    /// later delivery reports.
    pub provider_ref: Option<String>,
    /// Handed over without a confirmation (a 2xx without the expected text, an answer cut
    /// off, no answer after the request went out): it counts as sent and is never resent,
    /// and this reason is kept with the message.
    pub unconfirmed: Option<String>,
    /// The server's final answer, kept for the history (SMTP: `250 2.0.0 Ok: queued as …`).
    pub answer: Option<String>,
}

/// Why a send did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Retrying later can help: network congestion, no signal, timeout, device gone.
    #[error("{0}")]
    Temporary(String),
    /// Retrying cannot help: unassigned number, barred, rejected content.
    #[error("{0}")]
    Permanent(String),
}

impl TransportError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, TransportError::Temporary(_))
    }
}

/// A transport's health, for `GET /api/status` and the dispatcher's routing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub up: bool,
    /// One line for operators: "registered, signal -71 dBm (good)", "device not found".
    pub detail: String,
}

/// A provider's credit as its balance query last answered (`GET /api/status` shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credit {
    /// Messages left, as the provider counts them.
    pub credit: Option<i64>,
    /// The package's expiry (`2026-12-31`), where the provider says.
    pub expires: Option<String>,
    /// When the figures were read (Unix ms).
    pub checked_at_ms: Option<i64>,
    /// The route's `credit_alert_below`.
    pub alert_below: Option<i64>,
    /// Why the last query failed, if it did (the figures are then the last known ones).
    pub error: Option<String>,
    /// What `credit` and `alert_below` count.
    #[serde(skip)]
    pub unit: CreditUnit,
}

/// What a [`Credit`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CreditUnit {
    /// Messages left in a provider's package.
    #[default]
    Messages,
    /// Money on a prepaid SIM, in cents (pesos × 100).
    Cents,
}

/// One route messages can leave through.
pub trait Transport: Send + Sync {
    /// Unique name from the config (`modem1`, `phone-oficina`); stored on each message.
    fn name(&self) -> &str;

    fn channel(&self) -> Channel;

    /// Messages this transport can have in flight at once (a modem sends one at a time).
    fn capacity(&self) -> usize {
        1
    }

    fn health(&self) -> Health;

    /// Transport-specific facts for the status page (a modem's signal, operator, IMEI…).
    fn details(&self) -> Option<serde_json::Value> {
        None
    }

    /// The provider's credit, for routes that can ask for it.
    fn credit(&self) -> Option<Credit> {
        None
    }

    /// The concrete transport, for the API routes of a kind (the email test send).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// Sends one message. Must return within the transport's own timeouts; the dispatcher also
    /// bounds the whole call.
    fn send<'a>(
        &'a self,
        message: &'a Outgoing,
    ) -> BoxFuture<'a, Result<SendReceipt, TransportError>>;
}

/// The text of an SMS message, or the permanent error a transport of SMS gives for anything
/// else (the dispatcher only hands a route messages of its channel, so this is a safeguard).
pub fn sms_text(message: &Outgoing) -> Result<&str, TransportError> {
    message.content.sms_text().ok_or_else(|| {
        TransportError::Permanent(format!(
            "a {} message cannot go through an SMS route",
            message.content.channel()
        ))
    })
}
