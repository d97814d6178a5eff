//! Checks of the `[[email]]` tables for `check-config`: addresses, areas (each at most one
//! account; with accounts but no `todo`, every area needs one), security (`none` only with
//! `allow_plain = true`), the password.

use std::collections::HashMap;

use lettre::message::Mailbox;

use crate::config::{Config, EmailSecurity};

/// The areas mail is sent for; `todo` is the account of everything else.
pub const AREAS: [&str; 4] = ["facturas", "tickets", "clientes", "todo"];

/// Problems as (dotted key, message).
pub fn check(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for e in &config.email {
        let n = &e.name;
        let mut err = |key: &str, msg: String| out.push((format!("email.{key}"), msg));
        if let Err(why) = e.from.parse::<Mailbox>() {
            err(
                "from",
                format!(
                    "[[email]] `{n}`: `{}` is not an address like \"Facturación <facturas@isp.com.ar>\" ({why})",
                    e.from
                ),
            );
        }
        if let Some(to) = &e.test_to
            && to.parse::<Mailbox>().is_err()
        {
            err(
                "test_to",
                format!("[[email]] `{n}`: `{to}` is not an email address"),
            );
        }
        if e.host.trim().is_empty() || e.host.contains(['/', ' ', ':']) {
            err(
                "host",
                format!(
                    "[[email]] `{n}`: `{}` is not a host name like smtp.isp.com.ar",
                    e.host
                ),
            );
        }
        if e.areas.is_empty() {
            err(
                "areas",
                format!(
                    "[[email]] `{n}` has no areas; list some of {}",
                    AREAS.join(", ")
                ),
            );
        }
        for a in &e.areas {
            if !AREAS.contains(&a.as_str()) {
                err(
                    "areas",
                    format!(
                        "[[email]] `{n}`: `{a}` is not an area; use {}",
                        AREAS.join(", ")
                    ),
                );
            } else if let Some(other) = owner.insert(a.as_str(), n.as_str())
                && other != n
            {
                err(
                    "areas",
                    format!("area `{a}` has two accounts, `{other}` and `{n}`; give each area one"),
                );
            }
        }
        if e.security == EmailSecurity::None && !e.allow_plain {
            err(
                "security",
                format!(
                    "[[email]] `{n}`: \"none\" sends the password and mail in plain text; use \"starttls\" (587) or \"tls\" (465), or add allow_plain = true"
                ),
            );
        }
        if e.allow_plain && e.security != EmailSecurity::None {
            err(
                "allow_plain",
                format!(
                    "[[email]] `{n}`: only applies with security = \"none\"; starttls never falls back to plain text"
                ),
            );
        }
        if e.password.is_some() && e.password_file.is_some() {
            err(
                "password_file",
                format!("[[email]] `{n}`: set password or password_file, not both"),
            );
        }
        if (e.password.is_some() || e.password_file.is_some()) && e.username.is_none() {
            err(
                "username",
                format!("[[email]] `{n}`: a password needs a username"),
            );
        }
        if e.timeout_secs == 0 {
            err(
                "timeout_secs",
                format!("[[email]] `{n}`: must be at least 1"),
            );
        }
    }
    if let Some(op) = &config.email_notify.operator
        && op.parse::<Mailbox>().is_err()
    {
        out.push((
            "email_notify.operator".to_string(),
            format!("`{op}` is not an email address like \"soporte@isp.com.ar\""),
        ));
    }
    if !config.email.is_empty() && !owner.contains_key("todo") {
        for a in AREAS.iter().filter(|a| **a != "todo") {
            if !owner.contains_key(a) {
                out.push((
                    "email.areas".to_string(),
                    format!(
                        "area `{a}` has no account and there is no `todo` account; add \"{a}\" or \"todo\" to the areas of an [[email]]"
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    const GOOD: &str = r#"
[[email]]
name = "facturas"
areas = ["facturas"]
from = "Facturación Fibra Sur <facturas@fibrasur.com.ar>"
host = "smtp.fibrasur.com.ar"
port = 587
username = "facturas@fibrasur.com.ar"
password = "x"
rate_limit = "300/24h"
test_to = "admin@fibrasur.com.ar"

[[email]]
name = "general"
areas = ["todo"]
from = "soporte@fibrasur.com.ar"
host = "smtp.fibrasur.com.ar"
security = "tls"
"#;

    #[test]
    fn a_good_config_passes_and_the_rate_is_n_per_h_hours() {
        let c = config(GOOD);
        assert_eq!(check(&c), vec![]);
        let r = c.route_rate_limit("facturas").unwrap();
        assert_eq!((r.count, r.per.as_secs()), (300, 86_400));
    }

    #[test]
    fn each_mistake_is_named() {
        let bad = GOOD
            .replace(
                "from = \"Facturación Fibra Sur <facturas@fibrasur.com.ar>\"",
                "from = \"facturas at fibrasur\"",
            )
            .replace("areas = [\"todo\"]", "areas = [\"facturas\", \"ventas\"]")
            .replace("security = \"tls\"", "security = \"none\"");
        let keys: Vec<String> = check(&config(&bad)).into_iter().map(|(k, _)| k).collect();
        for key in ["email.from", "email.areas", "email.security"] {
            assert!(keys.contains(&key.to_string()), "{key} in {keys:?}");
        }
        let errs = check(&config(&bad));
        assert!(errs.iter().any(|(_, m)| m.contains("two accounts")));
        assert!(
            errs.iter()
                .any(|(_, m)| m.contains("`ventas` is not an area"))
        );
        assert!(
            errs.iter()
                .any(|(_, m)| m.contains("area `tickets` has no account"))
        );
    }

    #[test]
    fn the_operator_address_is_checked() {
        let good = format!("[email_notify]\noperator = \"soporte@fibrasur.com.ar\"\n{GOOD}");
        assert_eq!(check(&config(&good)), vec![]);
        let bad = format!("[email_notify]\noperator = \"soporte at isp\"\n{GOOD}");
        let errs = check(&config(&bad));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, "email_notify.operator");
        assert!(errs[0].1.contains("`soporte at isp`"), "{errs:?}");
    }

    #[test]
    fn plain_text_needs_the_opt_in() {
        let c = config(&GOOD.replace(
            "security = \"tls\"",
            "security = \"none\"\nallow_plain = true",
        ));
        assert_eq!(check(&c), vec![]);
        let c = config(&GOOD.replace("security = \"tls\"", "allow_plain = true"));
        assert_eq!(check(&c)[0].0, "email.allow_plain");
    }
}
