//! The transport kinds pasarela knows, one line each in [`KINDS`]. A kind builds its routes
//! from its own config table: the [`Transport`]s the dispatcher sends through, the background
//! tasks the daemon supervises, and optionally a webhook router the daemon mounts at
//! `/webhooks/<kind>/…` on the `[webhooks]` listener. Adding a kind is one module that
//! implements [`Kind`] plus one line here.
//! The trait and what a kind builds are in [`crate::transport::kind`].

use crate::transport::kind::{BuildContext, Built, Kind};

/// Every kind, in the order their routes are listed (modems first).
pub const KINDS: &[&dyn Kind] = &[
    &crate::modem::gsm::KIND,
    &crate::transport::android::KIND,
    &crate::transport::http_sms::KIND,
    &crate::transport::whatsapp::KIND,
    &crate::transport::email::KIND,
];

/// Builds every kind's routes; the webhook routers come back as one, each kind's mounted at
/// `/webhooks/<kind>`, with a JSON 404 for anything else.
pub fn build_all(cx: &BuildContext<'_>) -> anyhow::Result<Built> {
    let mut all = Built::default();
    let mut router = axum::Router::new();
    for kind in KINDS {
        let built = kind.build(cx)?;
        all.transports.extend(built.transports);
        all.tasks.extend(built.tasks);
        if let Some(r) = built.webhooks {
            let name = kind.name();
            router = router.nest(
                &format!("/webhooks/{name}"),
                r.layer(axum::middleware::map_response(
                    move |answer: axum::response::Response| async move {
                        crate::metrics::global()
                            .count_webhook_answer(name, answer.status().as_u16());
                        answer
                    },
                )),
            );
        }
    }
    all.webhooks = Some(router.fallback(webhook_not_found));
    Ok(all)
}

async fn webhook_not_found() -> crate::jsonapi::ApiError {
    crate::metrics::global().count_webhook_answer("unknown", 404);
    crate::jsonapi::ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "this listener only takes webhooks at /webhooks/<kind>/<route name>",
    )
}
