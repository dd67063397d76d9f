//! A receiver's answers through the API: a webhook receiver (a centre the engine runs) accepts or
//! closes an alarm it was offered with its centre token. Who may is `core::access`'s
//! `may_act_on` (invariant 7); the input goes through the router like a gRPC centre's.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vaka_core::alarm::AlarmInput;
use vaka_core::AlarmId;
use vaka_router::InputError;

use super::auth::Caller;
use super::problem::{FieldError, Problem};
use super::queries::blocking;
use super::state::Api;

/// What the receiver does.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlarmAction {
    /// "receipt", "accept" or "close".
    pub action: String,
    /// Who accepted (for "accept"), 1-64 printable characters.
    #[serde(default)]
    pub operator: String,
    /// How it ended (for "close"), 1-64 printable characters.
    #[serde(default)]
    pub outcome: String,
    /// Free text with the close, up to 2000 characters.
    #[serde(default)]
    pub note: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ActionDone {
    pub alarm: u64,
    pub action: String,
    /// The centre (receiver) it was done as.
    pub centre: String,
}

fn one_line(field: &str, v: &str, max: usize) -> Option<FieldError> {
    let why = if v.trim().is_empty() {
        "is required"
    } else if v.chars().count() > max {
        "is too long"
    } else if v.chars().any(char::is_control) {
        "must be one line of printable characters"
    } else {
        return None;
    };
    Some(FieldError {
        field: field.into(),
        reason: why.into(),
    })
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
    let found = blocking(api.control.store(), move |s| s.alarm(id)).await?;
    let a = found.ok_or_else(|| Problem::not_found(&what))?;
    let centre = {
        let dir = api.control.live().load();
        caller
            .0
            .may_act_on(&a, &dir)
            .map_err(|d| Problem::denied(d, &what))?
    };
    // The body only once the caller may act: nothing is told to anyone else.
    let body: AlarmAction = serde_json::from_slice(&body).map_err(|e| Problem::body(&e))?;
    let mut errors = Vec::new();
    let input = match body.action.as_str() {
        "receipt" => AlarmInput::Receipt {
            centre: centre.clone(),
        },
        "accept" => {
            errors.extend(one_line("operator", &body.operator, 64));
            AlarmInput::Accept {
                centre: centre.clone(),
                operator: body.operator.trim().to_owned(),
            }
        }
        "close" => {
            errors.extend(one_line("outcome", &body.outcome, 64));
            if body.note.chars().count() > 2000
                || body.note.chars().any(|c| c.is_control() && c != '\n')
            {
                errors.push(FieldError {
                    field: "note".into(),
                    reason: "at most 2000 printable characters".into(),
                });
            }
            let outcome = match body.note.trim() {
                "" => body.outcome.trim().to_owned(),
                n => format!("{}: {n}", body.outcome.trim()),
            };
            AlarmInput::Close {
                centre: centre.clone(),
                outcome,
            }
        }
        _ => {
            errors.push(FieldError {
                field: "action".into(),
                reason: "must be \"receipt\", \"accept\" or \"close\"".into(),
            });
            AlarmInput::Dispatch
        }
    };
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
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
