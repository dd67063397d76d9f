//! A receiver's answers through the API: a webhook receiver (a centre the engine runs) accepts or
//! closes an alarm it was offered with its centre token. Who may is `core::access`'s
//! `may_act_on` (invariant 7); the input goes through the router like a gRPC centre's.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use vaka_core::alarm_action::AlarmAction;
use vaka_core::AlarmId;
use vaka_router::InputError;

use super::auth::Caller;
use super::problem::{FieldError, Problem};
use super::queries::blocking;
use super::state::Api;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ActionDone {
    pub alarm: u64,
    pub action: String,
    /// The centre (receiver) it was done as.
    pub centre: String,
}

#[utoipa::path(post, path = "/api/v1/alarms/{alarm}/actions", tag = "alarms",
    params(("alarm" = u64, Path)),
    request_body = AlarmAction,
    responses((status = 200, body = ActionDone), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn alarm_action(
    State(api): State<Api>,
    caller: Caller,
    Path(alarm): Path<u64>,
    body: axum::body::Bytes,
) -> Result<Json<ActionDone>, Problem> {
    let id = AlarmId(alarm);
    let what = format!("alarm {alarm}");
    let found = blocking(api.control.store(), move |s| s.listed_alarm(id)).await?;
    let listed = found.ok_or_else(|| Problem::not_found(&what))?;
    let a = &listed.alarm;
    let centre = {
        let dir = api.control.live().load();
        caller
            .0
            .may_act_on(a, &dir)
            .map_err(|d| Problem::denied(d, &what))?
    };
    // Another node's alarm (a replica): only its holder changes it.
    if let Some(holder) = &listed.holder {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "held-elsewhere",
            format!("{what} is held by cluster node \"{holder}\"; act on it through that node"),
        ));
    }
    // The body only once the caller may act: nothing is told to anyone else.
    let body: AlarmAction = serde_json::from_slice(&body).map_err(|e| Problem::body(&e))?;
    let input = body.input(&centre).map_err(|errors| {
        Problem::invalid(
            errors
                .into_iter()
                .map(|(field, reason)| FieldError { field, reason })
                .collect(),
        )
    })?;
    let r = api
        .control
        .router()
        .centre_input(&a.device, id, input)
        .await;
    match r {
        Ok(()) => Ok(Json(ActionDone {
            alarm,
            action: body.action,
            centre: centre.to_string(),
        })),
        Err(InputError::NotFound(_)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "not-open",
            format!("{what} is not open (closed or cancelled)"),
        )),
        Err(e @ (InputError::NotHolder(_) | InputError::Invalid(_))) => Err(Problem::new(
            StatusCode::CONFLICT,
            "not-allowed-now",
            e.to_string(),
        )),
        Err(e) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )),
    }
}
