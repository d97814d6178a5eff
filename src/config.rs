//! The TOML configuration: types that mirror its tables, defaults for every optional key, and
//! `validate()`, whose errors name the key, its line in the file and the fix.
//!
//! Secrets (tokens, passwords, PINs) are [`Secret`]s: they print as `***` in `Debug` and
//! `Display`, so a config that reaches a log never leaks them.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod directory;
pub mod rules;

/// Where the packaged daemon looks for its configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/pasarela/pasarela.toml";

/// A secret value: printed as `***`, compared in constant time.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is used, never to print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares without an early exit, so response timing does not reveal a prefix.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate)
    }
}

/// Constant-time byte comparison (length is not secret: tokens have a known shape).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The whole file. Every table is optional; an empty file is a valid configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub daemon: DaemonConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub company: CompanyConfig,
    #[serde(default)]
    pub dispatch: DispatchConfig,
    /// `[[modem]]`: GSM modems, each its own route.
    #[serde(default, rename = "modem")]
    pub modems: Vec<ModemConfig>,
    /// `[[android]]`: phones running the SMS Gateway for Android app, each its own route.
    #[serde(default, rename = "android")]
    pub androids: Vec<AndroidConfig>,
    /// `[[http_sms]]`: HTTP SMS apps and providers described by templates, each its own route.
    #[serde(default)]
    pub http_sms: Vec<HttpSmsConfig>,
    /// `[[email]]`: SMTP accounts, one per area (facturas, tickets, clientes, todo).
    #[serde(default)]
    pub email: Vec<EmailConfig>,
    /// `[email_notify]`: who else is mailed about tickets.
    #[serde(default)]
    pub email_notify: EmailNotifyConfig,
    /// `[webhooks]`: the listener phones call back.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// `[routing]`: how messages are spread over the routes of a channel.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// `[rules]`: keyword auto-replies and their templates (editable at run time).
    #[serde(default)]
    pub rules: rules::Settings,
    /// `[windows]`: delivery windows and holidays.
    #[serde(default)]
    pub windows: rules::WindowsConfig,
    /// `[[groups]]`: operator groups alerted about new tickets.
    #[serde(default)]
    pub groups: Vec<rules::GroupConfig>,
    /// `[directory]`: where customers come from (CSV columns, live lookup in the billing system).
    #[serde(default)]
    pub directory: directory::DirectoryConfig,

    /// `[whatsapp]`: the WhatsApp Cloud API channel (one business phone number).
    #[serde(default)]
    pub whatsapp: Option<WhatsappConfig>,

    /// `[events.<type>]`: which channels carry a billing event, in order, and what each sends.
    #[serde(default)]
    pub events: EventsConfig,

    /// `[metrics]`: a loopback listener serving `GET /metrics` without the admin token.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `[metrics]`: `GET /metrics` is always on the admin listener (with the token); `listen`
/// adds a listener that serves it without one, for a Prometheus on the same box.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `127.0.0.1:9464`; loopback addresses only (no token is asked there). Off when unset.
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// The listener's address, if set and a loopback address.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        let Some(listen) = self.listen.as_deref() else {
            return Ok(None);
        };
        let addr: SocketAddr = listen
            .parse()
            .map_err(|_| format!("`{listen}` is not an address like 127.0.0.1:9464"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "`{listen}` is not a loopback address: this listener asks for no token, so it \
                 only listens on 127.0.0.1 or [::1]; scrape GET /metrics on the admin listener \
                 with the token from elsewhere"
            ));
        }
        Ok(Some(addr))
    }
}

/// `[[modem]]`: one GSM modem on a serial port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModemConfig {
    /// Unique name, shown in logs and on each message (`modem1`).
    pub name: String,
    /// Serial device; prefer the stable `/dev/serial/by-id/…` path.
    pub device: PathBuf,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// SIM PIN, if the SIM asks for one. Tried at most once per value.
    #[serde(default)]
    pub pin: Option<Secret>,
    /// Message storage: `SM` (SIM) or `ME` (modem memory).
    #[serde(default = "default_storage")]
    pub storage: String,
    /// SMS centre number to set; by default the SIM's own is used.
    #[serde(default)]
    pub smsc: Option<String>,
    /// Ask for delivery reports.
    #[serde(default = "yes")]
    pub status_reports: bool,
    /// Seconds between signal/registration checks.
    #[serde(default = "default_health_interval")]
    pub health_interval_secs: u64,
    /// Seconds between sweeps of the SIM for messages whose notice was missed.
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval_secs: u64,
    /// How long the network keeps trying to deliver, in minutes (0: the network's default).
    #[serde(default = "default_validity")]
    pub validity_minutes: u32,
    /// Replace accents that need Unicode (á→a) so texts stay in cheaper 7-bit SMS.
    #[serde(default)]
    pub transliterate: bool,
    /// Most messages this route may start in a time window (`"100/hour"`); none by default.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// USSD code that asks the network for the prepaid SIM's credit (`"*444#"`); none: no check.
    #[serde(default)]
    pub balance_ussd: Option<String>,
    /// Regex with exactly one capture group, the amount in the answer (`Saldo \$ ?([\d.,]+)`);
    /// by default the first amount after a `$`.
    #[serde(default)]
    pub balance_pattern: Option<String>,
    /// Hours between credit checks (fractions allowed); the first is at start.
    #[serde(default = "default_balance_interval")]
    pub balance_interval_hours: f64,
    /// Alert the on-duty group when the credit falls below this many pesos (once per crossing).
    #[serde(default)]
    pub balance_alert_below: Option<f64>,
    /// Seconds the network may take to answer a USSD request.
    #[serde(default = "default_ussd_timeout")]
    pub ussd_timeout_secs: u64,
}

fn default_ussd_timeout() -> u64 {
    30
}

/// The balance pattern when the config gives none: the first amount after a `$`.
pub const DEFAULT_BALANCE_PATTERN: &str = r"\$\s*(-?[0-9](?:[0-9.,]*[0-9])?)";

fn default_balance_interval() -> f64 {
    12.0
}

fn default_baud() -> u32 {
    115_200
}
fn default_storage() -> String {
    "SM".to_string()
}
fn yes() -> bool {
    true
}
fn default_health_interval() -> u64 {
    60
}
fn default_sweep_interval() -> u64 {
    300
}
fn default_validity() -> u32 {
    4 * 24 * 60
}

impl ModemConfig {
    /// A modem with every default, for `demo` and tests.
    pub fn new(name: &str, device: PathBuf) -> ModemConfig {
        ModemConfig {
            name: name.to_string(),
            device,
            baud: default_baud(),
            pin: None,
            storage: default_storage(),
            smsc: None,
            status_reports: true,
            health_interval_secs: default_health_interval(),
            sweep_interval_secs: default_sweep_interval(),
            validity_minutes: default_validity(),
            transliterate: false,
            rate_limit: None,
            balance_ussd: None,
            balance_pattern: None,
            balance_interval_hours: default_balance_interval(),
            balance_alert_below: None,
            ussd_timeout_secs: default_ussd_timeout(),
        }
    }

    /// The compiled balance pattern (the configured one, else [`DEFAULT_BALANCE_PATTERN`]).
    pub fn balance_regex(&self) -> Result<regex_lite::Regex, String> {
        let pattern = self
            .balance_pattern
            .as_deref()
            .unwrap_or(DEFAULT_BALANCE_PATTERN);
        let re = regex_lite::Regex::new(pattern).map_err(|e| {
            format!(
                "`{pattern}` is not a valid regex: {}",
                e.to_string().lines().last().unwrap_or("")
            )
        })?;
        match re.captures_len() - 1 {
            1 => Ok(re),
            n => Err(format!(
                "`{pattern}` has {n} capture groups; it needs exactly one, around the amount \
                 (use (?:…) for other groups)"
            )),
        }
    }

    /// `balance_alert_below` in cents.
    pub fn balance_alert_below_cents(&self) -> Option<i64> {
        self.balance_alert_below.map(|p| (p * 100.0).round() as i64)
    }
}

/// A route's rate limit: at most `count` messages started in any window of `per`.
/// Written `"120/hour"`, `"10/minute"`, `"2/second"` or with a number of seconds, `"10/30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: std::time::Duration,
}

impl RateLimit {
    /// Parses the config form; the error says what is accepted.
    pub fn parse(text: &str) -> Result<RateLimit, String> {
        let bad = || {
            format!(
                "`{text}` is not a rate like \"120/hour\", \"300/24h\", \"10/minute\", \"2/second\" or \"10/30s\""
            )
        };
        let (count, unit) = text.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let unit = unit.trim();
        let secs = match unit {
            "second" | "sec" | "s" => 1,
            "minute" | "min" | "m" => 60,
            "hour" | "h" => 3600,
            "day" | "d" => 86_400,
            // "300/24h": N every H hours (up to a week).
            _ if unit.ends_with('h') => unit
                .strip_suffix('h')
                .and_then(|n| n.trim().parse::<u64>().ok())
                .filter(|n| *n > 0 && *n <= 168)
                .map(|n| n * 3600)
                .ok_or_else(bad)?,
            _ => unit
                .strip_suffix('s')
                .and_then(|n| n.trim().parse::<u64>().ok())
                .filter(|n| *n > 0 && *n <= 86_400)
                .ok_or_else(bad)?,
        };
        if count == 0 {
            return Err(format!(
                "`{text}` allows no message at all; remove the key for no limit"
            ));
        }
        Ok(RateLimit {
            count,
            per: std::time::Duration::from_secs(secs),
        })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per.as_secs() {
            1 => write!(f, "{}/second", self.count),
            60 => write!(f, "{}/minute", self.count),
            3600 => write!(f, "{}/hour", self.count),
            86_400 => write!(f, "{}/day", self.count),
            s => write!(f, "{}/{s}s", self.count),
        }
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RateLimit::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `[[android]]`: one Android phone running the "SMS Gateway for Android" app
/// (capcom6/android-sms-gateway) with its Local Server on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndroidConfig {
    /// Unique route name (`phone1`), at most 16 characters: it is part of the webhook ids
    /// registered on the phone.
    pub name: String,
    /// The Local Server address the app shows, `http://192.168.1.50:8080`.
    pub url: String,
    /// Basic-auth user of the Local Server (the app shows it; `sms` by default).
    #[serde(default = "default_android_user")]
    pub username: String,
    /// Basic-auth password of the Local Server.
    pub password: Secret,
    /// SIM slot to send from (1-3); the phone's default SIM when unset.
    #[serde(default)]
    pub sim: Option<u8>,
    /// Ask the phone for delivery reports (messages then go from `sent` to `delivered`).
    #[serde(default = "yes")]
    pub delivery_reports: bool,
    /// Send numbers the app's own validation would refuse (it accepts Argentine mobiles only
    /// in the `+549…` form).
    #[serde(default)]
    pub skip_phone_validation: bool,
    /// Seconds between `GET /health` checks of the phone.
    #[serde(default = "default_health_interval")]
    pub health_interval_secs: u64,
    /// Longest wait for one answer of the phone.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// The address the phone should call with its webhooks, ending in
    /// `/webhooks/android/<name>`; needs `[webhooks] listen` and `signing_key`. Without it
    /// states are followed by polling only, and received SMS arrive only with
    /// `inbound = "poll"`.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// The app's webhook signing key (Settings → Webhooks → Signing key).
    #[serde(default)]
    pub signing_key: Option<Secret>,
    /// Most messages this route may start in a time window (`"120/hour"`).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// How received SMS reach pasarela: `webhook` (the phone calls `webhook_url`) or `poll`
    /// (pasarela reads the phone's inbox, `GET /inbox`, every `poll_interval_secs`: for
    /// networks where the phone cannot call pasarela).
    #[serde(default)]
    pub inbound: Inbound,
    /// Seconds between reads of the phone's inbox with `inbound = "poll"`.
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: u64,
    /// PEM file of a CA trusted (besides the Mozilla roots) for an `https://` url.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `[[android]] inbound`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Inbound {
    #[default]
    Webhook,
    Poll,
}

fn default_poll_interval() -> u64 {
    10
}

fn default_android_user() -> String {
    "sms".to_string()
}
fn default_request_timeout() -> u64 {
    30
}

/// `[[http_sms]]`: an SMS route spoken as one templated HTTP request, for phone apps with a
/// plain `GET http://IP:PORT/…?phone=…&message=…` API and similar HTTP SMS providers.
/// With `provider` set, the preset (`src/transport/http_sms/preset.rs`) fills every key left
/// unset here; any key written here overrides it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSmsConfig {
    pub name: String,
    /// A built-in provider preset: `smsmasivos`.
    #[serde(default)]
    pub provider: Option<String>,
    /// URL template; `{phone}`, `{message}` and `{id}` are replaced, percent-encoded. Empty
    /// only when the preset gives it.
    #[serde(default)]
    pub url: String,
    /// `GET` (parameters in the query) or `POST` (parameters in the body); default GET.
    #[serde(default)]
    pub method: Option<HttpMethod>,
    /// Parameter name → value template, e.g. `phone = "{phone}"`, `message = "{message}"`;
    /// `{username}` and `{password}` put the credentials in a parameter instead of basic auth.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
    /// How POST parameters are sent: `form` (urlencoded) or `json` (an object of strings).
    #[serde(default)]
    pub post_as: Option<PostAs>,
    /// How `{phone}` is written: `e164` (`+5491123456789`), `digits` (`5491123456789`) or
    /// `national` (`1123456789`: no country code, no 0, no 15); default e164.
    #[serde(default)]
    pub phone_format: Option<PhoneFormat>,
    /// The character set parameters are percent-encoded in: `utf-8` (default) or `latin1`.
    #[serde(default)]
    pub encoding: Option<TextEncoding>,
    /// A text with characters `encoding` cannot write: `refuse` (the message fails, naming
    /// them; default) or `transliterate` (replaced by their plain form, noted on the message).
    #[serde(default)]
    pub unencodable: Option<Unencodable>,
    /// Basic auth, or the provider's user and password where a template names them.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// A 2xx answer counts as sent only if its body contains this text (e.g. `OK`).
    #[serde(default)]
    pub success_contains: Option<String>,
    /// How the provider's answer reads (sent, refused for good, try later); see
    /// [`HttpSmsAnswer`]. Takes the place of `success_contains`.
    #[serde(default)]
    pub answer: Option<HttpSmsAnswer>,
    #[serde(default = "default_request_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// PEM file of a CA trusted (besides the Mozilla roots) for an `https://` url.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The secret the provider's push calls carry (`?token=…` or the `X-Token` header) at
    /// `/webhooks/http_sms/<name>`; without it the route takes no pushes.
    #[serde(default)]
    pub inbound_token: Option<Secret>,
    /// The push's parameter names (the preset's by default).
    #[serde(default)]
    pub inbound: Option<HttpSmsInbound>,
    /// URL template of the provider's balance query (`{username}`, `{password}`); its answer
    /// is the credit left as a whole number.
    #[serde(default)]
    pub balance_url: Option<String>,
    /// URL template of the package's expiry query; its answer is a date (`2026-12-31`).
    #[serde(default)]
    pub expiry_url: Option<String>,
    /// Credit below this alerts the ticket alert groups on duty, once per crossing.
    #[serde(default)]
    pub credit_alert_below: Option<i64>,
    /// Reads received SMS by PULL every this many seconds (off when unset): `poll_url` lists
    /// the unread ones, `poll_ack_url` lists them again marking them read.
    #[serde(default)]
    pub poll_secs: Option<u64>,
    /// URL template (`{username}`, `{password}`) of the provider's list of unread received SMS,
    /// one per line: sender, text, date, id, separated by tabs.
    #[serde(default)]
    pub poll_url: Option<String>,
    /// The same list, asking the provider to mark what it lists as read.
    #[serde(default)]
    pub poll_ack_url: Option<String>,
}

/// `[http_sms.inbound]`: the names of the parameters a provider's push carries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSmsInbound {
    /// The sender's number.
    #[serde(default)]
    pub from: Option<String>,
    /// The text.
    #[serde(default)]
    pub text: Option<String>,
    /// The provider's id of the message, when it sends one (repeats are recognised by it).
    #[serde(default)]
    pub id: Option<String>,
}

/// `[http_sms.answer]`: how a 2xx answer's body reads. The body (trimmed; a bare code such
/// as `-1` read as `-1;`) is compared with each list's prefixes in this order: `ok`,
/// `permanent`, `temporary`. An answer none of them matches is "sent, unconfirmed".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSmsAnswer {
    #[serde(default)]
    pub ok: Vec<String>,
    #[serde(default)]
    pub permanent: Vec<String>,
    #[serde(default)]
    pub temporary: Vec<String>,
    /// An HTML page (a 2xx starting with `<`): `temporary`, `permanent` or `unconfirmed`.
    #[serde(default)]
    pub html: Option<AnswerReading>,
    /// An empty 2xx body: `temporary`, `permanent` or `unconfirmed`.
    #[serde(default)]
    pub empty: Option<AnswerReading>,
}

/// What an answer means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerReading {
    /// Not sent; it waits and is tried again.
    Temporary,
    /// Not sent; it fails with the answer quoted.
    Permanent,
    /// Counted as sent, never resent, the answer kept with it.
    Unconfirmed,
}

/// The character set of an HTTP route's parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TextEncoding {
    #[default]
    #[serde(rename = "utf-8", alias = "utf8", alias = "UTF-8")]
    Utf8,
    /// ISO-8859-1.
    #[serde(
        rename = "latin1",
        alias = "iso-8859-1",
        alias = "ISO-8859-1",
        alias = "latin-1"
    )]
    Latin1,
}

/// What to do with characters the route's encoding cannot write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unencodable {
    #[default]
    Refuse,
    Transliterate,
}

/// `[email_notify]`: the operator's address, mailed (from the `tickets` account) when a ticket
/// is opened or closed, beside the customer. Checked by the email kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailNotifyConfig {
    #[serde(default)]
    pub operator: Option<String>,
}

/// `[[email]]`: one SMTP account. Its name is its route name; `areas` say which mail it
/// carries (`todo` is the fallback account). Checked by the email kind
/// (`src/transport/email/config.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub name: String,
    /// `facturas`, `tickets`, `clientes`, `todo`.
    #[serde(default)]
    pub areas: Vec<String>,
    /// `Facturación Fibra Sur <facturas@fibrasur.com.ar>` or a bare address.
    pub from: String,
    pub host: String,
    /// Default by `security`: 587 (starttls), 465 (tls), 25 (none).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: EmailSecurity,
    /// `security = "none"` sends in plain text only with this set to `true`.
    #[serde(default)]
    pub allow_plain: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file holding the password (first line), instead of `password`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `"300/24h"`, `"100/hour"`: mails beyond it wait in the queue.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Where `POST /api/email/test` sends by default.
    #[serde(default)]
    pub test_to: Option<String>,
    /// PEM file of a CA trusted (besides the Mozilla roots) for this server.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The name said in EHLO; default: the box's host name.
    #[serde(default)]
    pub ehlo_name: Option<String>,
    #[serde(default = "default_request_timeout")]
    pub timeout_secs: u64,
}

/// How an `[[email]]` account talks to its server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailSecurity {
    /// STARTTLS required (587): never continues in plain text.
    #[default]
    Starttls,
    /// Implicit TLS (465).
    Tls,
    /// Plain text; needs `allow_plain = true`.
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum HttpMethod {
    #[default]
    #[serde(alias = "get")]
    GET,
    #[serde(alias = "post")]
    POST,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PostAs {
    #[default]
    Form,
    Json,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhoneFormat {
    #[default]
    E164,
    Digits,
    /// The national significant number without the country code (Argentina: no 0, no 9/15).
    National,
}

/// `[webhooks]`: the listener that phones call back. It serves only webhook routes
/// (`/webhooks/android/<name>`), each checked by its signature, so it may listen on the LAN
/// while the admin API stays on 127.0.0.1.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// `0.0.0.0:8090`, or the box's LAN address; off when unset.
    pub listen: Option<String>,
    /// PEM certificate chain: with `tls_key`, the listener serves https (reloaded on SIGHUP).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// `[webhooks.alertmanager]`: Prometheus Alertmanager opens and resolves outages by zone at
    /// `/webhooks/alertmanager`; off when unset.
    pub alertmanager: Option<AlertmanagerConfig>,
}

/// `[webhooks.alertmanager]`: the Alertmanager webhook receiver (`crate::outage::alertmanager`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Bearer token Alertmanager sends (`http_config.authorization.credentials`); 16+ characters.
    pub token: Secret,
    /// The alert label naming the zone; default `zona`.
    #[serde(default = "default_zona")]
    pub zone_label: String,
    /// The customer field the label's value is matched against; default `zona`.
    #[serde(default = "default_zona")]
    pub field: String,
}

fn default_zona() -> String {
    "zona".to_string()
}

/// `[routing]`: which routes of a channel carry its messages.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    pub policy: RoutePolicy,
    /// `failover`: the routes that carry the traffic while any of them is up. Default: every
    /// modem.
    pub primary: Option<Vec<String>>,
    /// `failover`: the routes used only while every primary route is down. Default: every
    /// route that is not primary.
    pub backup: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutePolicy {
    /// Every healthy route takes messages.
    #[default]
    Spread,
    /// Primary routes take messages; backups only while no primary is up.
    Failover,
}

impl Config {
    /// Every SMS route name, in config order: modems, phones, HTTP routes.
    pub fn sms_route_names(&self) -> Vec<&str> {
        self.modems
            .iter()
            .map(|m| m.name.as_str())
            .chain(self.androids.iter().map(|a| a.name.as_str()))
            .chain(self.http_sms.iter().map(|h| h.name.as_str()))
            .collect()
    }

    /// Routing tier of an SMS route: 0 carries traffic first; 1 only when no tier-0 route is
    /// up. Everything is tier 0 under `spread`.
    pub fn route_tier(&self, name: &str) -> u8 {
        let r = &self.routing;
        if r.policy == RoutePolicy::Spread {
            return 0;
        }
        let primary = match &r.primary {
            Some(list) => list.iter().any(|n| n == name),
            None => self.modems.iter().any(|m| m.name == name),
        };
        if primary { 0 } else { 1 }
    }

    /// The rate limit configured on a route, if any.
    pub fn route_rate_limit(&self, name: &str) -> Option<RateLimit> {
        self.modems
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.rate_limit)
            .or_else(|| {
                self.androids
                    .iter()
                    .find(|a| a.name == name)
                    .and_then(|a| a.rate_limit)
            })
            .or_else(|| {
                self.http_sms
                    .iter()
                    .find(|h| h.name == name)
                    .and_then(|h| h.rate_limit)
            })
            .or_else(|| {
                self.whatsapp
                    .as_ref()
                    .filter(|_| name == "whatsapp")
                    .and_then(|w| w.rate_limit)
            })
            .or_else(|| {
                self.email
                    .iter()
                    .find(|e| e.name == name)
                    .and_then(|e| e.rate_limit)
            })
    }
}

/// `[whatsapp]`: one business phone number on Meta's WhatsApp Cloud API. Its route is named
/// `whatsapp`. The kind checks the table (`crate::transport::whatsapp`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappConfig {
    pub phone_number_id: String,
    /// WhatsApp Business Account id, for template sync.
    #[serde(default)]
    pub waba_id: Option<String>,
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// A file holding the access token (one line), instead of `access_token`.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// Verifies `X-Hub-Signature-256` on webhooks.
    #[serde(default)]
    pub app_secret: Option<Secret>,
    /// Echoed on the webhook's `GET` handshake when Meta sends this token.
    #[serde(default)]
    pub verify_token: Option<Secret>,
    #[serde(default = "default_wa_version")]
    pub api_version: String,
    #[serde(default = "default_wa_base")]
    pub base_url: String,
    #[serde(default = "default_wa_rate")]
    pub rate_limit: Option<RateLimit>,
    /// Extra CA certificate for `base_url` (a local mock with its own certificate).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_request_timeout")]
    pub timeout_secs: u64,
    /// How often the token is checked (a cheap authorized GET), in seconds.
    #[serde(default = "default_wa_health")]
    pub health_interval_secs: u64,
    /// The approved template a text goes out as when the customer's 24-hour window is closed;
    /// its one body parameter is the text. Unset: such a text fails with the reason.
    #[serde(default)]
    pub outside_window_template: Option<WhatsappTemplateRef>,
    /// Invoice PDFs given by link are fetched by pasarela and uploaded to Meta
    /// (`POST /{phone_number_id}/media`) once per link, then sent by media id; for billing
    /// systems Meta cannot reach (on the LAN, behind a login or a firewall). Off: Meta fetches
    /// the link itself.
    #[serde(default)]
    pub upload_pdfs: bool,
}

/// A template by name and language (`{ name = "aviso", language = "es_AR" }`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WhatsappTemplateRef {
    pub name: String,
    pub language: String,
}

/// `[events]`: billing events' channels. Checked by `crate::events`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    pub invoice: Option<EventChannels>,
}

/// `[events.invoice]`: the channels that carry the event, in order (the next one carries it
/// when one fails permanently), and what each sends.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EventChannels {
    pub channels: Vec<String>,
    #[serde(default)]
    pub whatsapp_template: Option<WhatsappTemplateMapping>,
    #[serde(default)]
    pub sms_text: Option<String>,
}

/// A WhatsApp template with our `%variables%` mapped to its body parameters `{{1}}`, `{{2}}`…
/// in order, and an optional document header (`%pdf_url%`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WhatsappTemplateMapping {
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub body: Vec<String>,
    #[serde(default)]
    pub document: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
}

fn default_wa_health() -> u64 {
    60
}

fn default_wa_version() -> String {
    "v23.0".into()
}

fn default_wa_base() -> String {
    "https://graph.facebook.com".into()
}

fn default_wa_rate() -> Option<RateLimit> {
    Some(RateLimit {
        count: 80,
        per: std::time::Duration::from_secs(1),
    })
}

/// Whether `url` is an `http://host…` or `https://host…` address (the form every outbound URL
/// key takes).
pub fn http_url(url: &str) -> bool {
    url.strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
}

/// `[daemon]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Holds the SQLite database.
    pub state_dir: PathBuf,
    pub log_level: LogLevel,
    /// Seconds that in-flight sends get to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Delivered, failed and cancelled messages older than this are deleted (0 keeps all).
    pub retention_days: u32,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            state_dir: PathBuf::from("/var/lib/pasarela"),
            log_level: LogLevel::Info,
            shutdown_grace_secs: 10,
            retention_days: 365,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn to_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Kept as text so `validate()` can name the bad value and its line.
    pub listen: String,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    /// PEM certificate chain: with `tls_key`, the admin listener serves https.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:8080".to_string(),
            token: None,
            token_file: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl AdminConfig {
    /// The listen address; valid after `validate()`.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| ConfigError {
            key: "admin.listen".into(),
            line: None,
            message: format!("`{}` is not an address like 127.0.0.1:8080", self.listen),
        })
    }
}

/// `[company]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompanyConfig {
    /// The `%empresa%` of templates.
    pub name: String,
    pub timezone: String,
    /// ISO 3166 region used to read national phone numbers.
    pub country: String,
    pub language: Language,
    /// Read 10-digit national numbers without `0`/`15` (`1123456789`) as mobiles.
    /// `None` means "the country's default" (on for AR).
    pub assume_mobile: Option<bool>,
}

impl Default for CompanyConfig {
    fn default() -> Self {
        CompanyConfig {
            name: "Mi ISP".to_string(),
            timezone: "America/Argentina/Buenos_Aires".to_string(),
            country: "AR".to_string(),
            language: Language::Es,
            assume_mobile: None,
        }
    }
}

impl CompanyConfig {
    pub fn phone_context(&self) -> crate::phone::PhoneContext {
        crate::phone::PhoneContext::new(&self.country, self.assume_mobile)
            .unwrap_or_else(|_| crate::phone::PhoneContext::argentina())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Es,
    En,
}

/// `[dispatch]`: how the outbox is worked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// Attempts before a temporarily failing message is failed for good.
    pub max_attempts: u32,
    /// First retry delay; doubles on each attempt.
    pub retry_base_secs: u64,
    /// Cap on the retry delay.
    pub retry_max_secs: u64,
    /// Longest text accepted, counted in SMS parts.
    pub max_parts: u32,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            max_attempts: 8,
            retry_base_secs: 10,
            retry_max_secs: 1800,
            max_parts: 10,
        }
    }
}

/// A configuration problem: which key, where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "{}: {}", self.key, self.message)?;
        }
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A config file as loaded: the parsed values and the text they came from (for line numbers).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub source: String,
    pub path: Option<PathBuf>,
}

impl Config {
    /// Parses `text` into its tables without checking values (serde's own errors, which name
    /// key and line, still apply). [`crate::setup::from_toml`] parses and checks everything.
    pub fn parse(text: &str) -> Result<Loaded, ConfigErrors> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigErrors(vec![toml_error(text, &e)]))?;
        Ok(Loaded {
            config,
            source: text.to_string(),
            path: None,
        })
    }

    /// Reads the file at `path` and [`Config::parse`]s it.
    pub fn read(path: &Path) -> Result<Loaded, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                key: String::new(),
                line: None,
                message: format!("cannot read {}: {e}", path.display()),
            }])
        })?;
        let mut loaded = Config::parse(&text)?;
        loaded.path = Some(path.to_path_buf());
        Ok(loaded)
    }
}

impl Loaded {
    /// Wraps a config built in code (tests, `demo`).
    pub fn from_config(config: Config) -> Loaded {
        Loaded {
            config,
            source: String::new(),
            path: None,
        }
    }

    /// An error about `key`, with the line where the file sets it.
    pub fn err(&self, key: &str, message: String) -> ConfigError {
        ConfigError {
            key: key.to_string(),
            line: locate_key(&self.source, key),
            message,
        }
    }

    /// Checks values serde cannot: addresses, time zones, countries, ranges, route names and
    /// routing. Only the config's own checks: [`crate::setup::check`] adds each feature's
    /// (templates, windows, the directory, each transport kind's table).
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let c = &self.config;
        let mut errors = Vec::new();
        if c.admin.listen.parse::<SocketAddr>().is_err() {
            errors.push(self.err(
                "admin.listen",
                format!("`{}` is not an address like 127.0.0.1:8080", c.admin.listen),
            ));
        }
        if let Err(e) = c.metrics.listen_addr() {
            errors.push(self.err("metrics.listen", e));
        }
        if c.admin.token.is_some() && c.admin.token_file.is_some() {
            errors.push(self.err(
                "admin.token_file",
                "set either admin.token or admin.token_file, not both".to_string(),
            ));
        }
        if let Some(token) = &c.admin.token
            && token.expose().trim().len() < 16
        {
            errors.push(
                self.err(
                    "admin.token",
                    "must be at least 16 characters; generate one with `openssl rand -hex 24`"
                        .to_string(),
                ),
            );
        }
        if let Some(am) = &c.webhooks.alertmanager {
            if am.token.expose().trim().len() < 16 {
                errors.push(
                    self.err(
                        "webhooks.alertmanager.token",
                        "must be at least 16 characters; generate one with `openssl rand -hex 24`"
                            .to_string(),
                    ),
                );
            }
            if c.webhooks.listen.is_none() {
                errors.push(self.err(
                    "webhooks.alertmanager",
                    "needs `listen = \"0.0.0.0:8090\"` under [webhooks]: the listener Alertmanager \
                     calls"
                        .to_string(),
                ));
            }
            for (key, value, upper) in [
                ("zone_label", &am.zone_label, true),
                ("field", &am.field, false),
            ] {
                let ok = !value.is_empty()
                    && value.len() <= 64
                    && value.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || b == b'_'
                            || (upper && b.is_ascii_uppercase())
                    });
                if !ok {
                    errors.push(self.err(
                        &format!("webhooks.alertmanager.{key}"),
                        format!(
                            "`{value}` must be a name of {}letters, digits and `_`",
                            if upper { "" } else { "lower-case " }
                        ),
                    ));
                }
            }
        }
        if c.company.timezone.parse::<chrono_tz::Tz>().is_err() {
            errors.push(self.err(
                "company.timezone",
                format!(
                    "`{}` is not a time zone name like America/Argentina/Buenos_Aires (the \
                     Americas' zones and UTC are built in)",
                    c.company.timezone
                ),
            ));
        }
        if crate::phone::PhoneContext::new(&c.company.country, c.company.assume_mobile).is_err() {
            errors.push(self.err(
                "company.country",
                format!(
                    "`{}` is not a two-letter country code like AR, UY or CL",
                    c.company.country
                ),
            ));
        }
        if c.company.name.trim().is_empty() {
            errors.push(self.err(
                "company.name",
                "must not be empty: it is the %empresa% of every template".to_string(),
            ));
        }
        if c.daemon.state_dir.as_os_str().is_empty() || !c.daemon.state_dir.is_absolute() {
            errors.push(self.err(
                "daemon.state_dir",
                format!(
                    "`{}` must be an absolute path like /var/lib/pasarela",
                    c.daemon.state_dir.display()
                ),
            ));
        }
        let d = &c.dispatch;
        if d.max_attempts == 0 || d.max_attempts > 100 {
            errors.push(self.err(
                "dispatch.max_attempts",
                format!("{} is out of range: use 1 to 100", d.max_attempts),
            ));
        }
        if d.retry_base_secs == 0 || d.retry_base_secs > d.retry_max_secs {
            errors.push(self.err(
                "dispatch.retry_base_secs",
                "must be at least 1 and not more than dispatch.retry_max_secs".to_string(),
            ));
        }
        if d.retry_max_secs > 86_400 {
            errors.push(self.err(
                "dispatch.retry_max_secs",
                format!("{} is more than a day: use at most 86400", d.retry_max_secs),
            ));
        }
        if d.max_parts == 0 || d.max_parts > 255 {
            errors.push(self.err(
                "dispatch.max_parts",
                format!(
                    "{} is out of range: use 1 to 255 (SMS allow 255 parts)",
                    d.max_parts
                ),
            ));
        }
        let mut names = std::collections::HashSet::new();
        self.validate_routes(&mut names, &mut errors);
        errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Route names, `[webhooks]` and `[routing]`. Each kind checks the rest of its own table
    /// (`Kind::check`).
    fn validate_routes(
        &self,
        names: &mut std::collections::HashSet<String>,
        errors: &mut Vec<ConfigError>,
    ) {
        let c = &self.config;
        let valid_name = |n: &str| {
            !n.trim().is_empty()
                && n.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_".contains(ch))
        };
        for (section, cert, key) in [
            ("webhooks", &c.webhooks.tls_cert, &c.webhooks.tls_key),
            ("admin", &c.admin.tls_cert, &c.admin.tls_key),
        ] {
            match (cert, key) {
                (Some(_), None) => errors.push(self.err(
                    &format!("{section}.tls_cert"),
                    format!("is set but {section}.tls_key is not: set both or neither"),
                )),
                (None, Some(_)) => errors.push(self.err(
                    &format!("{section}.tls_key"),
                    format!("is set but {section}.tls_cert is not: set both or neither"),
                )),
                _ => {}
            }
        }
        if c.webhooks.tls_cert.is_some() && c.webhooks.listen.is_none() {
            errors.push(self.err(
                "webhooks.tls_cert",
                "needs `listen` under [webhooks]: there is no listener to serve https".to_string(),
            ));
        }
        if let Some(listen) = c.webhooks.listen.as_deref()
            && listen.parse::<SocketAddr>().is_err()
        {
            errors.push(self.err(
                "webhooks.listen",
                format!("`{listen}` is not an address like 0.0.0.0:8090"),
            ));
        }
        for (table, name, max) in c
            .modems
            .iter()
            .map(|m| ("modem", &m.name, 64))
            .chain(c.androids.iter().map(|a| ("android", &a.name, 16)))
            .chain(c.http_sms.iter().map(|h| ("http_sms", &h.name, 64)))
            .chain(c.email.iter().map(|e| ("email", &e.name, 64)))
        {
            let key = format!("{table}.name");
            if !valid_name(name) || name.len() > max {
                errors.push(self.err(
                    &key,
                    format!("`{name}` must be 1 to {max} letters, digits, - or _"),
                ));
            } else if !names.insert(name.clone()) {
                errors.push(self.err(
                    &key,
                    format!("`{name}` is already the name of another route"),
                ));
            }
        }
        let r = &c.routing;
        let all = c.sms_route_names();
        for (key, list) in [
            ("routing.primary", &r.primary),
            ("routing.backup", &r.backup),
        ] {
            if let Some(list) = list {
                if r.policy != RoutePolicy::Failover {
                    errors
                        .push(self.err(key, "only applies with policy = \"failover\"".to_string()));
                }
                for n in list {
                    if !all.contains(&n.as_str()) {
                        errors.push(self.err(
                            key,
                            format!(
                                "`{n}` is not the name of a [[modem]], [[android]] or [[http_sms]] route"
                            ),
                        ));
                    }
                }
            }
        }
        if r.policy == RoutePolicy::Failover {
            if let (Some(p), Some(b)) = (&r.primary, &r.backup)
                && let Some(n) = p.iter().find(|n| b.contains(n))
            {
                errors.push(self.err(
                    "routing.backup",
                    format!("`{n}` is listed as both primary and backup"),
                ));
            }
            if !all.iter().any(|n| c.route_tier(n) == 0) {
                let message = match &r.primary {
                    Some(_) => {
                        "names no route: list the routes that carry the traffic, e.g. \
                                primary = [\"modem1\"]"
                    }
                    None => {
                        "is needed when there is no [[modem]]: list the routes that carry \
                             the traffic, e.g. primary = [\"phone1\"]"
                    }
                };
                errors.push(self.err("routing.primary", message.to_string()));
            }
            if let Some(b) = &r.backup {
                for n in &all {
                    if c.route_tier(n) != 0 && !b.iter().any(|x| x == n) {
                        errors.push(self.err(
                            "routing.backup",
                            format!("route `{n}` is in neither routing.primary nor routing.backup"),
                        ));
                    }
                }
            }
        }
    }

    /// Checks that touch the file system: the token file, the state directory and the files
    /// the config names (what `run` checks at start, and `check-config --strict`).
    /// Returns warnings (not fatal) on success.
    pub fn check_environment(&self) -> Result<Vec<String>, ConfigErrors> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        if let Some(path) = &self.config.admin.token_file {
            match read_token_file(path) {
                Ok((_, world_readable)) => {
                    if world_readable {
                        warnings.push(format!(
                            "admin.token_file: {} can be read by every user; run `chmod 640 {}`",
                            path.display(),
                            path.display()
                        ));
                    }
                }
                Err(message) => errors.push(self.err("admin.token_file", message)),
            }
        }
        if let Err(message) = check_dir_writable(&self.config.daemon.state_dir) {
            errors.push(self.err("daemon.state_dir", message));
        }
        self.check_named_files(&mut errors, &mut warnings, false);
        if errors.is_empty() {
            Ok(warnings)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The checks of the files the config names (CA files, certificate and key pairs) and of
    /// its webhook URLs, without the box's readiness (`check-config` without `--strict`): a file
    /// this user may not read is a warning (`doctor` checks it for the service user).
    pub fn check_files(&self) -> Result<Vec<String>, ConfigErrors> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        self.check_named_files(&mut errors, &mut warnings, true);
        if errors.is_empty() {
            Ok(warnings)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    fn check_named_files(
        &self,
        errors: &mut Vec<ConfigError>,
        warnings: &mut Vec<String>,
        unreadable_is_warning: bool,
    ) {
        let unreadable = |key: &str, path: &Path, warnings: &mut Vec<String>| -> bool {
            let denied = unreadable_is_warning
                && std::fs::File::open(path)
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
            if denied {
                warnings.push(format!(
                    "{key}: {} cannot be read by this user, so it was not checked \
                     (`sudo pasarela doctor` checks it for the service user)",
                    path.display()
                ));
            }
            denied
        };
        for a in &self.config.androids {
            if let Some(url) = &a.webhook_url
                && url.starts_with("http://")
                && !url.starts_with("http://127.0.0.1")
            {
                warnings.push(format!(
                    "android.webhook_url: the app registers only https:// webhook URLs (but \
                     http://127.0.0.1): {} will be refused by phone {}; serve [webhooks] over \
                     https (tls_cert, tls_key)",
                    crate::net::error::peer_of(url),
                    a.name
                ));
            }
        }
        for (key, path) in self.ca_files() {
            if unreadable(key, path, warnings) {
                continue;
            }
            if let Err(message) = crate::net::tls::load_certs(path) {
                errors.push(self.err(key, message));
            }
        }
        for (section, cert, key) in self.tls_pairs() {
            if unreadable(&format!("{section}.tls_cert"), cert, warnings)
                | unreadable(&format!("{section}.tls_key"), key, warnings)
            {
                continue;
            }
            if let Err((part, message)) = crate::net::tls::load_pair(cert, key) {
                let which = match part {
                    crate::net::tls::PairPart::Cert => "tls_cert",
                    crate::net::tls::PairPart::Key => "tls_key",
                };
                errors.push(self.err(&format!("{section}.{which}"), message));
            }
        }
    }

    /// Every `ca_file` set, with its key (`android.ca_file`, `rules.ticket.forward_ca_file`, …).
    pub fn ca_files(&self) -> Vec<(&'static str, &Path)> {
        let c = &self.config;
        let mut files = Vec::new();
        if let Some(p) = c.directory.http.as_ref().and_then(|h| h.ca_file.as_deref()) {
            files.push(("directory.http.ca_file", p));
        }
        if let Some(p) = c.rules.ticket.forward_ca_file.as_deref() {
            files.push(("rules.ticket.forward_ca_file", p));
        }
        files.extend(
            c.androids
                .iter()
                .filter_map(|a| a.ca_file.as_deref())
                .map(|p| ("android.ca_file", p)),
        );
        files.extend(
            c.http_sms
                .iter()
                .filter_map(|h| h.ca_file.as_deref())
                .map(|p| ("http_sms.ca_file", p)),
        );
        files.extend(
            c.email
                .iter()
                .filter_map(|e| e.ca_file.as_deref())
                .map(|p| ("email.ca_file", p)),
        );
        files
    }

    /// The listeners that serve https: (`webhooks` | `admin`, cert, key).
    pub fn tls_pairs(&self) -> Vec<(&'static str, &Path, &Path)> {
        let c = &self.config;
        let mut pairs = Vec::new();
        if let (Some(cert), Some(key), Some(_)) = (
            &c.webhooks.tls_cert,
            &c.webhooks.tls_key,
            &c.webhooks.listen,
        ) {
            pairs.push(("webhooks", cert.as_path(), key.as_path()));
        }
        if let (Some(cert), Some(key)) = (&c.admin.tls_cert, &c.admin.tls_key) {
            pairs.push(("admin", cert.as_path(), key.as_path()));
        }
        pairs
    }

    /// The admin token from `token` or `token_file`, if any.
    pub fn admin_token(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(t) = &self.config.admin.token {
            return Ok(Some(t.clone()));
        }
        match &self.config.admin.token_file {
            Some(path) => read_token_file(path)
                .map(|(t, _)| Some(t))
                .map_err(|message| self.err("admin.token_file", message)),
            None => Ok(None),
        }
    }
}

/// Reads a token file; returns the token and whether others can read the file.
fn read_token_file(path: &Path) -> Result<(Secret, bool), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.trim();
    if token.len() < 16 {
        return Err(format!(
            "{} holds no token of at least 16 characters",
            path.display()
        ));
    }
    let world_readable = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o004 != 0)
            .unwrap_or(false)
    };
    Ok((Secret::new(token), world_readable))
}

/// The directory exists (or can be created) and a file can be written in it.
fn check_dir_writable(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        return match parent {
            Some(p) if p.exists() => check_dir_writable(p)
                .map_err(|_| format!("{} does not exist and cannot be created", dir.display())),
            _ => Err(format!(
                "{} does not exist; create it for the service user",
                dir.display()
            )),
        };
    }
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let probe = dir.join(format!(".pasarela-write-test-{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "{} is not writable by this user: {e}",
            dir.display()
        )),
    }
}

/// Turns a TOML parse error into a `ConfigError` with the key path and line.
fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map(|span| line_of_offset(text, span.start));
    let message = e.message().trim().to_string();
    let key = e.span().map(|s| key_at(text, s.start)).unwrap_or_default();
    ConfigError { key, line, message }
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The dotted key path (`admin.listen`) whose line holds `offset`, as far as it can be told.
fn key_at(text: &str, offset: usize) -> String {
    let target = line_of_offset(text, offset);
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = section_header(line) {
            section = name;
        }
        if i + 1 == target {
            if section_header(line).is_some() {
                return section;
            }
            if let Some((k, _)) = line.split_once('=') {
                let k = k.trim().trim_matches('"');
                return if section.is_empty() {
                    k.to_string()
                } else {
                    format!("{section}.{k}")
                };
            }
            return section;
        }
    }
    String::new()
}

fn section_header(line: &str) -> Option<String> {
    let line = line.split('#').next().unwrap_or("").trim();
    let inner = line
        .strip_prefix("[[")
        .and_then(|l| l.strip_suffix("]]"))
        .or_else(|| line.strip_prefix('[').and_then(|l| l.strip_suffix(']')))?;
    Some(inner.trim().to_string())
}

/// The 1-based line where the dotted key (`admin.listen`) is set, or its table starts.
pub fn locate_key(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = match dotted.rsplit_once('.') {
        Some((s, k)) => (s, k),
        None => ("", dotted),
    };
    let mut current = String::new();
    let mut section_line = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = section_header(line) {
            current = name;
            if current == section {
                section_line = Some(i + 1);
            }
            continue;
        }
        if current == section
            && let Some((k, _)) = line.split_once('=')
            && k.trim().trim_matches('"') == key
        {
            return Some(i + 1);
        }
    }
    section_line
}
