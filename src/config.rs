//! The TOML configuration: types that mirror its tables, defaults for every optional key, and
//! `validate()`, whose errors name the key, its line in the file and the fix.
//!
//! Secrets (tokens, passwords, PINs) are [`Secret`]s: they print as `***` in `Debug` and
//! `Display`, so a config that reaches a log never leaks them.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
    /// `[webhooks]`: the listener phones call back.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// `[routing]`: how messages are spread over the routes of a channel.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// `[rules]`: keyword auto-replies and their templates (editable at run time).
    #[serde(default)]
    pub rules: crate::rules::Settings,
    /// `[windows]`: delivery windows and holidays.
    #[serde(default)]
    pub windows: crate::rules::window::WindowsConfig,
    /// `[[groups]]`: operator groups alerted about new tickets.
    #[serde(default)]
    pub groups: Vec<crate::rules::GroupConfig>,
    /// `[directory]`: where customers come from (CSV columns, live lookup in the billing system).
    #[serde(default)]
    pub directory: crate::directory::DirectoryConfig,
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
        }
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
                "`{text}` is not a rate like \"120/hour\", \"10/minute\", \"2/second\" or \"10/30s\""
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
    /// `/webhooks/android/<name>`; needs `[webhooks] listen` and `signing_key`. Without it the
    /// phone delivers no inbound SMS and states are followed by polling only.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// The app's webhook signing key (Settings → Webhooks → Signing key).
    #[serde(default)]
    pub signing_key: Option<Secret>,
    /// Most messages this route may start in a time window (`"120/hour"`).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

fn default_android_user() -> String {
    "sms".to_string()
}
fn default_request_timeout() -> u64 {
    30
}

/// `[[http_sms]]`: an SMS route spoken as one templated HTTP request, for phone apps with a
/// plain `GET http://IP:PORT/…?phone=…&message=…` API and similar HTTP SMS providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSmsConfig {
    pub name: String,
    /// URL template; `{phone}`, `{message}` and `{id}` are replaced, percent-encoded.
    pub url: String,
    /// `GET` (parameters in the query) or `POST` (parameters in the body).
    #[serde(default)]
    pub method: HttpMethod,
    /// Parameter name → value template, e.g. `phone = "{phone}"`, `message = "{message}"`.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
    /// How POST parameters are sent: `form` (urlencoded) or `json` (an object of strings).
    #[serde(default)]
    pub post_as: PostAs,
    /// How `{phone}` is written: `e164` (`+5491123456789`) or `digits` (`5491123456789`).
    #[serde(default)]
    pub phone_format: PhoneFormat,
    /// Basic auth, when the app asks for it.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// A 2xx answer counts as sent only if its body contains this text (e.g. `OK`).
    #[serde(default)]
    pub success_contains: Option<String>,
    #[serde(default = "default_request_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
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
}

/// `[webhooks]`: the listener that phones call back. It serves only webhook routes
/// (`/webhooks/android/<name>`), each checked by its signature, so it may listen on the LAN
/// while the admin API stays on 127.0.0.1.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// `0.0.0.0:8090`, or the box's LAN address; off when unset.
    pub listen: Option<String>,
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
    }
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
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:8080".to_string(),
            token: None,
            token_file: None,
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
    /// Parses and validates `text`. Errors name key and line.
    pub fn from_toml(text: &str) -> Result<Loaded, ConfigErrors> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigErrors(vec![toml_error(text, &e)]))?;
        let loaded = Loaded {
            config,
            source: text.to_string(),
            path: None,
        };
        loaded.validate()?;
        Ok(loaded)
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                key: String::new(),
                line: None,
                message: format!("cannot read {}: {e}", path.display()),
            }])
        })?;
        let mut loaded = Config::from_toml(&text)?;
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

    fn err(&self, key: &str, message: String) -> ConfigError {
        ConfigError {
            key: key.to_string(),
            line: locate_key(&self.source, key),
            message,
        }
    }

    /// Checks values serde cannot: addresses, time zones, countries, ranges.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let c = &self.config;
        let mut errors = Vec::new();
        if c.admin.listen.parse::<SocketAddr>().is_err() {
            errors.push(self.err(
                "admin.listen",
                format!("`{}` is not an address like 127.0.0.1:8080", c.admin.listen),
            ));
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
        if c.company.timezone.parse::<chrono_tz::Tz>().is_err() {
            errors.push(self.err(
                "company.timezone",
                format!(
                    "`{}` is not a time zone name like America/Argentina/Buenos_Aires",
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
        for m in &c.modems {
            let at = |key: &str| format!("modem.{key}");
            if m.name.trim().is_empty()
                || !m
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_".contains(ch))
            {
                errors.push(self.err(
                    &at("name"),
                    format!("`{}` must be letters, digits, - or _", m.name),
                ));
            } else if !names.insert(m.name.clone()) {
                errors.push(self.err(
                    &at("name"),
                    format!("`{}` is used by two [[modem]] tables", m.name),
                ));
            }
            if !m.device.is_absolute() {
                errors.push(self.err(
                    &at("device"),
                    format!(
                        "`{}` must be a device path like /dev/ttyUSB0",
                        m.device.display()
                    ),
                ));
            }
            if ![9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600].contains(&m.baud) {
                errors.push(self.err(
                    &at("baud"),
                    format!(
                        "{} is not a serial speed; use 115200 (or 9600 … 921600)",
                        m.baud
                    ),
                ));
            }
            if !["SM", "ME", "MT"].contains(&m.storage.as_str()) {
                errors.push(self.err(
                    &at("storage"),
                    format!("`{}` is not SM, ME or MT", m.storage),
                ));
            }
            if m.pin.as_ref().is_some_and(|p| {
                let p = p.expose();
                !(4..=8).contains(&p.len()) || !p.chars().all(|ch| ch.is_ascii_digit())
            }) {
                errors.push(self.err(&at("pin"), "must be 4 to 8 digits".to_string()));
            }
            if let Some(smsc) = &m.smsc
                && !(smsc.starts_with('+')
                    && smsc.len() > 4
                    && smsc[1..].chars().all(|ch| ch.is_ascii_digit()))
            {
                errors.push(self.err(
                    &at("smsc"),
                    format!("`{smsc}` is not an international number like +5491151740000"),
                ));
            }
        }
        self.validate_routes(&mut names, &mut errors);
        self.validate_rules(&mut errors);
        errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// `[[android]]`, `[[http_sms]]`, `[webhooks]` and `[routing]`. `names` holds the route
    /// names already taken by modems.
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
        let plain_http = |url: &str| {
            url.strip_prefix("http://")
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        };
        let webhook_listen = c.webhooks.listen.as_deref();
        if let Some(listen) = webhook_listen
            && listen.parse::<SocketAddr>().is_err()
        {
            errors.push(self.err(
                "webhooks.listen",
                format!("`{listen}` is not an address like 0.0.0.0:8090"),
            ));
        }
        for a in &c.androids {
            let at = |key: &str| format!("android.{key}");
            if !valid_name(&a.name) || a.name.len() > 16 {
                errors.push(self.err(
                    &at("name"),
                    format!("`{}` must be 1 to 16 letters, digits, - or _", a.name),
                ));
            } else if !names.insert(a.name.clone()) {
                errors.push(self.err(
                    &at("name"),
                    format!("`{}` is already the name of another route", a.name),
                ));
            }
            if !plain_http(&a.url) {
                errors.push(self.err(
                    &at("url"),
                    format!(
                        "`{}` must be the app's Local Server address like http://192.168.1.50:8080 \
                         (plain http on the LAN)",
                        a.url
                    ),
                ));
            }
            if a.password.expose().is_empty() {
                errors.push(self.err(
                    &at("password"),
                    "must be the Local Server password the app shows".to_string(),
                ));
            }
            if a.sim.is_some_and(|s| !(1..=3).contains(&s)) {
                errors.push(self.err(&at("sim"), "must be 1, 2 or 3".to_string()));
            }
            if a.health_interval_secs == 0 || a.health_interval_secs > 3600 {
                errors.push(self.err(
                    &at("health_interval_secs"),
                    format!("{} is out of range: use 1 to 3600", a.health_interval_secs),
                ));
            }
            if a.request_timeout_secs == 0 || a.request_timeout_secs > 300 {
                errors.push(self.err(
                    &at("request_timeout_secs"),
                    format!("{} is out of range: use 1 to 300", a.request_timeout_secs),
                ));
            }
            match &a.webhook_url {
                Some(url) => {
                    let path = format!("/webhooks/android/{}", a.name);
                    if !plain_http(url) || !url.trim_end_matches('/').ends_with(&path) {
                        errors.push(self.err(
                            &at("webhook_url"),
                            format!(
                                "`{url}` must be the address the phone can reach, like \
                                 http://192.168.1.10:8090{path}"
                            ),
                        ));
                    }
                    if a.signing_key.as_ref().is_none_or(|k| k.expose().len() < 8) {
                        errors.push(self.err(
                            &at("signing_key"),
                            "must be set to the app's webhook signing key (8+ characters) when \
                             webhook_url is set"
                                .to_string(),
                        ));
                    }
                    if webhook_listen.is_none() {
                        errors.push(
                            self.err(
                                &at("webhook_url"),
                                "needs `listen = \"0.0.0.0:8090\"` under [webhooks]: the listener \
                             the phone calls"
                                    .to_string(),
                            ),
                        );
                    }
                }
                None if a.signing_key.is_some() => errors.push(self.err(
                    &at("signing_key"),
                    "is set but webhook_url is not: set both or neither".to_string(),
                )),
                None => {}
            }
        }
        for h in &c.http_sms {
            let at = |key: &str| format!("http_sms.{key}");
            if !valid_name(&h.name) {
                errors.push(self.err(
                    &at("name"),
                    format!("`{}` must be letters, digits, - or _", h.name),
                ));
            } else if !names.insert(h.name.clone()) {
                errors.push(self.err(
                    &at("name"),
                    format!("`{}` is already the name of another route", h.name),
                ));
            }
            if !plain_http(&h.url) {
                errors.push(self.err(
                    &at("url"),
                    format!(
                        "`{}` must be an http:// address like \
                         http://192.168.1.60:8080/v1/sms/send/",
                        h.url
                    ),
                ));
            }
            let templates = std::iter::once(&h.url).chain(h.params.values());
            if !templates.clone().any(|t| t.contains("{message}")) {
                errors.push(
                    self.err(
                        &at("params"),
                        "no template holds {message}: add e.g. `message = \"{message}\"` under \
                     [http_sms.params]"
                            .to_string(),
                    ),
                );
            }
            if !templates.clone().any(|t| t.contains("{phone}")) {
                errors.push(
                    self.err(
                        &at("params"),
                        "no template holds {phone}: add e.g. `phone = \"{phone}\"` under \
                     [http_sms.params]"
                            .to_string(),
                    ),
                );
            }
            for t in templates {
                if let Some(bad) = crate::transport::http_sms::unknown_placeholder(t) {
                    errors.push(self.err(
                        &at("params"),
                        format!(
                            "`{{{bad}}}` in `{t}` is not one of {{phone}}, {{message}}, {{id}}"
                        ),
                    ));
                }
            }
            if h.password.is_some() && h.username.is_none() {
                errors.push(self.err(&at("password"), "is set but username is not".to_string()));
            }
            if h.timeout_secs == 0 || h.timeout_secs > 300 {
                errors.push(self.err(
                    &at("timeout_secs"),
                    format!("{} is out of range: use 1 to 300", h.timeout_secs),
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

    /// `[rules]`, `[windows]`, `[[groups]]` and `[directory]`.
    fn validate_rules(&self, errors: &mut Vec<ConfigError>) {
        let c = &self.config;
        let tz = c.company.timezone.parse().unwrap_or(chrono_tz::UTC);
        let windows = match crate::rules::window::Windows::new(&c.windows, tz) {
            Ok(w) => Some(w),
            Err(list) => {
                for (key, message) in list {
                    errors.push(self.err(&key, message));
                }
                None
            }
        };
        let phones =
            crate::phone::PhoneContext::new(&c.company.country, c.company.assume_mobile).ok();
        let mut group_names = Vec::new();
        for g in &c.groups {
            if g.name.trim().is_empty() || group_names.contains(&g.name) {
                errors.push(self.err(
                    "groups.name",
                    format!("`{}` must be a unique, non-empty group name", g.name),
                ));
            }
            group_names.push(g.name.clone());
            if let Some(w) = &windows
                && let Err(e) = w.check_name(&g.window)
            {
                errors.push(self.err("groups.window", e));
            }
            if g.phones.is_empty() {
                errors.push(self.err("groups.phones", format!("group `{}` has no phones", g.name)));
            }
            for p in &g.phones {
                if let Some(ctx) = &phones
                    && let Err(e) = ctx.normalize(p)
                {
                    errors.push(self.err("groups.phones", format!("`{p}`: {e}")));
                }
            }
        }
        let mut rules = c.rules.clone();
        rules.fill_defaults(c.company.language);
        let extra: std::collections::BTreeSet<String> =
            c.directory.extra_fields.iter().cloned().collect();
        for (key, message) in rules.check(&extra, &group_names) {
            errors.push(self.err(&key, message));
        }
        for (key, message) in c.directory.check() {
            errors.push(self.err(&key, message));
        }
    }

    /// Checks that touch the file system: the token file and the state directory.
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
        if errors.is_empty() {
            Ok(warnings)
        } else {
            Err(ConfigErrors(errors))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let loaded = Config::from_toml("").unwrap();
        assert_eq!(loaded.config.admin.listen, "127.0.0.1:8080");
        assert_eq!(loaded.config.company.country, "AR");
        assert_eq!(
            loaded.config.daemon.state_dir,
            PathBuf::from("/var/lib/pasarela")
        );
    }

    #[test]
    fn bad_listen_names_key_and_line() {
        let text = "[daemon]\nlog_level = \"info\"\n\n[admin]\nlisten = \"8080\"\n";
        let err = Config::from_toml(text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "admin.listen: `8080` is not an address like 127.0.0.1:8080 (line 5)"
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = "[admin]\nlisten = \"127.0.0.1:9\"\nlisen = \"x\"\n";
        let err = Config::from_toml(text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("admin.lisen"), "{msg}");
        assert!(msg.contains("unknown field"), "{msg}");
        assert!(msg.contains("(line 3)"), "{msg}");
    }

    #[test]
    fn wrong_type_names_line() {
        let err = Config::from_toml("[daemon]\nshutdown_grace_secs = \"ten\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("daemon.shutdown_grace_secs:"), "{msg}");
        assert!(msg.contains("(line 2)"), "{msg}");
    }

    #[test]
    fn malformed_toml_is_an_error_with_line() {
        let err = Config::from_toml("[admin\nlisten=1").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let loaded = Config::from_toml("[admin]\ntoken = \"s3cr3t-s3cr3t-s3cr3t\"\n").unwrap();
        let dbg = format!("{:?}", loaded.config);
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("***"));
    }

    #[test]
    fn short_token_and_bad_timezone_and_country_all_reported() {
        let text = "[admin]\ntoken = \"short\"\n[company]\ntimezone = \"Mars/Olympus\"\ncountry = \"XX\"\n";
        let err = Config::from_toml(text).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert_eq!(err.0[0].key, "admin.token");
        assert_eq!(err.0[1].line, Some(4));
        assert_eq!(err.0[2].key, "company.country");
    }

    #[test]
    fn relative_state_dir_rejected() {
        let err = Config::from_toml("[daemon]\nstate_dir = \"data\"\n").unwrap_err();
        assert!(err.to_string().starts_with("daemon.state_dir:"), "{err}");
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn state_dir_not_writable_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plainfile");
        std::fs::write(&file, b"").unwrap();
        let text = format!("[daemon]\nstate_dir = \"{}\"\n", file.display());
        let loaded = Config::from_toml(&text).unwrap();
        let err = loaded.check_environment().unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn token_file_missing_and_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let text = format!(
            "[daemon]\nstate_dir = \"{}\"\n[admin]\ntoken_file = \"{}\"\n",
            dir.path().display(),
            missing.display()
        );
        let loaded = Config::from_toml(&text).unwrap();
        let err = loaded.check_environment().unwrap_err();
        assert!(err.to_string().contains("admin.token_file"), "{err}");

        use std::os::unix::fs::PermissionsExt;
        let tok = dir.path().join("token");
        std::fs::write(&tok, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "[daemon]\nstate_dir = \"{}\"\n[admin]\ntoken_file = \"{}\"\n",
            dir.path().display(),
            tok.display()
        );
        let loaded = Config::from_toml(&text).unwrap();
        let warnings = loaded.check_environment().unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("chmod 640"));
        assert_eq!(
            loaded.admin_token().unwrap().unwrap().expose(),
            "0123456789abcdef0123"
        );
    }

    #[test]
    fn example_phone_routes_parse() {
        let text = include_str!("../config/pasarela.toml");
        let (_, examples) = text.split_once("# ---- Phone routes").unwrap();
        // Lines like `#name = "phone1"` are settings; `# text` lines are prose.
        let enabled: String = text
            .lines()
            .take_while(|l| !l.starts_with("# ---- Phone routes"))
            .chain(examples.lines().map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.starts_with(' ') && !rest.is_empty() => rest,
                _ => "",
            }))
            .collect::<Vec<_>>()
            .join("\n");
        let loaded = Config::from_toml(&enabled).unwrap_or_else(|e| panic!("{e}"));
        let c = &loaded.config;
        assert_eq!(c.androids[0].name, "phone1");
        assert_eq!(c.androids[0].rate_limit.unwrap().to_string(), "120/hour");
        assert_eq!(c.http_sms[0].params["message"], "{message}");
        assert_eq!(c.routing.policy, RoutePolicy::Failover);
        assert_eq!(c.route_tier("modem1"), 0);
        assert_eq!(c.route_tier("phone1"), 1);
        assert_eq!(c.route_rate_limit("modem1"), None);
        assert!(!format!("{c:?}").contains("copy-it-from-the-app"));
    }

    #[test]
    fn route_mistakes_name_key_and_line() {
        let text = "[[android]]\nname = \"phone1\"\nurl = \"https://10.0.0.2\"\npassword = \"x\"\n\
                    webhook_url = \"http://10.0.0.1:8090/hooks\"\nrate_limit = \"5/fortnight\"\n";
        let err = Config::from_toml(text).unwrap_err().to_string();
        assert!(
            err.contains("android.rate_limit:") && err.contains("(line 6)"),
            "{err}"
        );
        let text = "[[android]]\nname = \"phone1\"\nurl = \"https://10.0.0.2\"\npassword = \"x\"\n\
                    webhook_url = \"http://10.0.0.1:8090/hooks\"\n\
                    [[http_sms]]\nname = \"phone1\"\nurl = \"http://h/{mesage}\"\n\
                    [routing]\nprimary = [\"nope\"]\n";
        let err = Config::from_toml(text).unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        for key in [
            "android.url",
            "android.webhook_url",
            "android.signing_key",
            "http_sms.name",
            "http_sms.params",
            "routing.primary",
        ] {
            assert!(keys.contains(&key), "{key} missing from {err}");
        }
        assert!(err.0.iter().all(|e| e.line.is_some()), "{err}");
    }

    #[test]
    fn rate_limits_parse() {
        assert_eq!(RateLimit::parse("120/hour").unwrap().per.as_secs(), 3600);
        assert_eq!(RateLimit::parse("10 / 30s").unwrap().to_string(), "10/30s");
        assert!(RateLimit::parse("0/hour").is_err());
        assert!(RateLimit::parse("10").is_err());
        assert!(RateLimit::parse("ten/hour").is_err());
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../config/pasarela.toml");
        let loaded = Config::from_toml(text).unwrap();
        assert_eq!(loaded.config.company.country, "AR");
    }
}
