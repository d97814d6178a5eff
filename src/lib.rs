//! pasarela: a self-hosted messaging gateway for small ISPs. It sends and receives SMS through
//! GSM modems and Android phones and WhatsApp messages through Meta's Cloud API, answers
//! customers' keyword texts, and serves a local admin API, with every message kept in one
//! SQLite database.
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
//! | [`config`]    | TOML config types, defaults, its own checks; imports no feature        |
//! | [`setup`]     | loading a config with every check (config, kinds, rules, directory)    |
//! | [`model`]     | message model both sides share: ids, channels, states, `Outgoing`      |
//! | [`phone`]     | phone-number normalization ([`phone::Msisdn`], Argentine forms)        |
//! | [`store`]     | the SQLite database: schema, migrations, messages, group commit; the  |
//! |               | transports' sink and keyed state (`store::sink`); retention, backup  |
//! |               | and restore                                                           |
//! | [`transport`] | the `Transport` trait, typed send errors, the `Sink` transports report |
//! |               | through, the `Kind` trait; Android phone, HTTP and WhatsApp routes     |
//! | [`registry`]  | the transport kinds, one line each; builds routes, tasks, webhooks     |
//! | [`dispatch`]  | outbox worker: claims by priority, retries with backoff, routes        |
//! | [`campaign`]  | campaigns: selection, preview, frozen task list, the rate-keeping feeder |
//! | [`events`]    | billing events over several channels: plans, next-channel fallback     |
//! | [`inbox`]     | applies the rules' actions to each inbound message                     |
//! | [`credit`]    | alerts the on-duty groups when a provider's credit falls below a mark  |
//! | [`outage`]    | outages by zone: notices, outage replies, all-clear; Alertmanager      |
//! | [`rules`]     | keyword rules, templates, money, delivery windows (pure)               |
//! | [`directory`] | customers: CSV/JSON import, live lookup in the billing system          |
//! | [`net`]       | TLS in and out: HTTP client builder, listeners, PEM files, safe errors |
//! | [`admin`]     | HTTP API and the pages on one listener, bearer-token auth for the API   |
//! | [`web`]       | the operators' pages: login, sessions, CSRF, templates, embedded assets |
//! | [`jsonapi`]   | JSON error answers, body limits, strict JSON: admin and webhooks share |
//! | [`daemon`]    | wiring, supervision, systemd notify/watchdog, graceful shutdown        |
//! | [`logging`]   | journald native protocol or stderr; structured fields; masked numbers  |
//! | [`metrics`]   | Prometheus counters and the `/metrics` exposition (process-wide)       |
//! | [`shutdown`]  | the shutdown signal every task watches                                 |
//! | [`idle`]      | coalesced idle wake-ups: long waits of the loops land on one grid      |
//! | [`sms`]       | pure SMS codecs: GSM 7-bit, UCS-2, PDUs, segmenting, reassembly        |
//! | [`modem`]     | AT digester, serial port, the modem task and route, USSD, simulator     |
//! | [`cli`]       | helpers behind the `pasarela` subcommands                              |
//! | [`doctor`]    | `pasarela doctor`: checks an installed box, one line and a fix each    |
//! | [`firstrun`]  | `pasarela setup`: finds the modems (`setup detect`), writes a config   |
//! | [`holidays`]  | national holiday calendars computed per year (pure)                    |
//!
//! Dependencies point one way: transports and the modem know [`model`], [`config`] and their
//! [`transport::Sink`], never the store, the admin API or the dispatcher; `config` knows no
//! feature (`tests/structure.rs` checks both).

pub mod admin;
pub mod campaign;
pub mod cli;
pub mod config;
pub mod credit;
pub mod daemon;
pub mod directory;
pub mod dispatch;
pub mod doctor;
pub mod events;
pub mod firstrun;
pub mod holidays;
pub mod idle;
pub mod inbox;
pub mod jsonapi;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod modem;
pub mod net;
pub mod outage;
pub mod phone;
pub mod registry;
pub mod rules;
pub mod setup;
pub mod shutdown;
pub mod sms;
pub mod store;
pub mod transport;
pub mod web;
