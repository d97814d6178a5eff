//! Credit alerts: watches the credit the routes read from their providers or, for a modem's
//! prepaid SIM, from the network by USSD ([`crate::transport::Transport::credit`]) and, when a route's credit falls below its
//! `credit_alert_below`, texts the ticket alert groups on duty — once per crossing. Whether a
//! route is below is kept in the database (`credit_low:<route>`), so a restart while the
//! credit stays low does not alert again; rising back to the threshold or above re-arms it.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Language;
use crate::inbox::RulesContext;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::transport::{Credit, CreditUnit, Transport};

/// How often the routes' last readings are looked at (the readings themselves are hourly).
/// A multiple of the idle grid, so the look shares its wake-up with the other loops' and
/// lands exactly this far apart.
const LOOK_EVERY: Duration = Duration::from_secs(20);

/// What to do about one route's reading, given whether it was below before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// It just went below: alert, then remember.
    FellBelow,
    /// It is back at or above the threshold: forget, so the next fall alerts again.
    Recovered,
    Unchanged,
}

/// Pure: the crossing a reading makes.
pub fn crossing(credit: &Credit, was_low: bool) -> Crossing {
    let (Some(left), Some(below)) = (credit.credit, credit.alert_below) else {
        return Crossing::Unchanged;
    };
    match (left < below, was_low) {
        (true, false) => Crossing::FellBelow,
        (false, true) => Crossing::Recovered,
        _ => Crossing::Unchanged,
    }
}

/// The alert's text, in the company's language.
pub fn alert_text(route: &str, credit: &Credit, language: Language) -> String {
    let left = credit.credit.unwrap_or_default();
    let below = credit.alert_below.unwrap_or_default();
    if credit.unit == CreditUnit::Cents {
        let en = |cents: i64| format!("${}", crate::modem::ussd::format_plain(cents));
        let es = crate::modem::ussd::format_ars;
        return match language {
            Language::Es => format!(
                "pasarela: la SIM del módem {route} tiene {} de saldo (aviso por debajo de {}). \
                 Cárguele crédito para que los SMS no dejen de salir.",
                es(left),
                es(below)
            ),
            Language::En => format!(
                "pasarela: the SIM of modem {route} has {} credit left (alert below {}). Top it \
                 up so SMS keep going out.",
                en(left),
                en(below)
            ),
        };
    }
    match (language, credit.expires.as_deref()) {
        (Language::Es, Some(date)) => format!(
            "pasarela: al proveedor de SMS de la ruta {route} le quedan {left} mensajes \
             (aviso por debajo de {below}). El paquete vence el {date}."
        ),
        (Language::Es, None) => format!(
            "pasarela: al proveedor de SMS de la ruta {route} le quedan {left} mensajes \
             (aviso por debajo de {below})."
        ),
        (Language::En, Some(date)) => format!(
            "pasarela: the SMS provider of route {route} has {left} messages left (alert \
             below {below}). The package expires on {date}."
        ),
        (Language::En, None) => format!(
            "pasarela: the SMS provider of route {route} has {left} messages left (alert \
             below {below})."
        ),
    }
}

/// A figure for the log: messages as a count, money as pesos.
fn shown(credit: &Credit, figure: Option<i64>) -> String {
    let n = figure.unwrap_or_default();
    match credit.unit {
        CreditUnit::Messages => format!("{n} messages"),
        CreditUnit::Cents => crate::modem::ussd::format_ars(n),
    }
}

fn key(route: &str) -> String {
    format!("credit_low:{route}")
}

/// One look at every route with a credit reading.
pub async fn look_once(
    rules: &RulesContext,
    store: &Store,
    transports: &[Arc<dyn Transport>],
) -> anyhow::Result<()> {
    for t in transports {
        let Some(credit) = t.credit() else { continue };
        let name = t.name();
        let was_low = store.meta_get(&key(name)).await? == Some(1);
        match crossing(&credit, was_low) {
            Crossing::FellBelow => {
                // Queued and marked low in one transaction: a crash cannot alert twice.
                let sent = rules
                    .alert_on_duty_marking(
                        alert_text(name, &credit, rules.language()),
                        Some((key(name), 1)),
                    )
                    .await?;
                log::warn!(
                    transport = name;
                    "{name}: the credit is {} (below {}); {sent} alert(s) queued",
                    shown(&credit, credit.credit),
                    shown(&credit, credit.alert_below)
                );
            }
            Crossing::Recovered => {
                log::info!(transport = name; "{name}: the provider's credit is back above the alert threshold");
                store.meta_set(&key(name), None).await?;
            }
            Crossing::Unchanged => {}
        }
    }
    Ok(())
}

/// Looks at the routes' credit until `shutdown`.
pub async fn run(
    rules: RulesContext,
    store: Store,
    transports: Vec<Arc<dyn Transport>>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    // A reading only changes when a route's balance query answers (every few hours): while
    // every reading is the one last looked at, the database is not asked again.
    let mut looked_at: Option<Vec<Option<crate::transport::Credit>>> = None;
    while !shutdown.is_triggered() {
        let now: Vec<_> = transports.iter().map(|t| t.credit()).collect();
        if looked_at.as_ref() != Some(&now) {
            look_once(&rules, &store, &transports).await?;
            looked_at = Some(now);
        }
        tokio::select! {
            _ = crate::idle::sleep(LOOK_EVERY) => {}
            _ = shutdown.wait() => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(left: i64, below: Option<i64>) -> Credit {
        Credit {
            credit: Some(left),
            expires: Some("2026-12-31".into()),
            checked_at_ms: Some(1),
            alert_below: below,
            error: None,
            unit: CreditUnit::Messages,
        }
    }

    #[test]
    fn alerts_once_per_crossing() {
        assert_eq!(
            crossing(&reading(50, Some(100)), false),
            Crossing::FellBelow
        );
        assert_eq!(crossing(&reading(40, Some(100)), true), Crossing::Unchanged);
        assert_eq!(
            crossing(&reading(100, Some(100)), true),
            Crossing::Recovered
        );
        assert_eq!(
            crossing(&reading(500, Some(100)), false),
            Crossing::Unchanged
        );
        assert_eq!(crossing(&reading(5, None), false), Crossing::Unchanged);
        let t = alert_text("smsm", &reading(50, Some(100)), Language::Es);
        assert!(
            t.contains("le quedan 50") && t.contains("2026-12-31"),
            "{t}"
        );
        let sim = Credit {
            credit: Some(4_550),
            alert_below: Some(50_000),
            unit: CreditUnit::Cents,
            ..reading(0, None)
        };
        let t = alert_text("modem1", &sim, Language::Es);
        assert!(
            t.contains("SIM del módem modem1 tiene $ 45,50 de saldo")
                && t.contains("por debajo de $ 500,00"),
            "{t}"
        );
        let t = alert_text("modem1", &sim, Language::En);
        assert!(
            t.contains("has $45.50 credit left (alert below $500.00)"),
            "{t}"
        );
    }
}
