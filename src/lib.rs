//! pasarela: a self-hosted SMS, WhatsApp and email gateway for small ISPs.

pub mod sms;
