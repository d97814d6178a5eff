//! pasarela: a self-hosted messaging gateway for small ISPs. It sends and receives SMS through
//! GSM modems and Android phones, answers customers' keyword texts, and serves a local admin
//! API, with every message kept in one SQLite database.
//!
//! One pipeline:
//!
//! ```text
//! transports (in) ─> inbound ─> store.inbox ─> rules::decide ─> store.outbox ─> dispatcher ─> transports (out)
//! ```
//!
//! Module map:
//!
//! | module        | owns                                                                  |
//! |---------------|-----------------------------------------------------------------------|
//! | [`config`]    | TOML config types, defaults, `validate()`; secrets never printed       |
//! | [`phone`]     | phone-number normalization ([`phone::Msisdn`], Argentine forms)        |
//! | [`store`]     | the SQLite database: schema, migrations, messages, group commit        |
//! | [`transport`] | the `Transport` trait, typed send errors; Android phone and HTTP routes |
//! | [`dispatch`]  | outbox worker: claims by priority, retries with backoff, routes        |
//! | [`admin`]     | HTTP API and the pages on one listener, bearer-token auth for the API   |
//! | [`web`]       | the operators' pages: login, sessions, CSRF, templates, embedded assets |
//! | [`daemon`]    | wiring, supervision, systemd notify/watchdog, graceful shutdown        |
//! | [`logging`]   | journald native protocol or stderr; structured fields; masked numbers  |
//! | [`shutdown`]  | the shutdown signal every task watches                                 |
//! | [`sms`]       | pure SMS codecs: GSM 7-bit, UCS-2, PDUs, segmenting, reassembly        |
//! | [`modem`]     | AT digester, serial port, the GSM modem task and route, the simulator   |
//! | [`cli`]       | helpers behind the `pasarela` subcommands                              |
//! | [`doctor`]    | `pasarela doctor`: checks an installed box, one line and a fix each    |

pub mod admin;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod directory;
pub mod dispatch;
pub mod doctor;
pub mod inbox;
pub mod logging;
pub mod modem;
pub mod phone;
pub mod rules;
pub mod shutdown;
pub mod sms;
pub mod store;
pub mod transport;
pub mod web;
