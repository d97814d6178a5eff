//! The campaign pages: the list, the create form with its live preview count, and a
//! campaign's progress with pause, resume and cancel. They go through the same API handlers
//! as `/api/campaigns` (in-process, after the session and CSRF checks).

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::i18n::Tr;
use super::pages::{Page, error_page, internal, not_found, page, render, see_other};
use super::{Ctx, Web, api_error};
use crate::campaign::{CampaignRequest, Selection};

pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/campaigns", get(list).post(create))
        .route("/campaigns/new", get(new_form))
        .route("/ui/campaigns/preview", post(live_preview))
        .route("/campaigns/{id}", get(show))
        .route("/ui/campaigns/{id}", get(show_live))
        .route("/campaigns/{id}/report.csv", get(report))
        .route("/campaigns/{id}/{action}", post(action))
}

/// One campaign in the list.
pub struct Row {
    pub id: i64,
    pub name: String,
    pub channel: String,
    pub state: String,
    pub created: String,
    /// "sent of total" once started, else the preview's count.
    pub count: String,
}

#[derive(Template)]
#[template(path = "campaigns.html")]
struct ListPage {
    p: Page,
    rows: Vec<Row>,
}

fn state_word(tr: Tr, state: &str) -> &'static str {
    tr.t(&format!("camp.state.{state}"))
}

fn num(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

async fn list(State(web): State<Web>, Extension(ctx): Extension<Ctx>) -> Response {
    let (status, answer) = web.call(Method::GET, "/api/campaigns", None).await;
    if !status.is_success() {
        return error_page(&ctx, status, api_error(&answer).0);
    }
    let tr = ctx.tr();
    let rows = answer["campaigns"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| Row {
            id: c["id"].as_i64().unwrap_or(0),
            name: c["name"].as_str().unwrap_or("").to_string(),
            channel: c["channel"].as_str().unwrap_or("").to_string(),
            state: state_word(tr, c["state"].as_str().unwrap_or("")).to_string(),
            created: c["created_at"].as_str().unwrap_or("").replace('T', " "),
            count: match c["progress"].as_object() {
                Some(p) => format!(
                    "{} / {}",
                    num(&p["sent"]) + num(&p["delivered"]),
                    num(&p["total"])
                ),
                None => num(&c["preview"]["to_send"]).to_string(),
            },
        })
        .collect();
    render(&ListPage {
        p: page(&ctx, "campaigns", "camp.title"),
        rows,
    })
}

/// The create form as posted (every field text; empty means not given).
#[derive(Debug, Default, Deserialize)]
pub struct CampaignForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    template: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    rate: String,
    #[serde(default)]
    balance_min: String,
    #[serde(default)]
    balance_max: String,
    #[serde(default)]
    due_before: String,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    plan: String,
    #[serde(default)]
    codes: String,
    #[serde(default)]
    numbers: String,
    #[serde(default)]
    allow_missing: Option<String>,
    #[serde(default)]
    report_to: String,
    /// `preview` (the button without JavaScript) or `create`.
    #[serde(default)]
    action: String,
    #[serde(default)]
    #[allow(dead_code)]
    csrf: String,
}

fn given(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// An uploaded list: one entry per line (or separated by commas or semicolons).
fn entries(s: &str) -> Option<Vec<String>> {
    let v: Vec<String> = s
        .split(['\n', '\r', ',', ';'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    (!v.is_empty()).then_some(v)
}

impl CampaignForm {
    fn request(&self) -> CampaignRequest {
        CampaignRequest {
            name: self.name.trim().to_string(),
            channel: given(&self.channel).unwrap_or_else(|| "sms".into()),
            template: given(&self.template),
            subject: given(&self.subject),
            whatsapp_template: None,
            window: None,
            rate: given(&self.rate),
            selection: Selection {
                balance_min: given(&self.balance_min).map(serde_json::Value::String),
                balance_max: given(&self.balance_max).map(serde_json::Value::String),
                due_before: given(&self.due_before),
                zone: given(&self.zone),
                plan: given(&self.plan),
                codes: entries(&self.codes),
                numbers: entries(&self.numbers),
                fields: Default::default(),
            },
            allow_missing: self.allow_missing.is_some(),
            report_to: given(&self.report_to),
            reply_days: None,
        }
    }
}

#[derive(Template)]
#[template(path = "campaign_new.html")]
struct NewPage {
    p: Page,
    f: CampaignForm,
    field: String,
    preview: Option<String>,
}

/// The preview in one sentence.
fn preview_text(tr: Tr, p: &serde_json::Value) -> String {
    let x = &p["excluded"];
    format!(
        "{} {} · {} {} · {}: {} {}, {} {}, {} {}, {} {}, {} {}",
        num(&p["matched"]),
        tr.t("camp.matched"),
        num(&p["to_send"]),
        tr.t("camp.to_send"),
        tr.t("camp.excluded"),
        num(&x["opted_out"]),
        tr.t("camp.opted_out"),
        num(&x["no_address"]),
        tr.t("camp.no_address"),
        num(&x["invalid_number"]),
        tr.t("camp.invalid_number"),
        num(&x["duplicate"]),
        tr.t("camp.duplicate"),
        num(&x["missing_variable"]),
        tr.t("camp.missing_variable"),
    )
}

async fn new_form(Extension(ctx): Extension<Ctx>) -> Response {
    render(&NewPage {
        p: page(&ctx, "campaigns", "camp.new"),
        f: CampaignForm {
            channel: "sms".into(),
            ..Default::default()
        },
        field: String::new(),
        preview: None,
    })
}

async fn create(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<CampaignForm>,
) -> Response {
    let body = serde_json::to_value(f.request()).unwrap_or_default();
    let preview_only = f.action == "preview";
    let path = if preview_only {
        "/api/campaigns/preview"
    } else {
        "/api/campaigns"
    };
    let (status, answer) = web.call(Method::POST, path, Some(body)).await;
    if status.is_success() && !preview_only {
        let id = answer["id"].as_i64().unwrap_or(0);
        log::info!("pages: `{}` created campaign {id}", ctx.user.name);
        return see_other(&format!("/campaigns/{id}"));
    }
    let mut p = page(&ctx, "campaigns", "camp.new");
    let (mut field, mut preview) = (String::new(), None);
    if status.is_success() {
        preview = Some(preview_text(ctx.tr(), &answer));
    } else {
        let (message, f) = api_error(&answer);
        p.error = Some(message);
        field = f;
    }
    let code = if status.is_success() {
        StatusCode::OK
    } else {
        status
    };
    (
        code,
        render(&NewPage {
            p,
            f,
            field,
            preview,
        }),
    )
        .into_response()
}

/// The live preview count of the form (JSON: `text` or `error`).
async fn live_preview(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<CampaignForm>,
) -> Response {
    let body = serde_json::to_value(f.request()).unwrap_or_default();
    let (status, answer) = web
        .call(Method::POST, "/api/campaigns/preview", Some(body))
        .await;
    if status.is_success() {
        Json(serde_json::json!({"text": preview_text(ctx.tr(), &answer)})).into_response()
    } else {
        Json(serde_json::json!({"error": api_error(&answer).0})).into_response()
    }
}

/// A campaign's view.
pub struct View {
    pub id: i64,
    pub name: String,
    pub channel: String,
    /// The state's key (`running`) and its words.
    pub state: String,
    pub state_text: String,
    pub template: String,
    pub preview: String,
    /// (label, count) once started.
    pub progress: Vec<(&'static str, u64)>,
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct ShowPage {
    p: Page,
    c: View,
}

#[derive(Template)]
#[template(path = "campaign_progress.html")]
struct ProgressLive {
    p: Page,
    c: View,
}

async fn load(web: &Web, ctx: &Ctx, id: i64) -> Result<View, Response> {
    let (status, c) = web
        .call(Method::GET, &format!("/api/campaigns/{id}"), None)
        .await;
    if status == StatusCode::NOT_FOUND {
        return Err(not_found(ctx));
    }
    if !status.is_success() {
        return Err(internal(api_error(&c).0));
    }
    let tr = ctx.tr();
    let state = c["state"].as_str().unwrap_or("").to_string();
    let progress = match c["progress"].as_object() {
        Some(p) => [
            ("camp.total", "total"),
            ("camp.pending", "pending"),
            ("camp.queued", "queued"),
            ("camp.sent", "sent"),
            ("camp.delivered", "delivered"),
            ("camp.failed", "failed"),
            ("camp.skipped", "skipped"),
            ("camp.replied", "replied"),
        ]
        .iter()
        .map(|(label, key)| (tr.t(label), num(&p[*key])))
        .collect(),
        None => Vec::new(),
    };
    Ok(View {
        id,
        name: c["name"].as_str().unwrap_or("").to_string(),
        channel: c["channel"].as_str().unwrap_or("").to_string(),
        state_text: state_word(tr, &state).to_string(),
        state,
        template: c["request"]["template"].as_str().unwrap_or("").to_string(),
        preview: preview_text(tr, &c["preview"]),
        progress,
    })
}

async fn show(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<i64>,
) -> Response {
    match load(&web, &ctx, id).await {
        Ok(c) => {
            let mut p = page(&ctx, "campaigns", "camp.title");
            p.title = c.name.clone();
            render(&ShowPage { p, c })
        }
        Err(r) => r,
    }
}

async fn show_live(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<i64>,
) -> Response {
    match load(&web, &ctx, id).await {
        Ok(c) => render(&ProgressLive {
            p: page(&ctx, "campaigns", "camp.title"),
            c,
        }),
        Err(r) => r,
    }
}

async fn action(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Path((id, action)): Path<(i64, String)>,
) -> Response {
    if !["start", "pause", "resume", "cancel"].contains(&action.as_str()) {
        return not_found(&ctx);
    }
    let (status, answer) = web
        .call(Method::POST, &format!("/api/campaigns/{id}/{action}"), None)
        .await;
    if status.is_success() {
        log::info!("pages: `{}` did {action} on campaign {id}", ctx.user.name);
        see_other(&format!("/campaigns/{id}"))
    } else {
        error_page(&ctx, status, api_error(&answer).0)
    }
}

async fn report(
    State(web): State<Web>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<i64>,
) -> Response {
    let row = match web
        .app
        .store
        .read(move |c| crate::store::campaigns::get_campaign(c, id))
        .await
    {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(&ctx),
        Err(e) => return internal(e),
    };
    let days = crate::campaign::spec_of(&row)
        .and_then(|s| s.reply_days)
        .unwrap_or(crate::campaign::REPLY_DAYS);
    match crate::campaign::report_csv(&web.app.store, id, days).await {
        Ok(csv) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"campaign-{id}.csv\""),
                ),
            ],
            csv,
        )
            .into_response(),
        Err(e) => internal(e),
    }
}
