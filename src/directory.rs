//! Where customers come from: the local table (filled by CSV imports and `POST /api/customers`)
//! and, when configured, a live lookup in the ISP's billing system over HTTP with a short cache
//! and the local table as fallback.
//!
//! Parsing and validation of customer rows lives here too, so the API, the CSV import and the
//! `customers import` command reject the same things with the same words.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use crate::config::directory::{DirectoryConfig, FieldPointers, HttpDirectoryConfig};
use crate::phone::PhoneContext;
use crate::rules::customer::parse_date;
use crate::rules::{Customer, Money, OptOut};
use crate::store::Store;
use crate::store::directory::{self as sql, CustomerInput, UpsertReport};

/// The standard fields a CSV column can fill.
const FIELDS: &[(&str, &[&str])] = &[
    // A customer's channel order for invoices and payment notices: `whatsapp/sms`.
    ("channels_invoice", &["channels_invoice", "canales_factura"]),
    ("channels_payment", &["channels_payment", "canales_pago"]),
    (
        "code",
        &[
            "code",
            "codigo",
            "cod",
            "nro_cliente",
            "numero_cliente",
            "id_cliente",
            "cod_cliente",
            "codigo_cliente",
            "customer_code",
        ],
    ),
    (
        "name",
        &[
            "name",
            "nombre",
            "nombre_apellido",
            "apellido_nombre",
            "apellido_y_nombre",
            "nombre_y_apellido",
            "razon_social",
            "cliente",
        ],
    ),
    (
        "phone",
        &[
            "phone",
            "phones",
            "telefono",
            "telefonos",
            "tel",
            "celular",
            "movil",
            "whatsapp",
            "mobile",
        ],
    ),
    ("email", &["email", "mail", "correo", "e_mail"]),
    (
        "balance",
        &["balance", "deuda", "saldo", "importe", "monto"],
    ),
    (
        "due_date",
        &["due_date", "vencimiento", "fecha_vencimiento", "vto"],
    ),
    ("plan", &["plan"]),
    ("zone", &["zone", "zona"]),
];

/// A header as matched: folded words joined by `_` (`Teléfono Celular` → `telefono_celular`).
fn header_key(h: &str) -> String {
    crate::rules::text::words(h).join("_")
}

impl DirectoryConfig {
    /// Problems as (key, message).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        for f in self.columns.keys() {
            if !FIELDS.iter().any(|(name, _)| name == f) {
                errors.push((
                    "directory.columns".to_string(),
                    format!(
                        "`{f}` is not a customer field; use {}",
                        FIELDS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        for name in &self.extra_fields {
            let key = header_key(name);
            if key.is_empty() || key != *name {
                errors.push((
                    "directory.extra_fields".to_string(),
                    format!(
                        "`{name}` must be lower-case letters, digits and _ (like `{key}`): it becomes the template variable %{key}%"
                    ),
                ));
            }
        }
        if let Some(h) = &self.http {
            if !h.url.starts_with("http://") && !h.url.starts_with("https://") {
                errors.push((
                    "directory.http.url".to_string(),
                    format!("`{}` must start with http:// or https://", h.url),
                ));
            } else if reqwest::Url::parse(&expand_url(&h.url, "+5491123456789")).is_err() {
                errors.push((
                    "directory.http.url".to_string(),
                    format!("`{}` is not a URL", h.url),
                ));
            }
            if h.ca_file.is_some() && !h.url.starts_with("https://") {
                errors.push((
                    "directory.http.ca_file".to_string(),
                    "only applies to an https:// url".to_string(),
                ));
            }
            if !h.url.contains("{phone") {
                errors.push((
                    "directory.http.url".to_string(),
                    "must contain {phone}, {phone_digits} or {phone_national}".to_string(),
                ));
            }
            if h.timeout_ms == 0 || h.timeout_ms > 30_000 {
                errors.push((
                    "directory.http.timeout_ms".to_string(),
                    format!("{} is out of range: use 1 to 30000", h.timeout_ms),
                ));
            }
            let f = &h.fields;
            for (key, p) in [
                ("code", Some(&f.code)),
                ("name", Some(&f.name)),
                ("balance", Some(&f.balance)),
                ("due_date", f.due_date.as_ref()),
                ("plan", f.plan.as_ref()),
                ("zone", f.zone.as_ref()),
                ("email", f.email.as_ref()),
            ] {
                if let Some(p) = p
                    && !(p.is_empty() || p.starts_with('/'))
                {
                    errors.push((
                        format!("directory.http.fields.{key}"),
                        format!("`{p}` is not a JSON pointer like /nombre"),
                    ));
                }
            }
        }
        errors
    }

    /// Header name (as [`header_key`]) → field, for CSV import.
    fn column_map(&self) -> HashMap<String, Column> {
        let mut map = HashMap::new();
        for (field, aliases) in FIELDS {
            for a in *aliases {
                map.insert(a.to_string(), Column::Field(field));
            }
            for a in self.columns.get(*field).into_iter().flatten() {
                map.insert(header_key(a), Column::Field(field));
            }
        }
        for e in &self.extra_fields {
            map.insert(header_key(e), Column::Extra(header_key(e)));
        }
        for i in &self.ignore_columns {
            map.insert(header_key(i), Column::Ignore);
        }
        map
    }
}

fn expand_url(template: &str, e164: &str) -> String {
    let digits = e164.trim_start_matches('+');
    // National form for Argentina: drop 54 and the mobile 9.
    let national = digits
        .strip_prefix("549")
        .or_else(|| digits.strip_prefix("54"))
        .unwrap_or(digits);
    template
        .replace("{phone_digits}", digits)
        .replace("{phone_national}", national)
        .replace("{phone}", &e164.replace('+', "%2B"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Field(&'static str),
    Extra(String),
    Ignore,
}

// ----- customer rows: JSON and CSV ------------------------------------------------------------

/// One customer in `POST /api/customers`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerJson {
    pub code: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub phones: Option<Vec<String>>,
    #[serde(default)]
    pub email: Option<String>,
    /// `"1234.50"`, `"1.234,50"` or a JSON number.
    #[serde(default)]
    pub balance: Option<serde_json::Value>,
    #[serde(default)]
    pub due_date: Option<String>,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    /// Fields of your own (`directory.extra_fields`), usable as `%name%` in templates.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub extra: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub optout: Option<OptOut>,
    /// The customer's own channel order per event type: `{"invoice": ["sms", "whatsapp"]}`;
    /// `{}` clears it; absent keeps what is stored.
    #[serde(default)]
    pub channels: Option<BTreeMap<String, Vec<String>>>,
}

/// Billing event types a customer may give a channel order for.
pub const EVENT_TYPES: &[&str] = &["invoice", "payment"];

/// Checks a customer's channel preferences; the error names the field (`channels.invoice`).
pub fn check_channels(prefs: &BTreeMap<String, Vec<String>>) -> Result<(), FieldError> {
    for (event, list) in prefs {
        let field = format!("channels.{event}");
        if !EVENT_TYPES.contains(&event.as_str()) {
            return Err((
                field,
                format!("`{event}` is not an event type; use \"invoice\" or \"payment\""),
            ));
        }
        if list.is_empty() {
            return Err((
                field,
                "is empty; list one or more of \"whatsapp\", \"email\", \"sms\" (or leave the \
                 event out to use the configured order)"
                    .into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for ch in list {
            if !crate::events::CHANNELS.contains(&ch.as_str()) {
                return Err((
                    field,
                    format!("`{ch}` is not a channel; use \"whatsapp\", \"email\" or \"sms\""),
                ));
            }
            if !seen.insert(ch.as_str()) {
                return Err((field, format!("`{ch}` is listed twice")));
            }
        }
    }
    Ok(())
}

/// A rejected row: where, which customer and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Rejected {
    /// CSV line (1 = header) or array index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub field: Option<String>,
    pub error: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub inserted: usize,
    pub updated: usize,
    pub rejected: Vec<Rejected>,
    pub shared_phones: Vec<sql::SharedPhone>,
    pub warnings: Vec<String>,
}

impl ImportReport {
    fn absorb(&mut self, r: UpsertReport) {
        self.inserted = r.inserted;
        self.updated = r.updated;
        self.shared_phones = r.shared_phones;
    }
}

/// Splits a phone cell: `1159876543 / 11 4444-5555`.
fn split_phones(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(['/', '|', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The raw text of one customer's fields, from either a CSV row or JSON.
#[derive(Debug, Default)]
struct RawCustomer {
    code: String,
    name: Option<String>,
    phones: Vec<String>,
    email: Option<String>,
    balance: Option<String>,
    due_date: Option<String>,
    plan: Option<String>,
    zone: Option<String>,
    extra: BTreeMap<String, String>,
    optout: Option<OptOut>,
    channels: Option<BTreeMap<String, Vec<String>>>,
    /// A phone column / field was given (else the stored phones stay).
    phones_present: bool,
    /// Extra fields were given (else the stored ones stay).
    extra_present: bool,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Validates and normalizes; the error names the field.
fn build(raw: RawCustomer, phones: &PhoneContext) -> Result<CustomerInput, (String, String)> {
    let present = sql::Present {
        name: raw.name.is_some(),
        phones: raw.phones_present,
        email: raw.email.is_some(),
        balance: raw.balance.is_some(),
        due_date: raw.due_date.is_some(),
        plan: raw.plan.is_some(),
        zone: raw.zone.is_some(),
        extra: raw.extra_present,
    };
    let code = raw.code.trim().to_string();
    if code.is_empty() {
        return Err((
            "code".into(),
            "is empty; every customer needs its code".into(),
        ));
    }
    if code.chars().count() > 64 {
        return Err(("code".into(), "is longer than 64 characters".into()));
    }
    let mut normalized = Vec::new();
    for p in &raw.phones {
        let n = phones
            .normalize(p)
            .map_err(|e| ("phone".to_string(), format!("`{p}`: {e}")))?;
        let n = n.as_str().to_string();
        if !normalized.contains(&n) {
            normalized.push(n);
        }
    }
    let balance = match non_empty(raw.balance) {
        Some(b) => Some(Money::parse(&b).map_err(|e| ("balance".to_string(), e))?),
        None => None,
    };
    let due_date = match non_empty(raw.due_date) {
        Some(d) => Some(parse_date(&d).map_err(|e| ("due_date".to_string(), e))?),
        None => None,
    };
    let email = non_empty(raw.email);
    if let Some(e) = &email
        && (!e.contains('@') || e.contains(char::is_whitespace))
    {
        return Err(("email".into(), format!("`{e}` is not an email address")));
    }
    if let Some(prefs) = &raw.channels {
        check_channels(prefs)?;
    }
    Ok(CustomerInput {
        present,
        code,
        name: non_empty(raw.name).unwrap_or_default(),
        phones: normalized,
        email,
        balance,
        due_date,
        plan: non_empty(raw.plan),
        zone: non_empty(raw.zone),
        extra: raw.extra,
        optout: raw.optout,
        channels: raw.channels,
    })
}

/// A field that failed validation and why.
type FieldError = (String, String);
/// One raw row with its position (CSV line or array index).
type RawRow = (usize, Result<RawCustomer, FieldError>);
/// Good customers, rejected rows and warnings of one CSV file.
pub type ParsedCsv = (Vec<CustomerInput>, Vec<Rejected>, Vec<String>);

/// Most customers per request or file.
pub const MAX_CUSTOMERS: usize = 100_000;

/// Validates JSON customers (in parallel: phone numbers are the costly part). Good items and
/// per-index rejections; a code twice in one request rejects the later one.
pub fn validate_json(
    items: Vec<CustomerJson>,
    phones: &PhoneContext,
) -> (Vec<CustomerInput>, Vec<Rejected>) {
    let raws: Vec<RawRow> = items
        .into_iter()
        .enumerate()
        .map(|(i, c)| (i, raw_from_json(c)))
        .collect();
    finish(raws, phones, false)
}

fn raw_from_json(c: CustomerJson) -> Result<RawCustomer, (String, String)> {
    let phones_present = c.phone.is_some() || c.phones.is_some();
    let mut list = c.phones.unwrap_or_default();
    if let Some(p) = c.phone {
        list.insert(0, p);
    }
    let balance = match c.balance {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        // A JSON number's dot is a decimal point: checked here, then passed on in plain form.
        Some(serde_json::Value::Number(n)) => Some(
            Money::from_json_number(&n)
                .map_err(|e| ("balance".to_string(), e))?
                .plain(),
        ),
        Some(other) => {
            return Err((
                "balance".into(),
                format!("{other} is not an amount; send \"1234.50\" or 1234.50"),
            ));
        }
    };
    let mut extra = BTreeMap::new();
    let extra_present = c.extra.is_some();
    for (k, v) in c.extra.unwrap_or_default() {
        let key = header_key(&k);
        if key != k || key.is_empty() {
            return Err((
                format!("extra.{k}"),
                format!("field names must be lower-case letters, digits and _ (like `{key}`)"),
            ));
        }
        let text = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => String::new(),
            _ => {
                return Err((
                    format!("extra.{k}"),
                    "must be text, a number or a boolean".into(),
                ));
            }
        };
        extra.insert(k, text);
    }
    Ok(RawCustomer {
        code: c.code,
        name: c.name,
        phones: list,
        email: c.email,
        balance,
        due_date: c.due_date,
        plan: c.plan,
        zone: c.zone,
        extra,
        optout: c.optout,
        channels: c.channels,
        phones_present,
        extra_present,
    })
}

/// Shared tail of JSON and CSV validation: build every row (on all cores), reject duplicate codes.
/// `positions` are CSV lines when `csv`, else array indexes.
fn finish(
    raws: Vec<RawRow>,
    phones: &PhoneContext,
    csv: bool,
) -> (Vec<CustomerInput>, Vec<Rejected>) {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = raws.len().div_ceil(threads).max(1);
    let mut built: Vec<(usize, Result<CustomerInput, FieldError>, String)> =
        Vec::with_capacity(raws.len());
    let mut raws = raws;
    let mut parts = Vec::new();
    while !raws.is_empty() {
        let rest = raws.split_off(chunk.min(raws.len()));
        parts.push(std::mem::replace(&mut raws, rest));
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                s.spawn(move || {
                    part.into_iter()
                        .map(|(pos, raw)| match raw {
                            Ok(r) => {
                                let code = r.code.trim().to_string();
                                (pos, build(r, phones), code)
                            }
                            Err(e) => (pos, Err(e), String::new()),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            if let Ok(v) = h.join() {
                built.extend(v);
            }
        }
    });
    let mut good = Vec::with_capacity(built.len());
    let mut rejected = Vec::new();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let reject = |pos: usize, code: &str, field: Option<String>, error: String| Rejected {
        line: csv.then_some(pos),
        index: (!csv).then_some(pos),
        code: (!code.is_empty()).then(|| code.to_string()),
        field,
        error,
    };
    for (pos, result, code) in built {
        match result {
            Ok(c) => {
                if let Some(first) = first_seen.get(&c.code) {
                    let where_ = if csv { "line" } else { "item" };
                    rejected.push(reject(
                        pos,
                        &code,
                        Some("code".into()),
                        format!(
                            "duplicate code `{}` (first on {where_} {first}); this one is skipped",
                            c.code
                        ),
                    ));
                    continue;
                }
                first_seen.insert(c.code.clone(), pos);
                good.push(c);
            }
            Err((field, error)) => rejected.push(reject(pos, &code, Some(field), error)),
        }
    }
    (good, rejected)
}

/// Turns file bytes into text: UTF-8 (with or without a BOM), else Latin-1 / Windows-1252 as
/// spreadsheets in Spanish save it. Returns the text and the encoding name.
pub fn decode_text(bytes: &[u8]) -> (String, &'static str) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), "UTF-8"),
        Err(_) => (
            bytes
                .iter()
                .map(|&b| match b {
                    0x80 => '€',
                    0x91 | 0x92 => '\'',
                    0x93 | 0x94 => '"',
                    0x96 | 0x97 => '-',
                    b => b as char,
                })
                .collect(),
            "Latin-1",
        ),
    }
}

/// A problem with the file as a whole (its header, its encoding): nothing is imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FileError(pub String);

/// The line where a quoted field opens that the file never closes, read the way the CSV
/// reader reads quotes: only a `"` at the start of a field opens one, `""` inside is a quote.
fn unclosed_quote(text: &str, delimiter: u8) -> Option<usize> {
    let mut line = 1;
    let mut opened_on = None;
    let mut at_field_start = true;
    let mut bytes = text.bytes().peekable();
    while let Some(b) = bytes.next() {
        if opened_on.is_some() {
            match b {
                b'"' if bytes.peek() == Some(&b'"') => {
                    bytes.next();
                }
                b'"' => opened_on = None,
                b'\n' => line += 1,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' if at_field_start => {
                opened_on = Some(line);
                at_field_start = false;
            }
            b'\n' => {
                line += 1;
                at_field_start = true;
            }
            b'\r' => at_field_start = true,
            d if d == delimiter => at_field_start = true,
            _ => at_field_start = false,
        }
    }
    opened_on
}

/// Parses a customer CSV: header row, `,` `;` or tab separated (detected from the header).
pub fn parse_csv(
    bytes: &[u8],
    config: &DirectoryConfig,
    phones: &PhoneContext,
) -> Result<ParsedCsv, FileError> {
    let (text, encoding) = decode_text(bytes);
    let mut warnings = Vec::new();
    if encoding != "UTF-8" {
        warnings.push(format!("the file is not UTF-8; read it as {encoding}"));
    }
    let header_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if header_line.is_empty() {
        return Err(FileError(
            "the file is empty; the first line must name the columns (codigo,nombre,telefono,…)"
                .into(),
        ));
    }
    let delimiter = [b';', b'\t', b',']
        .into_iter()
        .max_by_key(|d| header_line.matches(*d as char).count())
        .unwrap_or(b',');
    if let Some(line) = unclosed_quote(&text, delimiter) {
        return Err(FileError(format!(
            "line {line}: a quoted field opens here and is never closed, so every line after it \
             would be read as part of one field; close the quote (\"…\") or remove it, then send \
             the file again"
        )));
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(FileError(format!("line 1: cannot read the header: {e}"))),
        None => return Err(FileError("the file has no header line".into())),
    };
    let map = config.column_map();
    let mut columns = Vec::new();
    let mut unknown = Vec::new();
    let mut seen_fields: BTreeSet<&str> = BTreeSet::new();
    for h in header.iter() {
        let key = header_key(h);
        match map.get(&key) {
            Some(Column::Field(f)) => {
                if *f != "phone" && !seen_fields.insert(f) {
                    return Err(FileError(format!(
                        "line 1: two columns are the customer's {f} (one is `{h}`); keep one or list the other in directory.ignore_columns"
                    )));
                }
                seen_fields.insert(f);
                columns.push(Column::Field(f));
            }
            Some(other) => columns.push(other.clone()),
            None if key.is_empty() => columns.push(Column::Ignore),
            None => {
                unknown.push(h.trim().to_string());
                columns.push(Column::Ignore);
            }
        }
    }
    if !unknown.is_empty() {
        return Err(FileError(format!(
            "line 1: unknown column{} {}; map {} to a field in [directory.columns], keep {} as template variables with directory.extra_fields, or skip {} with directory.ignore_columns",
            if unknown.len() > 1 { "s" } else { "" },
            unknown
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if unknown.len() > 1 { "them" } else { "it" },
            if unknown.len() > 1 { "them" } else { "it" },
            if unknown.len() > 1 { "them" } else { "it" },
        )));
    }
    if !seen_fields.contains("code") {
        return Err(FileError(
            "line 1: no customer code column (codigo); it is how customers are matched on re-import"
                .into(),
        ));
    }
    let width = header.len();
    let mut raws = Vec::new();
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                raws.push((
                    line,
                    Err(("".to_string(), format!("cannot read the row: {e}"))),
                ));
                continue;
            }
        };
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if record.len() != width {
            raws.push((
                line,
                Err((
                    "".to_string(),
                    format!("has {} columns, the header has {width}", record.len()),
                )),
            ));
            continue;
        }
        let mut raw = RawCustomer::default();
        for (col, value) in columns.iter().zip(record.iter()) {
            let v = value.trim();
            match col {
                Column::Field("code") => raw.code = v.to_string(),
                Column::Field("name") => raw.name = Some(v.to_string()),
                Column::Field("phone") => {
                    raw.phones_present = true;
                    raw.phones.extend(split_phones(v).map(String::from))
                }
                Column::Field("email") => raw.email = Some(v.to_string()),
                Column::Field("balance") => raw.balance = Some(v.to_string()),
                Column::Field("due_date") => raw.due_date = Some(v.to_string()),
                Column::Field("plan") => raw.plan = Some(v.to_string()),
                Column::Field("zone") => raw.zone = Some(v.to_string()),
                Column::Field(f @ ("channels_invoice" | "channels_payment")) => {
                    let event = if *f == "channels_invoice" {
                        "invoice"
                    } else {
                        "payment"
                    };
                    let prefs = raw.channels.get_or_insert_with(BTreeMap::new);
                    let list: Vec<String> = v
                        .split(|c: char| "/|,;".contains(c) || c.is_whitespace())
                        .filter(|s| !s.is_empty())
                        .map(str::to_lowercase)
                        .collect();
                    // An empty cell: the configured order for this event.
                    if !list.is_empty() {
                        prefs.insert(event.to_string(), list);
                    }
                }
                Column::Extra(name) => {
                    raw.extra_present = true;
                    raw.extra.insert(name.clone(), v.to_string());
                }
                _ => {}
            }
        }
        raws.push((line, Ok(raw)));
    }
    if raws.len() > MAX_CUSTOMERS {
        return Err(FileError(format!(
            "the file has {} rows; import at most {MAX_CUSTOMERS} at a time",
            raws.len()
        )));
    }
    let (good, mut rejected) = finish(raws, phones, true);
    for r in &mut rejected {
        if r.field.as_deref() == Some("") {
            r.field = None;
        }
    }
    rejected.sort_by_key(|r| r.line);
    Ok((good, rejected, warnings))
}

/// Imports a CSV into the store: good rows in one transaction, rejected rows reported.
pub async fn import_csv(
    store: &Store,
    bytes: Vec<u8>,
    config: DirectoryConfig,
    phones: PhoneContext,
) -> Result<ImportReport, ImportError> {
    let (good, rejected, warnings) =
        tokio::task::spawn_blocking(move || parse_csv(&bytes, &config, &phones))
            .await
            .map_err(|e| ImportError::Internal(e.to_string()))??;
    let report = ImportReport {
        rejected,
        warnings,
        ..Default::default()
    };
    store_good(store, good, report).await
}

/// Stores validated JSON customers.
pub async fn import_json(
    store: &Store,
    items: Vec<CustomerJson>,
    phones: PhoneContext,
) -> Result<ImportReport, ImportError> {
    let (good, rejected) = tokio::task::spawn_blocking(move || validate_json(items, &phones))
        .await
        .map_err(|e| ImportError::Internal(e.to_string()))?;
    let report = ImportReport {
        rejected,
        ..Default::default()
    };
    store_good(store, good, report).await
}

/// Upserts the good rows of an import in one transaction and completes its report.
async fn store_good(
    store: &Store,
    good: Vec<CustomerInput>,
    mut report: ImportReport,
) -> Result<ImportReport, ImportError> {
    if !good.is_empty() {
        let upserted = store
            .write(move |c| sql::upsert_customers(c, &good, crate::store::now_ms()))
            .await
            .map_err(|e| ImportError::Internal(e.to_string()))?;
        report.absorb(upserted);
    }
    Ok(report)
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    File(#[from] FileError),
    #[error("{0}")]
    Internal(String),
}

// ----- lookup ---------------------------------------------------------------------------------

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Boxed: a customer is large next to the other variants.
    One(Box<Customer>),
    NotFound,
    Ambiguous(Vec<Customer>),
}

/// Which source answered (logged with every auto-reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Local,
    Billing,
    BillingCached,
    /// The billing system failed; the local table answered.
    LocalFallback,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Local => "local directory",
            Source::Billing => "billing system",
            Source::BillingCached => "billing system (cached)",
            Source::LocalFallback => "local directory (billing system failed)",
        })
    }
}

struct HttpLookup {
    config: HttpDirectoryConfig,
    client: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, Option<Customer>)>>,
}

const CACHE_MAX: usize = 10_000;

/// Customer lookup: billing system first when configured, then the local table.
#[derive(Clone)]
pub struct Directory {
    store: Store,
    http: Option<Arc<HttpLookup>>,
}

impl Directory {
    /// Fails only on an unreadable `directory.http.ca_file` (check-config reports it first).
    pub fn new(store: Store, config: &DirectoryConfig) -> Result<Directory, String> {
        let http = match config.http.as_ref() {
            Some(h) => {
                let timeout = Duration::from_millis(h.timeout_ms);
                let client = crate::net::http::client(
                    &crate::net::http::ClientOptions::new(timeout).ca_file(h.ca_file.as_deref()),
                )
                .map_err(|e| format!("directory.http.ca_file: {e}"))?;
                Some(Arc::new(HttpLookup {
                    client,
                    config: h.clone(),
                    cache: Mutex::new(HashMap::new()),
                }))
            }
            None => None,
        };
        Ok(Directory { store, http })
    }

    /// Looks `phone` (E.164) up. Never fails: a broken billing system falls back to the local
    /// table, and a broken local table answers "not found" (logged).
    pub async fn lookup(&self, phone: &str) -> (Lookup, Source) {
        let mut source = Source::Local;
        if let Some(http) = &self.http {
            match http.lookup(phone).await {
                Ok((Some(c), cached)) => {
                    return (
                        Lookup::One(Box::new(c)),
                        if cached {
                            Source::BillingCached
                        } else {
                            Source::Billing
                        },
                    );
                }
                Ok((None, _)) => {}
                Err(e) => {
                    log::warn!(
                        "customer lookup for {}: the billing system failed ({e}); using the local directory",
                        crate::logging::peer(phone)
                    );
                    source = Source::LocalFallback;
                }
            }
        }
        let p = phone.to_string();
        match self
            .store
            .read(move |c| sql::customers_by_phone(c, &p))
            .await
        {
            Ok(mut found) => match found.len() {
                0 => (Lookup::NotFound, source),
                1 => (Lookup::One(Box::new(found.remove(0))), source),
                _ => (Lookup::Ambiguous(found), source),
            },
            Err(e) => {
                log::error!("customer lookup: cannot read the directory: {e}");
                (Lookup::NotFound, source)
            }
        }
    }
}

impl HttpLookup {
    /// `Ok(None)`: the billing system does not know the number.
    async fn lookup(&self, phone: &str) -> Result<(Option<Customer>, bool), String> {
        let ttl = Duration::from_secs(self.config.cache_secs);
        if let Ok(cache) = self.cache.lock()
            && let Some((at, hit)) = cache.get(phone)
            && at.elapsed() < ttl
        {
            return Ok((hit.clone(), true));
        }
        let url = expand_url(&self.config.url, phone);
        let mut req = self.client.get(&url);
        for (k, v) in &self.config.headers {
            req = req.header(k, v);
        }
        let started = Instant::now();
        let response = req.send().await.map_err(|e| {
            if e.is_timeout() {
                format!(
                    "no answer within {} ms at {}",
                    self.config.timeout_ms,
                    crate::net::error::peer_of(&url)
                )
            } else {
                crate::net::error::describe(&url, &e)
            }
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            self.remember(phone, None);
            return Ok((None, false));
        }
        if !status.is_success() {
            return Err(format!("answered HTTP {status}"));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = crate::net::http::read_capped(response, 1 << 20)
            .await
            .map_err(|e| e.to_string())?;
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            format!(
                "answered {} that is not JSON",
                if content_type.is_empty() {
                    "something"
                } else {
                    &content_type
                }
            )
        })?;
        let found = self.customer_from(&json, phone)?;
        log::debug!(
            "billing system answered for {} in {} ms",
            crate::logging::peer(phone),
            started.elapsed().as_millis()
        );
        self.remember(phone, found.clone());
        Ok((found, false))
    }

    fn remember(&self, phone: &str, value: Option<Customer>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(phone.to_string(), (Instant::now(), value));
        }
    }

    fn customer_from(
        &self,
        json: &serde_json::Value,
        phone: &str,
    ) -> Result<Option<Customer>, String> {
        let f = &self.config.fields;
        let text = |p: &str| -> Option<String> {
            match json.pointer(p)? {
                serde_json::Value::String(s) => Some(s.trim().to_string()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
            .filter(|s| !s.is_empty())
        };
        let opt = |p: &Option<String>| p.as_deref().and_then(text);
        let Some(code) = text(&f.code) else {
            return Ok(None);
        };
        let balance = match text(&f.balance) {
            Some(b) => Some(Money::parse(&b).map_err(|e| format!("answered a balance that {e}"))?),
            None => None,
        };
        Ok(Some(Customer {
            id: None,
            code,
            name: text(&f.name).unwrap_or_default(),
            phones: vec![phone.to_string()],
            email: opt(&f.email),
            balance,
            due_date: opt(&f.due_date).and_then(|d| parse_date(&d).ok()),
            plan: opt(&f.plan),
            zone: opt(&f.zone),
            extra: BTreeMap::new(),
            optout: OptOut::default(),
            channels: BTreeMap::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> PhoneContext {
        PhoneContext::new("AR", None).unwrap()
    }

    #[test]
    fn spanish_csv_with_isp_phone_styles() {
        let csv = "codigo;nombre;telefono;email;deuda\n\
                   A1;Ana;1159876543;ana@example.com;1.234,50\n\
                   A2;Bruno;011 15-5987-6543 / +54 9 11 5987-0000;;1234.50\n\
                   \n\
                   A3;Caro;+54 9 11 5987-6543;;\n";
        let (good, rejected, warnings) =
            parse_csv(csv.as_bytes(), &DirectoryConfig::default(), &ctx()).unwrap();
        assert!(rejected.is_empty(), "{rejected:?}");
        assert!(warnings.is_empty());
        assert_eq!(good.len(), 3);
        assert_eq!(good[0].phones, ["+5491159876543"]);
        assert_eq!(good[0].balance, Some(Money(123450)));
        assert_eq!(good[1].phones, ["+5491159876543", "+5491159870000"]);
        assert_eq!(good[1].balance, Some(Money(123450)));
        assert_eq!(good[2].balance, None);
    }

    #[test]
    fn bad_rows_are_rejected_with_line_and_reason() {
        let csv = "codigo,nombre,telefono,deuda\n\
                   A1,Ana,1159876543,10\n\
                   A2,Bruno,abc,10\n\
                   A3,Caro,1159876543,-5\n\
                   A1,Otra,1159876543,10\n\
                   A4,Dani,1159876543\n\
                   ,Sin codigo,1159876543,1\n\
                   A5,Eli,1159876543,diez\n";
        let (good, rejected, _) =
            parse_csv(csv.as_bytes(), &DirectoryConfig::default(), &ctx()).unwrap();
        assert_eq!(good.len(), 1);
        let lines: Vec<(usize, Option<&str>)> = rejected
            .iter()
            .map(|r| (r.line.unwrap(), r.field.as_deref()))
            .collect();
        assert_eq!(
            lines,
            [
                (3, Some("phone")),
                (4, Some("balance")),
                (5, Some("code")),
                (6, None),
                (7, Some("code")),
                (8, Some("balance"))
            ]
        );
        assert!(
            rejected[2].error.contains("first on line 2"),
            "{}",
            rejected[2].error
        );
        assert!(
            rejected[3].error.contains("3 columns"),
            "{}",
            rejected[3].error
        );
    }

    #[test]
    fn latin1_and_bom_and_unknown_columns() {
        let mut latin1 = b"\xEF\xBB\xBFcodigo,nombre,telefono\nA1,Jos\xE9,1159876543\n".to_vec();
        // A BOM followed by Latin-1 bytes: still read as Latin-1.
        let (good, _, warnings) = parse_csv(&latin1, &DirectoryConfig::default(), &ctx()).unwrap();
        assert_eq!(good[0].name, "José");
        assert_eq!(warnings.len(), 1);
        latin1.drain(..3);
        let utf8 = "\u{feff}codigo,nombre,telefono\nA1,José,1159876543\n";
        let (good, _, warnings) =
            parse_csv(utf8.as_bytes(), &DirectoryConfig::default(), &ctx()).unwrap();
        assert_eq!(good[0].name, "José");
        assert!(warnings.is_empty());

        let csv = "codigo,nombre,telefono,nodo,observaciones\nA1,Ana,1159876543,Norte,x\n";
        let e = parse_csv(csv.as_bytes(), &DirectoryConfig::default(), &ctx()).unwrap_err();
        assert!(
            e.0.contains("`nodo`") && e.0.contains("`observaciones`"),
            "{e}"
        );
        let config = DirectoryConfig {
            extra_fields: vec!["nodo".into()],
            ignore_columns: vec!["observaciones".into()],
            ..Default::default()
        };
        let (good, _, _) = parse_csv(csv.as_bytes(), &config, &ctx()).unwrap();
        assert_eq!(good[0].extra.get("nodo").map(String::as_str), Some("Norte"));
        assert!(parse_csv(b"", &config, &ctx()).is_err());
        assert!(parse_csv(b"nombre,telefono\nAna,1159876543\n", &config, &ctx()).is_err());
    }

    #[test]
    fn an_unclosed_quote_refuses_the_file_naming_its_line() {
        let csv = "codigo,nombre,telefono,observaciones\n\
                   A1,Ana,1159876543,\"dice \"\"hola\"\"\n en dos líneas\"\n\
                   A2,\"Bruno,1159876544,x\n\
                   A3,Caro,1159876545,y\n\
                   A4,Dani,1159876546,z\n";
        let e = parse_csv(csv.as_bytes(), &DirectoryConfig::default(), &ctx()).unwrap_err();
        assert!(e.0.starts_with("line 4:"), "{e}");
        assert!(e.0.contains("never closed"), "{e}");
        // Closed quotes, quotes inside a field and a multi-line field are fine.
        let ok = "codigo;nombre;telefono;observaciones\r\n\
                  A1;\"Ana; la del \"\"centro\"\"\";1159876543;5\" de ancho\r\n\
                  A2;Bruno;1159876544;\"dos\nlíneas\"\r\n";
        let config = DirectoryConfig {
            extra_fields: vec!["observaciones".into()],
            ..DirectoryConfig::default()
        };
        let (good, rejected, _) = parse_csv(ok.as_bytes(), &config, &ctx()).unwrap();
        assert_eq!((good.len(), rejected.len()), (2, 0), "{rejected:?}");
        assert_eq!(good[0].name, "Ana; la del \"centro\"");
    }

    #[test]
    fn url_template_forms() {
        assert_eq!(
            expand_url(
                "http://b/c?t={phone}&d={phone_digits}&n={phone_national}",
                "+5491123456789"
            ),
            "http://b/c?t=%2B5491123456789&d=5491123456789&n=1123456789"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Any bytes: an answer (rows or a file error), never a panic; every row is either
        /// kept or rejected with a line.
        #[test]
        fn any_bytes_parse_without_panicking(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut bytes = b"codigo,nombre,telefono,deuda\n".to_vec();
            bytes.extend_from_slice(&body);
            if let Ok((good, rejected, _)) = parse_csv(&bytes, &DirectoryConfig::default(), &ctx()) {
                for r in &rejected {
                    proptest::prop_assert!(r.line.is_some());
                }
                for g in &good {
                    proptest::prop_assert!(!g.code.is_empty());
                }
            }
            let _ = parse_csv(&body, &DirectoryConfig::default(), &ctx());
        }

        #[test]
        fn amounts_and_templates_never_panic(text in "\\PC{0,40}") {
            let _ = Money::parse(&text);
            let _ = parse_date(&text);
            let vars = crate::rules::template::Vars::new();
            let _ = crate::rules::template::render(&text, &vars);
            let _ = crate::rules::template::check(&text, crate::rules::template::Use::Ticket, &BTreeSet::new());
            let _ = crate::rules::text::words(&text);
        }

        /// Formatting then parsing an amount gives it back, in both notations.
        #[test]
        fn money_round_trips(cents in 0i64..100_000_000_000) {
            let m = Money(cents);
            proptest::prop_assert_eq!(Money::parse(&m.format(crate::config::Language::Es)), Ok(m));
            proptest::prop_assert_eq!(Money::parse(&m.format(crate::config::Language::En)), Ok(m));
            proptest::prop_assert_eq!(Money::parse(&m.plain()), Ok(m));
        }
    }
}
