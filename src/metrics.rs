//! The process's Prometheus metrics, served as OpenMetrics text at `GET /metrics`.
//!
//! Two kinds of figures:
//! - **counted as things happen** ([`Metrics`], one per process, [`global`]): message state
//!   changes by channel, direction and state; webhook rejections by reason; SMS parts sent;
//!   WhatsApp billable messages by category; the keyword-reply latency histogram. Every label
//!   value is a fixed word (an enum or a `&'static str`) and every series is created up front,
//!   so counting allocates nothing and the number of series never grows with traffic.
//! - **read at scrape time** ([`Scrape`]): queue depth by state and priority (one indexed
//!   `GROUP BY` in the store), each route up or down, a modem's signal and registration. The
//!   caller gathers them and [`Metrics::render`] writes everything.
//!
//! The counters are process-wide (like a Prometheus client's default registry) because the
//! places that count — the store's writer, a transport's webhook, the keyword rules — share no
//! handle but the process; tests read differences, never absolute values.

use std::sync::LazyLock;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::model::{Channel, Direction, Priority, State};

/// `Content-Type` of [`Metrics::render`]'s output (Prometheus reads OpenMetrics text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the keyword-reply latency buckets: a reply within a second is the
/// goal; a live billing lookup can take several; beyond 30 s something is wrong.
const REPLY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

/// Why a webhook request was refused, by its HTTP status (the label `reason`).
pub const REJECTION_REASONS: [(u16, &str); 8] = [
    (400, "bad_request"),
    (401, "bad_signature"),
    (403, "forbidden"),
    (404, "unknown_route"),
    (405, "wrong_method"),
    (413, "too_large"),
    (415, "not_json"),
    (422, "invalid"),
];
/// `reason` of any other refusal (4xx not listed in [`REJECTION_REASONS`]).
const OTHER_REASON: &str = "other";

/// WhatsApp's pricing categories, as its webhooks name them.
pub const WHATSAPP_CATEGORIES: [&str; 4] = ["marketing", "utility", "authentication", "service"];

macro_rules! label_value {
    ($($t:ty),+) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, e: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                std::fmt::Write::write_str(e, self.as_str())
            }
        }
    )+};
}
label_value!(Channel, Direction, State, Priority);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    channel: Channel,
    direction: Direction,
    state: State,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    webhook: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabels {
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    state: State,
    priority: Priority,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    channel: Channel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModemLabels {
    route: String,
}

/// The counters and the histogram of one process. See the module doc.
#[derive(Debug)]
pub struct Metrics {
    messages: Family<MessageLabels, Counter>,
    rejections: Family<RejectionLabels, Counter>,
    sms_parts_sent: Counter,
    whatsapp_billable: Family<CategoryLabels, Counter>,
    keyword_reply: Histogram,
}

/// The webhook kinds whose refusals are counted (the path segment after `/webhooks/`), plus
/// `unknown` for paths no kind serves.
const WEBHOOKS: [&str; 3] = ["android", "whatsapp", "unknown"];

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

/// Queue states shown by `pasarela_queue_messages` (the messages not yet handed to a route
/// for good).
pub const QUEUE_STATES: [State; 3] = [State::Scheduled, State::Queued, State::Sending];

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Every series exists from the start (at 0), so counting never inserts into a family.
    pub fn new() -> Metrics {
        let m = Metrics {
            messages: Family::default(),
            rejections: Family::default(),
            sms_parts_sent: Counter::default(),
            whatsapp_billable: Family::default(),
            keyword_reply: Histogram::new(REPLY_BUCKETS),
        };
        for &channel in Channel::ALL {
            for &direction in Direction::ALL {
                for &state in State::ALL {
                    let _ = m.messages.get_or_create(&MessageLabels {
                        channel,
                        direction,
                        state,
                    });
                }
            }
        }
        for webhook in WEBHOOKS {
            for reason in REJECTION_REASONS
                .iter()
                .map(|(_, r)| *r)
                .chain([OTHER_REASON])
            {
                let _ = m
                    .rejections
                    .get_or_create(&RejectionLabels { webhook, reason });
            }
        }
        for category in WHATSAPP_CATEGORIES {
            let _ = m
                .whatsapp_billable
                .get_or_create(&CategoryLabels { category });
        }
        m
    }

    /// A message entered `state` (stored, or moved there). Allocates nothing.
    pub fn count_message(&self, channel: Channel, direction: Direction, state: State) {
        self.messages
            .get_or_create(&MessageLabels {
                channel,
                direction,
                state,
            })
            .inc();
    }

    /// How many times a message entered `state` so far (for tests and the benchmark).
    pub fn messages(&self, channel: Channel, direction: Direction, state: State) -> u64 {
        self.messages
            .get_or_create(&MessageLabels {
                channel,
                direction,
                state,
            })
            .get()
    }

    /// A webhook of kind `webhook` answered `status` (counted when it is a 4xx).
    pub fn count_webhook_answer(&self, webhook: &str, status: u16) {
        if !(400..500).contains(&status) {
            return;
        }
        let webhook = WEBHOOKS
            .iter()
            .find(|w| **w == webhook)
            .copied()
            .unwrap_or("unknown");
        let reason = REJECTION_REASONS
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(OTHER_REASON, |(_, r)| r);
        self.rejections
            .get_or_create(&RejectionLabels { webhook, reason })
            .inc();
    }

    /// One SMS part (a whole single-part SMS, or one part of a long one) left through a route.
    pub fn count_sms_part_sent(&self) {
        self.sms_parts_sent.inc();
    }

    /// A billable WhatsApp message priced in `category` (unknown categories count as
    /// `service`, as the daily cost counters do).
    pub fn count_whatsapp_billable(&self, category: &str) {
        let category = WHATSAPP_CATEGORIES
            .iter()
            .find(|c| **c == category)
            .copied()
            .unwrap_or("service");
        self.whatsapp_billable
            .get_or_create(&CategoryLabels { category })
            .inc();
    }

    /// A keyword message was answered: `seconds` from storing it to its reply being queued.
    pub fn observe_keyword_reply(&self, seconds: f64) {
        self.keyword_reply.observe(seconds);
    }

    /// The whole exposition: the counters above plus the scrape-time figures of `scrape`.
    pub fn render(&self, scrape: &Scrape) -> String {
        let mut r = Registry::with_prefix("pasarela");
        r.register(
            "messages",
            "Messages that entered a state (stored, or moved there), by channel, direction and state",
            self.messages.clone(),
        );
        r.register(
            "webhook_rejections",
            "Webhook requests refused, by webhook kind and reason (the HTTP status)",
            self.rejections.clone(),
        );
        r.register(
            "sms_parts_sent",
            "SMS parts handed to the network by a modem (a long message counts each part)",
            self.sms_parts_sent.clone(),
        );
        r.register(
            "whatsapp_billable_messages",
            "WhatsApp messages Meta reported as billable, by pricing category",
            self.whatsapp_billable.clone(),
        );
        r.register(
            "keyword_reply_seconds",
            "Seconds from a customer's keyword message being stored to its reply being queued",
            self.keyword_reply.clone(),
        );

        let queue = Family::<QueueLabels, Gauge>::default();
        for state in QUEUE_STATES {
            for &priority in Priority::ALL {
                let n = scrape
                    .queue
                    .iter()
                    .find(|(s, p, _)| *s == state && *p == priority)
                    .map_or(0, |(_, _, n)| *n);
                queue
                    .get_or_create(&QueueLabels { state, priority })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        r.register(
            "queue_messages",
            "Messages waiting, by state (scheduled, queued, sending) and priority",
            queue,
        );

        let up = Family::<RouteLabels, Gauge>::default();
        let signal = Family::<ModemLabels, Gauge>::default();
        let registered = Family::<ModemLabels, Gauge>::default();
        for route in &scrape.routes {
            up.get_or_create(&RouteLabels {
                route: route.name.clone(),
                channel: route.channel,
            })
            .set(i64::from(route.up));
            let modem = ModemLabels {
                route: route.name.clone(),
            };
            if let Some(dbm) = route.signal_dbm {
                signal.get_or_create(&modem).set(dbm);
            }
            if let Some(reg) = route.registered {
                registered.get_or_create(&modem).set(i64::from(reg));
            }
        }
        r.register(
            "route_up",
            "1 while a route can send, 0 while it is down",
            up,
        );
        r.register(
            "modem_signal_dbm",
            "A modem's received signal strength in dBm (absent while unknown)",
            signal,
        );
        r.register(
            "modem_registered",
            "1 while a modem is registered on its network (home or roaming), else 0",
            registered,
        );
        let credit = Family::<ModemLabels, Gauge<f64, AtomicU64>>::default();
        for route in &scrape.routes {
            if let Some(cents) = route.sim_credit_cents {
                credit
                    .get_or_create(&ModemLabels {
                        route: route.name.clone(),
                    })
                    .set(cents as f64 / 100.0);
            }
        }
        r.register(
            "sim_credit",
            "A modem's prepaid SIM credit in pesos, as its last balance_ussd answer gave it (absent until read)",
            credit,
        );
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        out
    }
}

/// The figures read at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Scrape {
    /// (state, priority, count) of waiting messages; missing combinations are 0.
    pub queue: Vec<(State, Priority, u64)>,
    pub routes: Vec<RouteSample>,
}

/// One route as a scrape sees it.
#[derive(Debug, Clone)]
pub struct RouteSample {
    pub name: String,
    pub channel: Channel,
    pub up: bool,
    /// Modems: the last signal reading.
    pub signal_dbm: Option<i64>,
    /// Modems: registered on the network (home or roaming).
    pub registered: Option<bool>,
    /// Modems with `balance_ussd`: the SIM's last known credit, in cents.
    pub sim_credit_cents: Option<i64>,
}

impl RouteSample {
    /// Reads a route's health and, for a modem, its signal and registration from the facts it
    /// shows on the status page.
    pub fn of(t: &dyn crate::transport::Transport) -> RouteSample {
        let details = t.details();
        let field = |k: &str| details.as_ref().and_then(|d| d.get(k).cloned());
        RouteSample {
            name: t.name().to_string(),
            channel: t.channel(),
            up: t.health().up,
            signal_dbm: field("signal_dbm").and_then(|v| v.as_i64()),
            registered: field("registration")
                .and_then(|v| v.as_str().map(|s| matches!(s, "home" | "roaming"))),
            sim_credit_cents: field("balance").and_then(|b| b.get("cents")?.as_i64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn counters_and_scrape_figures_are_rendered_with_their_labels() {
        let m = Metrics::new();
        m.count_message(Channel::Sms, Direction::Out, State::Sent);
        m.count_message(Channel::Sms, Direction::Out, State::Sent);
        m.count_webhook_answer("android", 401);
        m.count_webhook_answer("android", 418);
        m.count_webhook_answer("android", 200);
        m.count_webhook_answer("/etc/passwd", 404);
        m.count_whatsapp_billable("utility");
        m.count_whatsapp_billable("nonsense");
        m.count_sms_part_sent();
        m.observe_keyword_reply(0.3);
        let text = m.render(&Scrape {
            queue: vec![(State::Queued, Priority::Bulk, 7)],
            routes: vec![
                RouteSample {
                    name: "modem1".into(),
                    channel: Channel::Sms,
                    up: false,
                    signal_dbm: Some(-87),
                    registered: Some(false),
                    sim_credit_cents: Some(123_450),
                },
                RouteSample {
                    name: "whatsapp".into(),
                    channel: Channel::Whatsapp,
                    up: true,
                    signal_dbm: None,
                    registered: None,
                    sim_credit_cents: None,
                },
            ],
        });
        for expected in [
            r#"pasarela_messages_total{channel="sms",direction="out",state="sent"} 2"#,
            r#"pasarela_messages_total{channel="email",direction="in",state="failed"} 0"#,
            r#"pasarela_webhook_rejections_total{webhook="android",reason="bad_signature"} 1"#,
            r#"pasarela_webhook_rejections_total{webhook="android",reason="other"} 1"#,
            r#"pasarela_webhook_rejections_total{webhook="unknown",reason="unknown_route"} 1"#,
            r#"pasarela_whatsapp_billable_messages_total{category="utility"} 1"#,
            r#"pasarela_whatsapp_billable_messages_total{category="service"} 1"#,
            "pasarela_sms_parts_sent_total 1",
            r#"pasarela_keyword_reply_seconds_bucket{le="0.5"} 1"#,
            r#"pasarela_keyword_reply_seconds_bucket{le="0.25"} 0"#,
            "pasarela_keyword_reply_seconds_count 1",
            r#"pasarela_queue_messages{state="queued",priority="bulk"} 7"#,
            r#"pasarela_queue_messages{state="scheduled",priority="reply"} 0"#,
            r#"pasarela_route_up{route="modem1",channel="sms"} 0"#,
            r#"pasarela_route_up{route="whatsapp",channel="whatsapp"} 1"#,
            r#"pasarela_modem_signal_dbm{route="modem1"} -87"#,
            r#"pasarela_sim_credit{route="modem1"} 1234.5"#,
            r#"pasarela_modem_registered{route="modem1"} 0"#,
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == expected), "{expected}\n{text}");
        }
        assert!(line(&text, r#"pasarela_modem_signal_dbm{route="whatsapp""#).is_none());
        assert!(
            line(
                &text,
                r#"pasarela_webhook_rejections_total{webhook="android",reason="2"#
            )
            .is_none()
        );
    }
}
