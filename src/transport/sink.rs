//! The narrow handle a transport reports through: inbound messages and SMS parts, delivery
//! reports, parts handed to the network, a little keyed state of its own, and "I am up again".
//! Transports get a [`Sink`] and never the store: the store implements [`Records`] and
//! [`KeyedState`] (`src/store/sink.rs`), the daemon adds the dispatcher's wake-up.
//!
//! Every method that returns `Ok` has committed its change: a transport may acknowledge (delete
//! from the SIM, advance a cursor, answer a webhook 2xx) only after it.

use std::sync::Arc;

use crate::model::{InboundSms, MessageId, NewInbound, PartStatus, Received, StatusUpdate};
use crate::transport::BoxFuture;

/// Why the sink could not record something (the database is closed or failing). Always worth
/// retrying later: nothing was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("database: {0}")]
pub struct SinkError(pub String);

/// What transports record about messages. Implemented by the store.
pub trait Records: Send + Sync {
    /// Stores an inbound message; `false` when `provider_ref` was stored before for this
    /// transport (a repeat delivery).
    fn inbound(&self, m: NewInbound) -> BoxFuture<'_, Result<(MessageId, bool), SinkError>>;
    /// Stores an inbound message unless the same sender sent the same text through the same
    /// transport within `window_ms` (`false` then: a repeat), for pushes that carry no id.
    fn inbound_unless_recent(
        &self,
        m: NewInbound,
        window_ms: i64,
    ) -> BoxFuture<'_, Result<(MessageId, bool), SinkError>>;
    /// Stores an inbound message that could not be read, flagged with `problem`.
    fn inbound_raw(
        &self,
        m: NewInbound,
        problem: String,
    ) -> BoxFuture<'_, Result<MessageId, SinkError>>;
    /// Stores a received SMS or SMS part; a long message is stored when its last part arrives.
    fn inbound_sms(&self, part: InboundSms) -> BoxFuture<'_, Result<Received, SinkError>>;
    /// Notes on the message holding the SMS `pdu_hash` (as given to [`Records::inbound_sms`])
    /// that the modem cut its user data short, keeping the raw PDU as `raw_hex`; `false` while
    /// that part's long message is not complete yet.
    fn note_truncated(
        &self,
        transport: &str,
        pdu_hash: &str,
        raw_hex: &str,
    ) -> BoxFuture<'_, Result<bool, SinkError>>;
    /// Long messages still missing parts after `max_age_ms` are stored as they are.
    fn flush_incomplete_sms(
        &self,
        max_age_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<MessageId>, SinkError>>;
    /// A delivery report for the message `transport` knows as `provider_ref`.
    fn status(
        &self,
        transport: &str,
        provider_ref: &str,
        update: StatusUpdate,
    ) -> BoxFuture<'_, Result<Option<MessageId>, SinkError>>;
    /// A delivery report for message `id`, if `transport` sent it as `provider_ref`; `true`
    /// when the message's state changed.
    fn status_of(
        &self,
        id: MessageId,
        transport: &str,
        provider_ref: &str,
        update: StatusUpdate,
    ) -> BoxFuture<'_, Result<bool, SinkError>>;
    /// Part `seq` of `total` of `message` was handed to the network as reference `mr`.
    fn part_sent(
        &self,
        message: MessageId,
        seq: u8,
        total: u8,
        transport: &str,
        mr: u8,
    ) -> BoxFuture<'_, Result<(), SinkError>>;
    /// Parts of `message` handed to the network already (a retry sends only the others).
    fn parts_sent(&self, message: MessageId) -> BoxFuture<'_, Result<Vec<u8>, SinkError>>;
    /// A status report for the part `transport` sent to `recipient` as reference `mr`.
    fn part_status(
        &self,
        transport: &str,
        mr: u8,
        recipient: &str,
        status: PartStatus,
    ) -> BoxFuture<'_, Result<Option<MessageId>, SinkError>>;
    /// Messages `transport` took since `since_ms` that still wait for a delivery report, ids
    /// after `after`, at most `limit`, in id order.
    fn awaiting_report(
        &self,
        transport: &str,
        since_ms: i64,
        after: MessageId,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<MessageId>, SinkError>>;
}

/// See [`KeyedState`]: keys ending in this are dropped by a restore.
pub const INSTANCE_KEY_SUFFIX: &str = "_id_tag";

/// Small integers a transport keeps across restarts (a rejected PIN's fingerprint, an id tag,
/// a poll cursor), by key. Keys are chosen by the transport and carry its name where the value
/// is per route (`pin_rejected:modem1`). Implemented by the store.
///
/// A key ending in [`INSTANCE_KEY_SUFFIX`] names a value that must not survive a restore of an
/// older backup (a tag that makes message ids unique to this database): `pasarela restore`
/// removes it, so a fresh one is drawn and ids sent after the backup cannot repeat.
pub trait KeyedState: Send + Sync {
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<i64>, SinkError>>;
    /// Sets (`Some`) or removes (`None`) the value; committed when it returns `Ok`.
    fn set(&self, key: &str, value: Option<i64>) -> BoxFuture<'_, Result<(), SinkError>>;
    /// The value under `key`, storing `fresh` first when there is none (atomically).
    fn get_or_init(&self, key: &str, fresh: i64) -> BoxFuture<'_, Result<i64, SinkError>>;
}

/// The handle a transport is built with; cheap to clone.
#[derive(Clone)]
pub struct Sink {
    records: Arc<dyn Records>,
    state: Arc<dyn KeyedState>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Sink {
    /// `wake` is called when a transport comes up (the dispatcher then looks at the queue).
    pub fn new(
        records: Arc<dyn Records>,
        state: Arc<dyn KeyedState>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Sink {
        Sink {
            records,
            state,
            wake,
        }
    }

    /// What transports record about messages.
    pub fn records(&self) -> &dyn Records {
        self.records.as_ref()
    }

    /// The transport's keyed state.
    pub fn state(&self) -> &dyn KeyedState {
        self.state.as_ref()
    }

    /// Health: the transport came up (again); queued messages may go now.
    pub fn came_up(&self) {
        (self.wake)()
    }
}
