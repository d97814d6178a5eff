//! `%variable%` templates, the syntax ISP billing systems already use.
//!
//! A `%` that does not open a variable name (letters, digits, `_`) followed by a closing `%` is
//! plain text, so "50% de descuento" needs no escaping; `%%` is one literal `%`.
//! Unknown variables are found when a template is saved ([`check`]), never at send time.

use std::collections::{BTreeMap, BTreeSet};

use super::customer::{Customer, format_date};
use crate::config::Language;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        if let Some(stripped) = after.strip_prefix('%') {
            out.push(Piece::Text(&rest[..start + 1]));
            rest = stripped;
            continue;
        }
        match after.find('%') {
            Some(end) if is_name(&after[..end]) => {
                if start > 0 {
                    out.push(Piece::Text(&rest[..start]));
                }
                out.push(Piece::Var(&after[..end]));
                rest = &after[end + 1..];
            }
            _ => {
                out.push(Piece::Text(&rest[..start + 1]));
                rest = after;
            }
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// The variables a template uses, in order of first use.
pub fn variables(template: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for p in pieces(template) {
        if let Piece::Var(v) = p
            && !seen.iter().any(|s: &String| s == v)
        {
            seen.push(v.to_string());
        }
    }
    seen
}

/// Where a template is used decides which variables it may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Balance replies, opt-out confirmations, help: customer variables only.
    Customer,
    /// Ticket replies and operator alerts: also `%id%`, `%operador%`, `%categoria%`, `%texto%`.
    Ticket,
    /// Payment notices: also `%monto%`, `%metodo%`.
    Payment,
    /// Outage notices, replies and the all-clear: also `%eta%`, `%mensaje%`.
    Outage,
}

/// Variables every template may use.
pub const CUSTOMER_VARS: &[&str] = &[
    "nombre",
    "empresa",
    "deuda",
    "codigo",
    "vencimiento",
    "plan",
    "zona",
    "telefono",
    "email",
    "clave_saldo",
    "clave_soporte",
    "clave_baja",
];
pub const TICKET_VARS: &[&str] = &["id", "operador", "categoria", "texto"];
pub const PAYMENT_VARS: &[&str] = &["monto", "metodo"];
pub const OUTAGE_VARS: &[&str] = &["eta", "mensaje"];

/// Checks a template for `use_` against the known variables plus the customers' extra fields.
pub fn check(template: &str, use_: Use, extra_fields: &BTreeSet<String>) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err("is empty".into());
    }
    let mut unknown = Vec::new();
    for v in variables(template) {
        let known = CUSTOMER_VARS.contains(&v.as_str())
            || extra_fields.contains(&v)
            || match use_ {
                Use::Customer => false,
                Use::Ticket => TICKET_VARS.contains(&v.as_str()),
                Use::Payment => PAYMENT_VARS.contains(&v.as_str()),
                Use::Outage => OUTAGE_VARS.contains(&v.as_str()),
            };
        if !known {
            unknown.push(format!("%{v}%"));
        }
    }
    if unknown.is_empty() {
        return Ok(());
    }
    let mut allowed: Vec<&str> = CUSTOMER_VARS.to_vec();
    match use_ {
        Use::Customer => {}
        Use::Ticket => allowed.extend(TICKET_VARS),
        Use::Payment => allowed.extend(PAYMENT_VARS),
        Use::Outage => allowed.extend(OUTAGE_VARS),
    }
    let extras: Vec<&str> = extra_fields.iter().map(String::as_str).collect();
    Err(format!(
        "unknown variable{} {}; this template can use {}{}",
        if unknown.len() > 1 { "s" } else { "" },
        unknown.join(", "),
        allowed
            .iter()
            .map(|v| format!("%{v}%"))
            .collect::<Vec<_>>()
            .join(" "),
        if extras.is_empty() {
            String::new()
        } else {
            format!(
                " and the customer fields {}",
                extras
                    .iter()
                    .map(|v| format!("%{v}%"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    ))
}

/// Values for a render. Missing variables render as empty text (a customer without a plan).
#[derive(Debug, Clone, Default)]
pub struct Vars(BTreeMap<String, String>);

impl Vars {
    pub fn new() -> Vars {
        Vars::default()
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Vars {
        self.0.insert(name.to_string(), value.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The variables of a customer (or of nobody: only `%empresa%` and the phone).
    pub fn for_customer(
        customer: Option<&Customer>,
        company: &str,
        phone: &str,
        language: Language,
    ) -> Vars {
        let mut v = Vars::new();
        v.set("empresa", company).set("telefono", phone);
        if let Some(c) = customer {
            for (k, val) in &c.extra {
                v.set(k, val.clone());
            }
            v.set("nombre", c.name.clone())
                .set("codigo", c.code.clone())
                .set(
                    "deuda",
                    match c.balance {
                        Some(b) => b.format(language),
                        None => unavailable_word(language).to_string(),
                    },
                )
                .set(
                    "vencimiento",
                    c.due_date
                        .map(|d| format_date(d, language))
                        .unwrap_or_default(),
                )
                .set("plan", c.plan.clone().unwrap_or_default())
                .set("zona", c.zone.clone().unwrap_or_default())
                .set("email", c.email.clone().unwrap_or_default());
        }
        v
    }
}

/// What `%deuda%` says when the balance is not known: never `$ 0,00`.
pub fn unavailable_word(language: Language) -> &'static str {
    match language {
        Language::Es => "no disponible",
        Language::En => "not available",
    }
}

/// Fills a template. Unknown variables (only possible for a template that skipped [`check`])
/// are left as written, so a mistake shows instead of vanishing.
pub fn render(template: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    for p in pieces(template) {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(v) => match vars.get(v) {
                Some(val) => out.push_str(val),
                None => {
                    out.push('%');
                    out.push_str(v);
                    out.push('%');
                }
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::customer::Money;

    #[test]
    fn renders_customer_variables_in_the_locale() {
        let c = Customer {
            code: "A-17".into(),
            name: "Ana Pérez".into(),
            balance: Some(Money(123450)),
            due_date: Some(chrono::NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()),
            extra: [("nodo".to_string(), "Norte".to_string())].into(),
            ..Default::default()
        };
        let vars = Vars::for_customer(Some(&c), "Red Sur", "+5491123456789", Language::Es);
        assert_eq!(
            render(
                "Estimado %nombre%, su saldo es %deuda% (vence %vencimiento%, nodo %nodo%). %empresa%",
                &vars
            ),
            "Estimado Ana Pérez, su saldo es $ 1.234,50 (vence 05/12/2026, nodo Norte). Red Sur"
        );
        let en = Vars::for_customer(Some(&c), "Red Sur", "+549", Language::En);
        assert_eq!(render("%deuda% %vencimiento%", &en), "$1,234.50 12/05/2026");
    }

    #[test]
    fn percent_signs_that_are_not_variables_stay() {
        let v = Vars::new();
        assert_eq!(
            render("50% de descuento y 20% más", &v),
            "50% de descuento y 20% más"
        );
        assert_eq!(render("100%% seguro", &v), "100% seguro");
        assert_eq!(render("%", &v), "%");
        assert_eq!(render("%nada%", &v), "%nada%");
        assert_eq!(variables("%a% %b% %a% 5% %c"), vec!["a", "b"]);
    }

    #[test]
    fn unknown_variables_are_rejected_on_save() {
        let extra: BTreeSet<String> = ["nodo".to_string()].into();
        assert!(check("Hola %nombre%, nodo %nodo%", Use::Customer, &extra).is_ok());
        let e = check("Hola %nombre% %nmbre%", Use::Customer, &extra).unwrap_err();
        assert!(e.contains("%nmbre%") && e.contains("%nombre%"), "{e}");
        assert!(check("Ticket %id%", Use::Customer, &extra).is_err());
        assert!(check("Ticket %id% %operador%", Use::Ticket, &extra).is_ok());
        assert!(check("Pago %monto%", Use::Payment, &extra).is_ok());
        assert!(check("Pago %monto%", Use::Ticket, &extra).is_err());
        assert!(check("  ", Use::Customer, &extra).is_err());
    }
}
