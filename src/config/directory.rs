//! The data of `[directory]` and `[directory.http]`, with defaults. Importing, matching
//! columns and the live lookup are in [`crate::directory`], which re-exports these types.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[directory]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectoryConfig {
    /// CSV columns kept on each customer as template variables (`nodo` → `%nodo%`).
    pub extra_fields: Vec<String>,
    /// CSV columns to skip without complaint (anything else unknown is an error).
    pub ignore_columns: Vec<String>,
    /// More header names for the standard fields, e.g. `code = ["nro_abonado"]`.
    pub columns: BTreeMap<String, Vec<String>>,
    /// `[directory.http]`: live lookup in the billing system.
    pub http: Option<HttpDirectoryConfig>,
}

/// `[directory.http]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpDirectoryConfig {
    /// `{phone}` is replaced by the number as `+5491123456789`, `{phone_digits}` by
    /// `5491123456789`, `{phone_national}` by `1123456789`.
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How long an answer is reused for the same number.
    #[serde(default = "default_cache_secs")]
    pub cache_secs: u64,
    #[serde(default)]
    pub fields: FieldPointers,
    /// PEM file of a CA trusted (besides the Mozilla roots) for an `https://` url.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_timeout_ms() -> u64 {
    1500
}

fn default_cache_secs() -> u64 {
    60
}

/// JSON pointers (RFC 6901) into the billing system's answer, one per field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FieldPointers {
    pub code: String,
    pub name: String,
    pub balance: String,
    pub due_date: Option<String>,
    pub plan: Option<String>,
    pub zone: Option<String>,
    pub email: Option<String>,
}

impl Default for FieldPointers {
    fn default() -> Self {
        FieldPointers {
            code: "/codigo".into(),
            name: "/nombre".into(),
            balance: "/saldo".into(),
            due_date: None,
            plan: None,
            zone: None,
            email: None,
        }
    }
}
