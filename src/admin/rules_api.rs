//! JSON API for what customers touch: the customer directory, tickets, billing events, the
//! auto-reply rules and template previews.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;

use super::{ApiError, AppState, JsonBody};
use crate::directory::{self, CustomerJson, ImportError, ImportReport, MAX_CUSTOMERS};
use crate::rules::template::{self, Use};
use crate::rules::{Customer, Money, Settings};
use crate::store::directory as sql;
use crate::store::{Channel, NewOutbound, Priority, now_ms};
use crate::transport::email::notice::{DocKind, queue_notice};

/// Largest customer upload (100,000 customers of ~300 bytes fit).
const CUSTOMERS_LIMIT: usize = 64 * 1024 * 1024;
const SMALL_LIMIT: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/customers",
            post(upsert_customers)
                .get(find_customers)
                .layer(axum::extract::DefaultBodyLimit::max(CUSTOMERS_LIMIT)),
        )
        .route(
            "/api/customers/import",
            post(import_customers).layer(axum::extract::DefaultBodyLimit::max(CUSTOMERS_LIMIT)),
        )
        .route("/api/tickets", get(list_tickets))
        .route("/api/tickets/{id}", get(get_ticket))
        .route("/api/tickets/{id}/close", post(close_ticket))
        .route("/api/tickets/{id}/reopen", post(reopen_ticket))
        .route("/api/tickets/{id}/assign", post(assign_ticket))
        .route("/api/events", post(event))
        .route(
            "/api/rules",
            get(get_rules).put(put_rules).delete(reset_rules),
        )
        .route("/api/templates/preview", post(preview))
}

/// These routes in the OpenAPI document (`crate::admin::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    upsert_customers,
    find_customers,
    import_customers,
    list_tickets,
    get_ticket,
    close_ticket,
    reopen_ticket,
    assign_ticket,
    event,
    get_rules,
    put_rules,
    reset_rules,
    preview
))]
pub(super) struct Doc;

fn report_response(report: ImportReport) -> impl IntoResponse {
    let status = if report.inserted + report.updated == 0 && !report.rejected.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    log::info!(
        "customers: {} inserted, {} updated, {} rejected",
        report.inserted,
        report.updated,
        report.rejected.len()
    );
    (status, Json(report))
}

fn import_error(e: ImportError) -> ApiError {
    match e {
        ImportError::File(f) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_file", f.0)
        }
        ImportError::Internal(m) => ApiError::internal(m),
    }
}

/// `POST /api/customers`: a JSON array, upserted by code in one transaction.
#[utoipa::path(post, path = "/api/customers", tag = "customers", request_body = Vec<crate::directory::CustomerJson>,
    responses(
        (status = 200, description = "what was inserted and updated; bad items are in `rejected` and change nothing", body = crate::directory::ImportReport),
        (status = 422, description = "every item was rejected (the report as for 200), or `too_many`: more than 100,000 customers", body = serde_json::Value),
    ))]
async fn upsert_customers(
    State(state): State<AppState>,
    JsonBody(items): JsonBody<Vec<CustomerJson>, CUSTOMERS_LIMIT>,
) -> Result<impl IntoResponse, ApiError> {
    if items.len() > MAX_CUSTOMERS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many",
            format!(
                "{} customers in one request; send at most {MAX_CUSTOMERS}",
                items.len()
            ),
        ));
    }
    let report = directory::import_json(&state.store, items, state.phones.clone())
        .await
        .map_err(import_error)?;
    Ok(report_response(report))
}

/// `POST /api/customers/import`: a CSV file as the body (`Content-Type: text/csv`).
#[utoipa::path(post, path = "/api/customers/import", tag = "customers",
    request_body(content = String, content_type = "text/csv", description = "the billing system's export: `,` `;` or tab, UTF-8 or Latin-1"),
    responses(
        (status = 200, description = "what was inserted and updated; bad rows are in `rejected` with their line", body = crate::directory::ImportReport),
        (status = 415, description = "`unsupported_media_type`: not sent as text/csv", body = crate::jsonapi::ErrorEnvelope),
        (status = 422, description = "every row was rejected (the report as for 200), or `invalid_file`: the whole file is refused (unknown column, unclosed quote…)", body = serde_json::Value),
    ))]
async fn import_customers(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(ct.starts_with("text/csv") || ct.starts_with("text/plain") || ct.is_empty()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the CSV file as the body with Content-Type: text/csv (got {ct})"),
        ));
    }
    if body.len() > CUSTOMERS_LIMIT {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the file is larger than {} MiB", CUSTOMERS_LIMIT >> 20),
        ));
    }
    let report = directory::import_csv(
        &state.store,
        body.to_vec(),
        state.rules.directory_config.clone(),
        state.phones.clone(),
    )
    .await
    .map_err(import_error)?;
    Ok(report_response(report))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CustomerQuery {
    phone: Option<String>,
    q: Option<String>,
    code: Option<String>,
    limit: Option<u32>,
}

/// A customer for the API. `optouts_by_number` lists the customer's numbers that texted
/// `BAJA` (they get no notices or bulk on that channel even while `optout` is all false).
fn customer_json(c: &Customer, by_number: &[(String, String, i64)]) -> serde_json::Value {
    serde_json::json!({
        "optouts_by_number": by_number
            .iter()
            .map(|(channel, phone, at)| serde_json::json!({"channel": channel, "phone": phone, "at": at}))
            .collect::<Vec<_>>(),
        "id": c.id,
        "code": c.code,
        "name": c.name,
        "phones": c.phones,
        "email": c.email,
        "balance": c.balance.map(Money::plain),
        "due_date": c.due_date.map(|d| d.to_string()),
        "plan": c.plan,
        "zone": c.zone,
        "extra": c.extra,
        "optout": c.optout,
        "channels": c.channels,
    })
}

/// `GET /api/customers?phone=…`, `?code=…` or `?q=…` (code or name contains).
#[utoipa::path(get, path = "/api/customers", tag = "customers", params(CustomerQuery),
    responses(
        (status = 200, description = "`{\"customers\":[{\"id\",\"code\",\"name\",\"phones\",\"email\",\"balance\",\"due_date\",\"plan\",\"zone\",\"extra\",\"optout\",\"channels\",\"optouts_by_number\"}],\"total_in_directory\"}`", body = serde_json::Value),
    ))]
async fn find_customers(
    State(state): State<AppState>,
    Query(q): Query<CustomerQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let found = if let Some(phone) = q.phone.filter(|p| !p.trim().is_empty()) {
        let n = state
            .phones
            .normalize(&phone)
            .map_err(|e| ApiError::field("phone", e.to_string()))?;
        let n = n.as_str().to_string();
        state
            .store
            .read(move |c| sql::customers_by_phone(c, &n))
            .await?
    } else if let Some(code) = q.code.filter(|c| !c.trim().is_empty()) {
        state
            .store
            .read(move |c| sql::customer_by_code(c, code.trim()))
            .await?
            .into_iter()
            .collect()
    } else {
        let text = q.q.unwrap_or_default();
        state
            .store
            .read(move |c| sql::search_customers(c, text.trim(), limit))
            .await?
    };
    let (total, by_number) = {
        let ids: Vec<i64> = found.iter().filter_map(|c| c.id).collect();
        state
            .store
            .read(move |c| {
                let mut by_number = std::collections::HashMap::new();
                for id in ids {
                    by_number.insert(id, sql::number_optouts(c, id)?);
                }
                Ok((sql::count_customers(c)?, by_number))
            })
            .await?
    };
    Ok(Json(serde_json::json!({
        "customers": found
            .iter()
            .map(|c| customer_json(c, c.id.and_then(|id| by_number.get(&id)).map_or(&[], |v| v)))
            .collect::<Vec<_>>(),
        "total_in_directory": total,
    })))
}

// ----- tickets --------------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TicketQuery {
    /// `open` or `closed`.
    state: Option<String>,
    customer: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

fn ticket_json(t: &sql::Ticket) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "customer": t.customer_code,
        "phone": t.peer,
        "channel": t.channel,
        "text": t.text,
        "state": t.state,
        "operator": t.operator,
        "category": t.category,
        "message_id": t.message_id,
        "created_at": super::rfc3339(t.created_at),
        "updated_at": super::rfc3339(t.updated_at),
        "closed_at": t.closed_at.map(super::rfc3339),
        "forward": t.forward_state.as_ref().map(|s| serde_json::json!({
            "state": s, "attempts": t.forward_attempts, "last_error": t.forward_error,
        })),
    })
}

/// Tickets, newest first.
#[utoipa::path(get, path = "/api/tickets", tag = "tickets", params(TicketQuery),
    responses(
        (status = 200, description = "`{\"tickets\":[{\"id\",\"customer\",\"phone\",\"channel\",\"text\",\"state\",\"operator\",\"category\",\"message_id\",\"created_at\",\"updated_at\",\"closed_at\",\"forward\"}],\"next_before\"}`", body = serde_json::Value),
    ))]
async fn list_tickets(
    State(state): State<AppState>,
    Query(q): Query<TicketQuery>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(s) = &q.state
        && !["open", "closed"].contains(&s.as_str())
    {
        return Err(ApiError::field(
            "state",
            format!("`{s}` is not open or closed"),
        ));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let tickets = state
        .store
        .read(move |c| {
            sql::list_tickets(
                c,
                q.state.as_deref(),
                q.customer.as_deref(),
                q.before,
                limit,
            )
        })
        .await?;
    Ok(Json(serde_json::json!({
        "tickets": tickets.iter().map(ticket_json).collect::<Vec<_>>(),
        "next_before": if tickets.len() as u32 == limit { tickets.last().map(|t| t.id) } else { None },
    })))
}

fn no_ticket(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("ticket {id} not found"),
    )
}

/// One ticket, with its forwarding state.
#[utoipa::path(get, path = "/api/tickets/{id}", tag = "tickets", params(("id" = i64, Path)),
    responses(
        (status = 200, description = "the ticket", body = serde_json::Value),
        (status = 404, description = "no such ticket", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn get_ticket(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let t = state
        .store
        .read(move |c| sql::get_ticket(c, id))
        .await?
        .ok_or_else(|| no_ticket(id))?;
    Ok(Json(ticket_json(&t)))
}

async fn change_ticket(
    state: &AppState,
    id: i64,
    new_state: Option<&'static str>,
    operator: Option<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Closing mails the customer and the operator: their variables need the customer.
    let mail = match (new_state, state.rules.ticket_mail()) {
        (Some("closed"), Some(mail)) => {
            let before = state
                .store
                .read(move |c| {
                    let Some(t) = sql::get_ticket(c, id)? else {
                        return Ok(None);
                    };
                    let customer = match &t.customer_code {
                        Some(code) => sql::customer_by_code(c, code)?,
                        None => None,
                    };
                    Ok(Some((t, customer)))
                })
                .await?;
            before.map(|(t, customer)| {
                let mut vars = state.rules.vars(customer.as_ref(), &t.peer);
                if customer.is_none() {
                    vars.set("nombre", t.peer.clone());
                }
                vars.set("id", id.to_string())
                    .set("numero", id.to_string())
                    .set("texto", t.text.clone())
                    .set("operador", t.operator.clone())
                    .set("categoria", t.category.clone());
                (mail, customer, vars)
            })
        }
        _ => None,
    };
    let language = state.rules.company.language;
    let (t, mailed) = state
        .store
        .write(move |c| {
            let was_closed = sql::get_ticket(c, id)?.is_some_and(|t| t.state == "closed");
            let Some(t) = sql::update_ticket(c, id, new_state, operator.as_deref(), now_ms())?
            else {
                return Ok(None);
            };
            let mut mailed = 0;
            if let Some((mail, customer, vars)) = mail.filter(|_| !was_closed) {
                mailed = crate::inbox::queue_ticket_mails(
                    c,
                    Some(&mail),
                    DocKind::TicketClosed,
                    language,
                    customer.as_ref().and_then(|x| x.email.as_deref()),
                    customer.as_ref().and_then(|x| x.id),
                    &vars,
                    now_ms(),
                )?;
            }
            Ok(Some((t, mailed)))
        })
        .await?
        .ok_or_else(|| no_ticket(id))?;
    if mailed > 0 {
        state.dispatch.wake();
    }
    log::info!(
        "ticket {id}: now {} (operator {}){}",
        t.state,
        t.operator,
        if mailed > 0 {
            format!("; {mailed} mail(s) queued")
        } else {
            String::new()
        }
    );
    Ok(Json(ticket_json(&t)))
}

/// Closes a ticket.
#[utoipa::path(post, path = "/api/tickets/{id}/close", tag = "tickets", params(("id" = i64, Path)),
    responses(
        (status = 200, description = "the ticket", body = serde_json::Value),
        (status = 404, description = "no such ticket", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn close_ticket(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    change_ticket(&state, id, Some("closed"), None).await
}

/// Reopens a ticket.
#[utoipa::path(post, path = "/api/tickets/{id}/reopen", tag = "tickets", params(("id" = i64, Path)),
    responses(
        (status = 200, description = "the ticket", body = serde_json::Value),
        (status = 404, description = "no such ticket", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn reopen_ticket(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    change_ticket(&state, id, Some("open"), None).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AssignRequest {
    /// 1 to 64 characters.
    operator: String,
}

/// Assigns a ticket to an operator.
#[utoipa::path(post, path = "/api/tickets/{id}/assign", tag = "tickets", params(("id" = i64, Path)),
    request_body = AssignRequest,
    responses(
        (status = 200, description = "the ticket", body = serde_json::Value),
        (status = 404, description = "no such ticket", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn assign_ticket(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<AssignRequest, SMALL_LIMIT>,
) -> Result<impl IntoResponse, ApiError> {
    let op = req.operator.trim().to_string();
    if op.is_empty() || op.chars().count() > 64 {
        return Err(ApiError::field("operator", "must be 1 to 64 characters"));
    }
    change_ticket(&state, id, None, Some(op)).await
}

// ----- billing events -------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EventRequest {
    /// The billing system's event id (1 to 128 characters): a retry with it is harmless.
    id: String,
    /// `payment` or `invoice`.
    #[serde(rename = "type")]
    kind: String,
    /// The customer's code.
    customer: String,
    #[serde(default)]
    amount: Option<serde_json::Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    balance: Option<serde_json::Value>,
    /// Invoice: due date (`2026-12-10`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due: Option<String>,
    /// Invoice: its number (`0001-00001234`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    number: Option<String>,
    /// Invoice: the billing system's link to the PDF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pdf_url: Option<String>,
}

fn money_field(field: &str, v: &Option<serde_json::Value>) -> Result<Option<Money>, ApiError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Money::parse(s)
            .map(Some)
            .map_err(|e| ApiError::field(field, e)),
        Some(serde_json::Value::Number(n)) => Money::from_json_number(n)
            .map(Some)
            .map_err(|e| ApiError::field(field, e)),
        Some(other) => Err(ApiError::field(
            field,
            format!("{other} is not an amount; send \"1234.50\" or 1234.50"),
        )),
    }
}

/// `POST /api/events`: a billing event. Today: `payment`. The event id makes a retry harmless:
/// the same id with the same body answers what the first call answered.
/// A billing event: a payment or an invoice.
#[utoipa::path(post, path = "/api/events", tag = "billing events", request_body = EventRequest,
    responses(
        (status = 202, description = "`{\"id\",\"type\",\"customer\",\"result\":{\"notice\":{\"id\",\"state\"}|null,…}}`", body = serde_json::Value),
        (status = 200, description = "a retry: the same id and body; the first answer with `\"duplicate\":true`", body = serde_json::Value),
        (status = 409, description = "the same id with a different body", body = crate::jsonapi::ErrorEnvelope),
        (status = 422, description = "an unknown customer (`field`: `customer`) or an event that cannot be applied", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn event(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EventRequest, SMALL_LIMIT>,
) -> Result<impl IntoResponse, ApiError> {
    let id = req.id.trim().to_string();
    if id.is_empty() || id.len() > 128 {
        return Err(ApiError::field(
            "id",
            "must be 1 to 128 characters (the billing system's event id)",
        ));
    }
    if req.kind == "invoice" {
        return invoice(state, id, req).await;
    }
    if req.kind != "payment" {
        return Err(ApiError::field(
            "type",
            format!(
                "`{}` is not an event type pasarela knows; send \"payment\" or \"invoice\"",
                req.kind
            ),
        ));
    }
    let amount = money_field("amount", &req.amount)?
        .ok_or_else(|| ApiError::field("amount", "is required for a payment"))?;
    let balance = money_field("balance", &req.balance)?;
    let automatic = match req.method.as_deref() {
        Some("automatic") => true,
        Some("manual") => false,
        None => {
            return Err(ApiError::field(
                "method",
                "is required: \"automatic\" or \"manual\"",
            ));
        }
        Some(other) => {
            return Err(ApiError::field(
                "method",
                format!("`{other}` is not \"automatic\" or \"manual\""),
            ));
        }
    };
    let body = serde_json::to_string(&req).map_err(ApiError::internal)?;
    let code = req.customer.trim().to_string();

    // A retry answers from the stored result.
    let stored = {
        let id = id.clone();
        state.store.read(move |c| sql::get_event(c, &id)).await?
    };
    if let Some((stored_body, result)) = stored {
        return replay(&id, &stored_body, &body, &result);
    }
    let customer = {
        let code = code.clone();
        state
            .store
            .read(move |c| sql::customer_by_code(c, &code))
            .await?
    };
    let Some(mut customer) = customer else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_customer",
            format!("customer: no customer with code `{code}` in the directory; import it first (POST /api/customers)"),
        )
        .with_field("customer"));
    };
    if let Some(b) = balance {
        customer.balance = Some(b);
    }
    let settings = state.rules.settings();
    let enabled = if automatic {
        settings.payment.automatic
    } else {
        settings.payment.manual
    };
    let rules = state.rules.clone();
    let now = now_ms();
    let phone = customer.phones.first().cloned();
    // Without a `balance` the stored one predates this payment: the notice does not tell it as
    // current (its own template, and `%deuda%` says "no disponible").
    if balance.is_none() {
        customer.balance = None;
    }
    let notice_template = match balance {
        Some(_) => settings.payment.template.as_deref(),
        None => settings.payment.template_without_balance.as_deref(),
    };
    let text = phone.as_ref().map(|p| {
        let mut vars = rules.vars(Some(&customer), p);
        vars.set("monto", amount.format(rules.company.language))
            .set("metodo", rules.method_word(automatic));
        template::render(notice_template.unwrap_or(""), &vars)
    });
    // `[rules.payment] channels`: the notice goes over them in order, like an invoice.
    let planned = match settings.payment.channels.as_ref() {
        None => None,
        Some(channels) => {
            let mut vars = rules.vars(Some(&customer), phone.as_deref().unwrap_or(""));
            vars.set("monto", amount.format(rules.company.language))
                .set("metodo", rules.method_word(automatic));
            let route = crate::config::EventChannels {
                channels: channels.clone(),
                whatsapp_template: settings.payment.whatsapp_template.clone(),
                sms_text: settings.payment.template.clone(),
            };
            let prefer = customer.channels.get("payment").map(Vec::as_slice);
            let mail = event_mail(
                &state,
                &route,
                prefer,
                &customer,
                DocKind::Payment,
                &vars,
                None,
            )
            .await;
            Some(crate::events::plan(
                &route,
                &available(&state, mail),
                phone.as_deref(),
                &vars,
                prefer,
            ))
        }
    };
    let window = rules.window_for(Priority::Notification, None);
    let not_before = rules.not_before(window.as_deref(), now);
    let (id2, body2) = (id.clone(), body.clone());
    let outcome = state
        .store
        .write(move |c| {
            // Checked again inside the transaction: two identical events racing store one.
            if let Some((stored_body, result)) = sql::get_event(c, &id2)? {
                return Ok(Err((stored_body, result)));
            }
            let cid = customer.id.unwrap_or_default();
            if let Some(b) = balance {
                sql::set_balance(c, cid, b, now)?;
            }
            let result = match (&phone, enabled) {
                (_, false) => serde_json::json!({"notice": null, "reason": format!(
                    "payment notices for {} payments are off (rules.payment.{})",
                    if automatic { "automatic" } else { "manual" },
                    if automatic { "automatic" } else { "manual" })}),
                (None, true) => serde_json::json!({"notice": null, "reason": "the customer has no phone number"}),
                (_, true) if planned.is_some() => {
                    let (steps, skipped) = planned.clone().unwrap_or_default();
                    insert_steps(c, &id2, &steps, Some(cid), window.clone(), not_before, now)?
                        .map(|first| serde_json::json!({"notice": first, "skipped": skipped}))
                        .unwrap_or_else(|| serde_json::json!({"notice": null, "skipped": skipped,
                            "reason": "no channel can carry it"}))
                }
                (Some(p), true) if sql::opted_out(c, Channel::Sms, p, Some(cid))? => {
                    serde_json::json!({"notice": null, "reason": "the customer opted out of notices (BAJA)"})
                }
                (Some(p), true) => {
                    let placed = crate::store::messages::insert_outbound(
                        c,
                        &[NewOutbound {
                            channel: Channel::Sms,
                            peer: p.clone(),
                            body: text.clone().unwrap_or_default(),
                            priority: Priority::Notification,
                            customer_id: Some(cid),
                            window: window.clone(),
                            not_before,
                        }],
                        now,
                    )?;
                    serde_json::json!({"notice": {"id": placed[0].0.0, "state": placed[0].1}})
                }
            };
            let result = serde_json::json!({"id": id2, "type": "payment", "customer": customer.code, "result": result});
            sql::insert_event(c, &id2, "payment", &body2, &result.to_string(), now)?;
            Ok(Ok(result))
        })
        .await?;
    answer_event(&state, &id, "payment", &code, &body, outcome)
}

/// An `invoice` event: planned over `[events.invoice] channels` ([`crate::events`]); the
/// first usable channel is queued now, the next ones carry it if it fails for good.
async fn invoice(
    state: AppState,
    id: String,
    req: EventRequest,
) -> Result<axum::response::Response, ApiError> {
    let Some(route) = state.events.invoice.clone() else {
        return Err(ApiError::field(
            "type",
            "invoice events are not set up: add [events.invoice] to the config",
        ));
    };
    let amount = money_field("amount", &req.amount)?
        .ok_or_else(|| ApiError::field("amount", "is required for an invoice"))?;
    let due = match req.due.as_deref() {
        Some(d) => crate::rules::customer::parse_date(d).map_err(|e| ApiError::field("due", e))?,
        None => {
            return Err(ApiError::field(
                "due",
                "is required for an invoice (2026-12-10)",
            ));
        }
    };
    let number = req
        .number
        .clone()
        .filter(|n| !n.trim().is_empty() && n.len() <= 64)
        .ok_or_else(|| {
            ApiError::field(
                "number",
                "is required: the invoice number, up to 64 characters",
            )
        })?;
    let pdf_url = match req.pdf_url.as_deref() {
        Some(u) if crate::config::http_url(u) => Some(u.to_string()),
        Some(_) => {
            return Err(ApiError::field(
                "pdf_url",
                "must be an http:// or https:// URL",
            ));
        }
        None => None,
    };
    let body = serde_json::to_string(&req).map_err(ApiError::internal)?;
    let code = req.customer.trim().to_string();
    let stored = {
        let id = id.clone();
        state.store.read(move |c| sql::get_event(c, &id)).await?
    };
    if let Some((stored_body, result)) = stored {
        return replay(&id, &stored_body, &body, &result).map(IntoResponse::into_response);
    }
    let customer = {
        let code = code.clone();
        state
            .store
            .read(move |c| sql::customer_by_code(c, &code))
            .await?
    };
    let Some(customer) = customer else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_customer",
            format!("customer: no customer with code `{code}` in the directory; import it first (POST /api/customers)"),
        )
        .with_field("customer"));
    };
    let rules = state.rules.clone();
    let phone = customer.phones.first().cloned();
    let mut vars = rules.vars(Some(&customer), phone.as_deref().unwrap_or(""));
    let language = rules.company.language;
    vars.set("monto", amount.format(language))
        .set(
            "vencimiento",
            crate::rules::customer::format_date(due, language),
        )
        .set("numero", number)
        .set("pdf_url", pdf_url.clone().unwrap_or_default());
    let prefer = customer.channels.get("invoice").map(Vec::as_slice);
    let mail = event_mail(
        &state,
        &route,
        prefer,
        &customer,
        DocKind::Invoice,
        &vars,
        pdf_url.as_deref(),
    )
    .await;
    let (steps, skipped) = crate::events::plan(
        &route,
        &available(&state, mail),
        phone.as_deref(),
        &vars,
        prefer,
    );
    let now = now_ms();
    let window = rules.window_for(Priority::Notification, None);
    let not_before = rules.not_before(window.as_deref(), now);
    let (id2, body2) = (id.clone(), body.clone());
    let cid = customer.id;
    let customer_code = customer.code.clone();
    let outcome = state
        .store
        .write(move |c| {
            if let Some((stored_body, result)) = sql::get_event(c, &id2)? {
                return Ok(Err((stored_body, result)));
            }
            let first = insert_steps(c, &id2, &steps, cid, window.clone(), not_before, now)?;
            let channels: Vec<&str> = steps.iter().map(|s| s.channel.as_str()).collect();
            let result = serde_json::json!({"id": id2, "type": "invoice", "customer": customer_code,
                "result": {"notice": first, "channels": channels, "skipped": skipped,
                           "reason": if steps.is_empty() { Some("no channel can carry it") } else { None }}});
            sql::insert_event(c, &id2, "invoice", &body2, &result.to_string(), now)?;
            Ok(Ok(result))
        })
        .await?;
    answer_event(&state, &id, "invoice", &code, &body, outcome)
}

/// What can carry an event here: the channels with a route, and the event's mail.
fn available(
    state: &AppState,
    mail: Option<Result<(String, String), String>>,
) -> crate::events::Available {
    let has = |ch: Channel| state.transports.iter().any(|t| t.channel() == ch);
    crate::events::Available {
        whatsapp: has(Channel::Whatsapp),
        email: has(Channel::Email),
        sms: has(Channel::Sms),
        mail,
    }
}

/// The event's mail when its channels list `"email"` and an email account is configured: the
/// customer's address and the stored mail (the account of the document's area or `todo`, the
/// saved templates or the built-in ones in the company's language, an invoice's PDF fetched and attached), or
/// why it cannot go (no address, no account, the PDF link not a PDF).
async fn event_mail(
    state: &AppState,
    route: &crate::config::EventChannels,
    prefer: Option<&[String]>,
    customer: &Customer,
    kind: DocKind,
    vars: &template::Vars,
    pdf_url: Option<&str>,
) -> Option<Result<(String, String), String>> {
    // The customer's own order, when set, replaces the event's channels.
    if !prefer
        .unwrap_or(&route.channels)
        .iter()
        .any(|c| c == "email")
        || !state
            .transports
            .iter()
            .any(|t| t.channel() == Channel::Email)
    {
        return None;
    }
    let Some(to) = customer.email.as_deref().filter(|e| !e.trim().is_empty()) else {
        return Some(Err("the customer has no email address".into()));
    };
    let language = state.rules.company.language;
    // The saved template of the document type, else the built-in one.
    let template = match super::email_api::template_for(state, kind).await {
        Ok((t, _)) => Some(t),
        Err(e) => {
            log::warn!("cannot read the {kind:?} email template, using the built-in one: {e:?}");
            None
        }
    };
    Some(
        queue_notice(
            &state.transports,
            to,
            kind,
            vars,
            language,
            template.as_ref(),
            pdf_url,
        )
        .await
        .map(|p| (p.to, p.body)),
    )
}

/// Stores an event's planned steps and queues the first; returns it (`{id, state, channel}`).
fn insert_steps(
    c: &rusqlite::Connection,
    event_id: &str,
    steps: &[crate::events::Step],
    customer_id: Option<i64>,
    window: Option<String>,
    not_before: Option<i64>,
    now: i64,
) -> Result<Option<serde_json::Value>, crate::store::StoreError> {
    let mut first = None;
    for (position, step) in steps.iter().enumerate() {
        let message_id = if position == 0 {
            let placed = crate::store::messages::insert_outbound(
                c,
                &[NewOutbound {
                    channel: step.channel,
                    peer: step.peer.clone(),
                    body: step.body.clone(),
                    priority: Priority::Notification,
                    customer_id,
                    window: window.clone(),
                    not_before,
                }],
                now,
            )?;
            first = Some(
                serde_json::json!({"id": placed[0].0.0, "state": placed[0].1,
                "channel": step.channel}),
            );
            Some(placed[0].0.0)
        } else {
            None
        };
        c.execute(
            "INSERT INTO event_steps (event_id, position, channel, peer, body, customer_id, \
             send_window, message_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![
                event_id,
                position as i64,
                step.channel.as_str(),
                step.peer,
                step.body,
                customer_id,
                window,
                message_id
            ],
        )?;
    }
    Ok(first)
}

/// The answer to a stored event: 202 with its result (the dispatcher woken for its notice), or
/// the first answer again when the same event id came before (409 if its body differs).
fn answer_event(
    state: &AppState,
    id: &str,
    kind: &str,
    code: &str,
    body: &str,
    outcome: Result<serde_json::Value, (String, String)>,
) -> Result<axum::response::Response, ApiError> {
    match outcome {
        Ok(result) => {
            state.dispatch.wake();
            log::info!(
                "event {id}: {kind} of customer {code}: {}",
                result["result"]
            );
            Ok((StatusCode::ACCEPTED, Json(result)).into_response())
        }
        Err((stored_body, result)) => {
            replay(id, &stored_body, body, &result).map(IntoResponse::into_response)
        }
    }
}

fn replay(
    id: &str,
    stored_body: &str,
    body: &str,
    result: &str,
) -> Result<axum::response::Response, ApiError> {
    if stored_body != body {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "duplicate_event_id",
            format!(
                "event id `{id}` was already used for a different event; event ids must be unique"
            ),
        )
        .with_field("id"));
    }
    let mut v: serde_json::Value = serde_json::from_str(result).map_err(ApiError::internal)?;
    v["duplicate"] = serde_json::Value::Bool(true);
    log::info!("event {id}: received again; answered as the first time");
    Ok((StatusCode::OK, Json(v)).into_response())
}

// ----- rules and templates --------------------------------------------------------------------

/// `[rules]` as JSON, with `windows` and `groups` (`[windows]`, `[[groups]]`) beside its keys.
fn rules_json(
    settings: &Settings,
    schedule: &crate::inbox::Schedule,
) -> Result<serde_json::Value, ApiError> {
    let mut v = serde_json::to_value(settings).map_err(ApiError::internal)?;
    v["windows"] = serde_json::to_value(&schedule.config.windows).map_err(ApiError::internal)?;
    v["groups"] = serde_json::to_value(&schedule.config.groups).map_err(ApiError::internal)?;
    v["holidays"] = holidays_json(&schedule.windows, crate::model::now_ms());
    Ok(v)
}

/// The holidays the windows honour this year and the next (read only: the national calendar
/// with `windows.holidays` added and `windows.not_holidays` taken out).
fn holidays_json(windows: &crate::rules::window::Windows, now_ms: i64) -> serde_json::Value {
    use chrono::Datelike;
    let year = chrono::DateTime::from_timestamp_millis(now_ms)
        .map(|t| t.with_timezone(&windows.tz()).year())
        .unwrap_or(2026);
    let calendar = windows.calendar();
    let days = |y: i32| -> Vec<serde_json::Value> {
        calendar
            .year(y)
            .into_iter()
            .map(|h| serde_json::json!({"date": h.date.to_string(), "name": h.name}))
            .collect()
    };
    serde_json::json!({
        "calendar": calendar.table.map(|t| t.code),
        "this_year": days(year),
        "next_year": days(year + 1),
    })
}

/// The `[rules]` settings in force, with `windows`, `groups` and the computed `holidays`.
#[utoipa::path(get, path = "/api/rules", tag = "rules",
    responses((status = 200, description = "the settings", body = serde_json::Value)))]
async fn get_rules(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(rules_json(
        &state.rules.settings(),
        &state.rules.schedule(),
    )?))
}

fn settings_errors(errors: Vec<(String, String)>) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_rules",
        errors
            .iter()
            .map(|(k, m)| format!("{k}: {m}"))
            .collect::<Vec<_>>()
            .join("; "),
    );
    e.body.field = errors.first().map(|(k, _)| k.clone());
    e
}

fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// `PUT /api/rules`: `[rules]` as JSON; keys left out keep their current values. Templates are
/// checked before saving. `windows` (`[windows]`: each of its keys given replaces that key)
/// and `groups` (`[[groups]]`: the whole list) may come along; everything is checked together
/// and saved at once, or nothing changes.
/// Changes the keys it names (checked first, kept in the database, in force at once).
#[utoipa::path(put, path = "/api/rules", tag = "rules",
    request_body(content = serde_json::Value, description = "any part of what `GET` shows, e.g. `{\"ticket\":{\"max_per_day\":5}}`"),
    responses(
        (status = 200, description = "the settings now in force", body = serde_json::Value),
        (status = 422, description = "`invalid_rules`: the message lists each wrong key, `field` names the first", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn put_rules(
    State(state): State<AppState>,
    JsonBody(mut patch): JsonBody<serde_json::Value, SMALL_LIMIT>,
) -> Result<impl IntoResponse, ApiError> {
    let Some(object) = patch.as_object_mut() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "send a JSON object with the [rules] keys to change",
        ));
    };
    let windows = object.remove("windows");
    let groups = object.remove("groups");
    // Computed, read only: a body sent back as `GET` gave it changes nothing.
    object.remove("holidays");
    let schedule = if windows.is_some() || groups.is_some() {
        let mut current =
            serde_json::to_value(&state.rules.schedule().config).map_err(ApiError::internal)?;
        if let Some(w) = windows {
            let serde_json::Value::Object(w) = w else {
                return Err(settings_errors(vec![(
                    "windows".into(),
                    "must be an object like {\"holidays\": [\"2026-12-25\"]}".into(),
                )]));
            };
            for (k, v) in w {
                current["windows"][k] = v;
            }
        }
        if let Some(g) = groups {
            current["groups"] = g;
        }
        let bytes = serde_json::to_vec(&current).map_err(ApiError::internal)?;
        Some(super::parse_json::<crate::inbox::ScheduleConfig>(&bytes)?)
    } else {
        None
    };
    let mut current =
        serde_json::to_value(state.rules.settings().as_ref()).map_err(ApiError::internal)?;
    merge(&mut current, patch);
    let bytes = serde_json::to_vec(&current).map_err(ApiError::internal)?;
    let new: Settings = super::parse_json(&bytes)?;
    let problems = crate::events::check_payment(&new.payment, &Default::default());
    if !problems.is_empty() {
        return Err(settings_errors(problems));
    }
    let (saved, schedule) = state
        .rules
        .replace_all(new, schedule)
        .await
        .map_err(settings_errors)?;
    Ok(Json(rules_json(&saved, &schedule)?))
}

/// Back to the config file's rules, windows and groups.
#[utoipa::path(delete, path = "/api/rules", tag = "rules",
    responses((status = 200, description = "the file's settings, now in force", body = serde_json::Value)))]
async fn reset_rules(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let settings = state.rules.reset_settings().await?;
    Ok(Json(rules_json(&settings, &state.rules.schedule())?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    template: String,
    /// `customer` (default), `ticket` or `payment`: which variables are allowed.
    #[serde(default)]
    uses: Option<String>,
    /// Render for this customer code…
    #[serde(default)]
    customer: Option<String>,
    /// …or for the customer with this number.
    #[serde(default)]
    phone: Option<String>,
    /// Values for `%id%`, `%monto%`… in the preview.
    #[serde(default)]
    vars: std::collections::BTreeMap<String, String>,
}

/// `POST /api/templates/preview`: renders a template and says how it travels as SMS.
/// Renders a template for a customer; says its characters, SMS parts and encoding.
#[utoipa::path(post, path = "/api/templates/preview", tag = "rules", request_body = PreviewRequest,
    responses((status = 200, description = "`{\"text\",\"chars\",\"parts\",\"encoding\",…}`", body = serde_json::Value)))]
async fn preview(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PreviewRequest, SMALL_LIMIT>,
) -> Result<impl IntoResponse, ApiError> {
    let uses = match req.uses.as_deref().unwrap_or("customer") {
        "customer" => Use::Customer,
        "ticket" => Use::Ticket,
        "payment" => Use::Payment,
        "outage" => Use::Outage,
        other => {
            return Err(ApiError::field(
                "uses",
                format!("`{other}` is not customer, ticket, payment or outage"),
            ));
        }
    };
    let extra = state.rules.extra_fields().await?;
    template::check(&req.template, uses, &extra).map_err(|e| ApiError::field("template", e))?;
    let customer = if let Some(code) = req.customer.clone() {
        let found = state
            .store
            .read(move |c| sql::customer_by_code(c, code.trim()))
            .await?;
        Some(found.ok_or_else(|| {
            ApiError::field("customer", "no customer with this code in the directory")
        })?)
    } else if let Some(phone) = &req.phone {
        let n = state
            .phones
            .normalize(phone)
            .map_err(|e| ApiError::field("phone", e.to_string()))?;
        match state.rules.directory.lookup(n.as_str()).await.0 {
            directory::Lookup::One(c) => Some(*c),
            _ => return Err(ApiError::field("phone", "matches no single customer")),
        }
    } else {
        None
    };
    let phone = customer
        .as_ref()
        .and_then(|c| c.phones.first().cloned())
        .unwrap_or_default();
    let mut vars = state.rules.vars(customer.as_ref(), &phone);
    for (k, v) in &req.vars {
        vars.set(k, v.clone());
    }
    let text = template::render(&req.template, &vars);
    let info = crate::sms::segment::analyze(&text, &crate::sms::SubmitOptions::default())
        .map_err(|e| ApiError::field("template", e.to_string()))?;
    Ok(Json(serde_json::json!({
        "text": text,
        "chars": info.chars,
        "parts": info.parts,
        "encoding": info.encoding,
        "variables": template::variables(&req.template),
    })))
}
