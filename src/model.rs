//! The message model both sides of the transport boundary share: ids, channels, states and
//! priorities, what a transport reports (inbound messages and SMS parts, delivery reports) and
//! what the dispatcher hands a transport ([`Outgoing`]). Plain data: no I/O, no store.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Row id of a message; also the id the API hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MessageId(pub i64);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and wire form.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Which way a message went.
    Direction { In => "in", Out => "out" }
);

text_enum!(
    /// The kind of transport that carries a message.
    Channel { Sms => "sms", Whatsapp => "whatsapp", Email => "email" }
);

text_enum!(
    /// Lifecycle. Outbound: `queued → sending → sent → delivered → read` (`read` only where
    /// the channel reports it: WhatsApp), or `failed` / `cancelled`; `scheduled` waits for a
    /// delivery window. Inbound messages are `received`.
    State {
        Received => "received",
        Scheduled => "scheduled",
        Queued => "queued",
        Sending => "sending",
        Sent => "sent",
        Delivered => "delivered",
        Read => "read",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

text_enum!(
    /// Dispatch order: replies to a customer's own message first, then notifications, then bulk.
    Priority { Reply => "reply", Notification => "notification", Bulk => "bulk" }
);

impl Priority {
    pub(crate) fn rank(self) -> i64 {
        match self {
            Priority::Reply => 0,
            Priority::Notification => 1,
            Priority::Bulk => 2,
        }
    }

    pub(crate) fn from_rank(rank: i64) -> Priority {
        match rank {
            0 => Priority::Reply,
            2 => Priority::Bulk,
            _ => Priority::Notification,
        }
    }
}

/// An inbound message as a transport read it.
#[derive(Debug, Clone)]
pub struct NewInbound {
    pub channel: Channel,
    pub transport: String,
    /// Sender as received: a normalized number when it is one, else the raw address
    /// (alphanumeric senders such as `Personal`, short codes).
    pub peer: String,
    pub body: String,
    /// The transport's own id for it, so a second delivery of the same message is recognised.
    pub provider_ref: Option<String>,
}

/// A delivery report from a transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusUpdate {
    Delivered,
    /// The recipient opened it (WhatsApp's `read`); implies delivered.
    Read,
    Failed {
        reason: String,
    },
}

/// One received SMS part (or a whole single-part SMS when `concat` is `None`).
#[derive(Debug, Clone)]
pub struct InboundSms {
    pub transport: String,
    pub sender: String,
    pub text: String,
    /// (reference, total, seq) of a concatenated message.
    pub concat: Option<(u16, u8, u8)>,
    /// Identifies this exact PDU (sender, time stamp, content).
    pub pdu_hash: String,
}

/// What storing a received part did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A message is complete and stored (new).
    Message(MessageId),
    /// The same PDU was stored before; nothing changed.
    Duplicate,
    /// A part of a message still waiting for others.
    PartPending,
}

/// A delivery report for one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartStatus {
    Delivered,
    Failed(String),
}

/// One message handed to a transport: what to send, to whom, and which attempt this is.
/// `id` is stable across attempts (transports use it as an idempotency key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub id: MessageId,
    /// The recipient in the channel's form: an E.164 number for SMS and WhatsApp, an address
    /// for email.
    pub to: String,
    pub content: Content,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// A transport that queues sends takes replies ahead of notices and bulk waiting there.
    pub priority: Priority,
}

/// What a message carries, by channel. Only [`Content::Sms`] is produced today; the others are
/// the shapes the WhatsApp and email transports take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Sms { text: String },
    Email(Email),
    Whatsapp(Whatsapp),
}

impl Content {
    /// The channel that carries this content.
    pub fn channel(&self) -> Channel {
        match self {
            Content::Sms { .. } => Channel::Sms,
            Content::Email(_) => Channel::Email,
            Content::Whatsapp(_) => Channel::Whatsapp,
        }
    }

    /// The text of an SMS, if this is one.
    pub fn sms_text(&self) -> Option<&str> {
        match self {
            Content::Sms { text } => Some(text),
            _ => None,
        }
    }
}

/// An email: a subject, a plain-text body, an optional HTML alternative, attachments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
}

/// A file sent with a message (an invoice PDF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// MIME type, `application/pdf`.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A WhatsApp message: free text (inside the customer's 24-hour window) or an approved template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whatsapp {
    Text {
        body: String,
    },
    Template {
        name: String,
        /// Language code of the approved template (`es_AR`).
        language: String,
        /// Body parameters, in order.
        params: Vec<String>,
        /// A document header (an invoice PDF by link or by uploaded media id).
        document: Option<Document>,
    },
}

/// A document a WhatsApp template carries in its header: by link (the billing system's URL) or
/// by the id of media uploaded before.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}
