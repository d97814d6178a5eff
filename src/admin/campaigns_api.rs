//! `/api/campaigns`: create a draft with its preview, list, show with progress, start, pause,
//! resume, cancel, and the report as CSV (`crate::campaign` does the work).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::{ApiError, AppState, JsonBody, rfc3339};
use crate::campaign::{self, CampaignRequest, Plan, Preview, StartError};
use crate::store::campaigns::{self as sql, CampaignRow, Progress};

/// A campaign request with an uploaded list of 50,000 codes fits.
const LIMIT: usize = 8 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/campaigns", post(create).get(list))
        .route("/api/campaigns/preview", post(preview_only))
        .route("/api/campaigns/{id}", get(show))
        .route("/api/campaigns/{id}/start", post(start))
        .route("/api/campaigns/{id}/pause", post(pause))
        .route("/api/campaigns/{id}/resume", post(resume))
        .route("/api/campaigns/{id}/cancel", post(cancel))
        .route("/api/campaigns/{id}/report.csv", get(report))
}

/// These routes in the OpenAPI document (`crate::admin::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, preview_only, show, start, pause, resume, cancel, report))]
pub(super) struct Doc;

/// `GET /api/campaigns`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CampaignList {
    /// The latest 200, newest first.
    campaigns: Vec<CampaignView>,
}

/// A campaign as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignView {
    pub id: i64,
    pub name: String,
    pub channel: String,
    /// draft, running, paused, done, cancelled.
    pub state: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The request it was created with, defaults filled in.
    #[schema(value_type = CampaignRequest)]
    pub request: serde_json::Value,
    /// The preview taken when the draft was made.
    #[schema(value_type = Preview)]
    pub preview: serde_json::Value,
    /// Once started.
    pub progress: Option<Progress>,
}

pub async fn view(state: &AppState, row: CampaignRow) -> Result<CampaignView, ApiError> {
    let progress = if row.state == "draft" {
        None
    } else {
        let days = campaign::spec_of(&row)
            .and_then(|s| s.reply_days)
            .unwrap_or(campaign::REPLY_DAYS);
        Some(campaign::sql_progress(&state.store, row.id, days).await?)
    };
    Ok(CampaignView {
        id: row.id,
        name: row.name,
        channel: row.channel,
        state: row.state,
        created_at: rfc3339(row.created_at),
        started_at: row.started_at.map(rfc3339),
        finished_at: row.finished_at.map(rfc3339),
        request: serde_json::from_str(&row.spec).unwrap_or_default(),
        preview: serde_json::from_str(&row.preview).unwrap_or_default(),
        progress,
    })
}

/// Checks a request into a plan (400 naming the field).
pub async fn plan(state: &AppState, req: &CampaignRequest) -> Result<Plan, ApiError> {
    let extra = state.rules.extra_fields().await?;
    campaign::check(req, &state.rules, &state.transports, &extra)
        .map_err(|(f, m)| ApiError::field(f, m))
}

fn nobody() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "empty_selection",
        "the selection matches no customer; widen the filters or check the uploaded list",
    )
    .with_field("selection")
}

/// What a campaign would reach, without creating it.
#[utoipa::path(post, path = "/api/campaigns/preview", tag = "campaigns", request_body = CampaignRequest,
    responses(
        (status = 200, description = "the preview", body = Preview),
        (status = 422, description = "a field cannot be used (template variable, channel, rate…); `field` names it", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn preview_only(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CampaignRequest, LIMIT>,
) -> Result<Json<Preview>, ApiError> {
    let plan = plan(&state, &req).await?;
    let (p, _) = campaign::preview(&state.campaigns, &plan, false).await?;
    Ok(Json(p))
}

/// Creates a draft; 201 with its id and preview, 422 when the selection matches nobody.
pub async fn create_draft(state: &AppState, mut req: CampaignRequest) -> Result<i64, ApiError> {
    let plan = plan(state, &req).await?;
    let (p, _) = campaign::preview(&state.campaigns, &plan, false).await?;
    if p.matched == 0 {
        return Err(nobody());
    }
    req.reply_days = Some(plan.reply_days);
    req.name = req.name.trim().to_string();
    let spec = serde_json::to_string(&req).map_err(ApiError::internal)?;
    let preview = serde_json::to_string(&p).map_err(ApiError::internal)?;
    let now = state.store.now_ms();
    let (name, channel) = (req.name.clone(), req.channel.clone());
    Ok(state
        .store
        .write(move |c| sql::insert_campaign(c, &name, &channel, &spec, &preview, now))
        .await?)
}

/// Creates a draft with its preview.
#[utoipa::path(post, path = "/api/campaigns", tag = "campaigns", request_body = CampaignRequest,
    responses(
        (status = 201, description = "the draft", body = CampaignView),
        (status = 422, description = "`empty_selection`: nobody matches; or a field cannot be used", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn create(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CampaignRequest, LIMIT>,
) -> Result<impl IntoResponse, ApiError> {
    let id = create_draft(&state, req).await?;
    let row = get_row(&state, id).await?;
    Ok((StatusCode::CREATED, Json(view(&state, row).await?)))
}

/// The latest campaigns with their progress.
#[utoipa::path(get, path = "/api/campaigns", tag = "campaigns",
    responses((status = 200, description = "the campaigns", body = CampaignList)))]
async fn list(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let rows = state.store.read(|c| sql::list_campaigns(c, 200)).await?;
    let mut campaigns = Vec::with_capacity(rows.len());
    for row in rows {
        campaigns.push(view(&state, row).await?);
    }
    Ok(Json(CampaignList { campaigns }))
}

pub async fn get_row(state: &AppState, id: i64) -> Result<CampaignRow, ApiError> {
    state
        .store
        .read(move |c| sql::get_campaign(c, id))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no campaign {id}"),
            )
        })
}

/// One campaign with its progress.
#[utoipa::path(get, path = "/api/campaigns/{id}", tag = "campaigns", params(("id" = i64, Path, description = "the campaign's id")),
    responses(
        (status = 200, description = "the campaign", body = CampaignView),
        (status = 404, description = "no such campaign", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let row = get_row(&state, id).await?;
    Ok(Json(view(&state, row).await?))
}

/// Starts a campaign (idempotent); the pages call it too.
pub async fn start_campaign(state: &AppState, id: i64) -> Result<(), ApiError> {
    let row = get_row(state, id).await?;
    let spec = campaign::spec_of(&row)
        .ok_or_else(|| ApiError::internal(format!("campaign {id}: unreadable request")))?;
    let plan = plan(state, &spec).await?;
    match campaign::start(&state.campaigns, id, &plan).await {
        Ok(_) => Ok(()),
        Err(StartError::NotFound) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no campaign {id}"),
        )),
        Err(e @ StartError::Finished(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "campaign_ended",
            e.to_string(),
        )),
        Err(e @ StartError::Missing(..)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_variables",
            e.to_string(),
        )
        .with_field("allow_missing")),
        Err(e @ StartError::Nobody) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_selection",
            e.to_string(),
        )
        .with_field("selection")),
        Err(StartError::Store(e)) => Err(e.into()),
    }
}

/// Starts a draft (a second start changes nothing).
#[utoipa::path(post, path = "/api/campaigns/{id}/start", tag = "campaigns", params(("id" = i64, Path, description = "the campaign's id")),
    responses(
        (status = 200, description = "the campaign", body = CampaignView),
        (status = 404, description = "no such campaign", body = crate::jsonapi::ErrorEnvelope),
        (status = 409, description = "`campaign_ended`: it is done or cancelled", body = crate::jsonapi::ErrorEnvelope),
        (status = 422, description = "`missing_variables` (see `allow_missing`) or `empty_selection`", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn start(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    start_campaign(&state, id).await?;
    show(State(state), Path(id)).await
}

/// Pause, resume or cancel, by name; the pages call it too.
pub async fn control(state: &AppState, id: i64, what: &str) -> Result<(), ApiError> {
    let row = get_row(state, id).await?;
    let ctx = &state.campaigns;
    let conflict = |m: String| ApiError::new(StatusCode::CONFLICT, "wrong_state", m);
    match what {
        "pause" => {
            if !campaign::pause(ctx, id).await? && row.state != "paused" {
                return Err(conflict(format!(
                    "campaign {id} is {}: only a running one pauses",
                    row.state
                )));
            }
        }
        "resume" => {
            if !campaign::resume(ctx, id).await? && row.state != "running" {
                return Err(conflict(format!(
                    "campaign {id} is {}: only a paused one resumes",
                    row.state
                )));
            }
        }
        _ => {
            if let Err(s) = campaign::cancel(ctx, id).await? {
                return Err(conflict(format!(
                    "campaign {id} is already {s}: nothing to cancel"
                )));
            }
        }
    }
    Ok(())
}

/// Pauses a running campaign: nothing new goes out.
#[utoipa::path(post, path = "/api/campaigns/{id}/pause", tag = "campaigns", params(("id" = i64, Path, description = "the campaign's id")),
    responses(
        (status = 200, description = "the campaign", body = CampaignView),
        (status = 404, description = "no such campaign", body = crate::jsonapi::ErrorEnvelope),
        (status = 409, description = "`wrong_state`: only a running one pauses", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn pause(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    control(&state, id, "pause").await?;
    show(State(state), Path(id)).await
}

/// Resumes a paused campaign.
#[utoipa::path(post, path = "/api/campaigns/{id}/resume", tag = "campaigns", params(("id" = i64, Path, description = "the campaign's id")),
    responses(
        (status = 200, description = "the campaign", body = CampaignView),
        (status = 404, description = "no such campaign", body = crate::jsonapi::ErrorEnvelope),
        (status = 409, description = "`wrong_state`: only a paused one resumes", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn resume(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    control(&state, id, "resume").await?;
    show(State(state), Path(id)).await
}

/// Cancels a campaign: messages not yet handed to a route are withdrawn.
#[utoipa::path(post, path = "/api/campaigns/{id}/cancel", tag = "campaigns", params(("id" = i64, Path, description = "the campaign's id")),
    responses(
        (status = 200, description = "the campaign", body = CampaignView),
        (status = 404, description = "no such campaign", body = crate::jsonapi::ErrorEnvelope),
        (status = 409, description = "`wrong_state`: already done or cancelled", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    control(&state, id, "cancel").await?;
    show(State(state), Path(id)).await
}

/// The report: code, channel, address, state, reason, cost, replied.
#[utoipa::path(get, path = "/api/campaigns/{id}/report.csv", tag = "campaigns", params(("id" = i64, Path, description = "the campaign's id")),
    responses(
        (status = 200, description = "one line per recipient", body = String, content_type = "text/csv"),
        (status = 404, description = "no such campaign", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn report(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let row = get_row(&state, id).await?;
    let days = campaign::spec_of(&row)
        .and_then(|s| s.reply_days)
        .unwrap_or(campaign::REPLY_DAYS);
    let csv = campaign::report_csv(&state.store, id, days).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"campaign-{id}.csv\""),
            ),
        ],
        csv,
    )
        .into_response())
}
