//! A webhook receiver's signed callback: `POST /hooks/<receiver>` with a JSON body
//! `{"alarm", "timestamp", "action", "operator", "outcome", "note"}` signed like the engine's own
//! posts (`X-Vaka-Signature: sha256=<hex HMAC-SHA256(secret, body)>`), so a webhook system can
//! accept and close the alarms it was offered without holding an API token. The timestamp
//! (Unix seconds) must be within `MAX_SKEW_SECS` of now: a captured callback cannot be replayed
//! later. The alarm is read through the receiver's centre `Scope` (invariant 7), and the input
//! goes through the router as a gRPC centre's would.
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use vaka_centre::scope::Scope;
use vaka_core::alarm_action::AlarmAction;
use vaka_core::directory::ReceiverRecord;
use vaka_core::{AlarmId, CentreId};
use vaka_router::InputError;

use crate::session::Ctx;
use crate::sign::verify;

/// How far a callback's timestamp may be from the engine's clock.
pub const MAX_SKEW_SECS: i64 = 300;
/// The largest callback body taken.
const MAX_BODY: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Callback {
    alarm: u64,
    timestamp: i64,
    action: String,
    #[serde(default)]
    operator: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    note: String,
}

pub(crate) fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/hooks/{receiver}", post(callback))
        .with_state(ctx)
}

fn answer(status: StatusCode, receiver: &str, result: &str, detail: String) -> Response {
    metrics::counter!("vaka_receiver_callbacks_total", "receiver" => receiver.to_owned(), "result" => result.to_owned())
        .increment(1);
    let ok = status.is_success();
    let body = match ok {
        true => serde_json::json!({ "result": result, "detail": detail }),
        false => serde_json::json!({ "error": result, "detail": detail }),
    };
    (status, Json(body)).into_response()
}

/// The receiver's secret, if `receiver` is a webhook receiver of the directory.
fn secret_of(ctx: &Ctx, receiver: &str) -> Option<String> {
    let dir = ctx.dir.load();
    match dir.records.centres.get(receiver)?.receiver.as_ref()? {
        ReceiverRecord::Webhook { secret, .. } => Some(secret.clone()),
        _ => None,
    }
}

fn signed(headers: &HeaderMap, secret: &str, body: &[u8]) -> bool {
    let tag = headers
        .get("x-vaka-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok());
    tag.is_some_and(|t| verify(secret.as_bytes(), body, &t))
}

async fn callback(
    State(ctx): State<Arc<Ctx>>,
    Path(receiver): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const NO_MATCH: &str = "no such webhook receiver, or the signature does not match";
    // An unknown receiver and a wrong signature get the same answer: nothing to probe. The
    // metric's label is a configured receiver's id only (the path is anyone's to choose).
    let Some(secret) = secret_of(&ctx, &receiver) else {
        return answer(
            StatusCode::UNAUTHORIZED,
            "unknown",
            "unauthorised",
            NO_MATCH.into(),
        );
    };
    let unauthorised = |why: &str| {
        answer(
            StatusCode::UNAUTHORIZED,
            &receiver,
            "unauthorised",
            why.into(),
        )
    };
    if body.len() > MAX_BODY {
        return answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            &receiver,
            "too-large",
            format!("a callback is at most {MAX_BODY} bytes"),
        );
    }
    if !signed(&headers, &secret, &body) {
        return unauthorised(NO_MATCH);
    }
    let cb: Callback = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                &receiver,
                "invalid",
                format!("body: {e}"),
            )
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if (now - cb.timestamp).abs() > MAX_SKEW_SECS {
        return unauthorised("timestamp is more than 300 s from the engine's clock");
    }
    let centre = CentreId::new(&receiver);
    let id = AlarmId(cb.alarm);
    let alarm = Scope::new(ctx.dir.clone(), centre.clone())
        .ok()
        .and_then(|s| s.load_for_action(&ctx.store, id).ok());
    let Some(alarm) = alarm else {
        return answer(
            StatusCode::NOT_FOUND,
            &receiver,
            "not-found",
            format!("alarm {} was not offered to receiver {receiver}", cb.alarm),
        );
    };
    let action = AlarmAction {
        action: cb.action,
        operator: cb.operator,
        outcome: cb.outcome,
        note: cb.note,
    };
    let input = match action.input(&centre) {
        Ok(i) => i,
        Err(fields) => {
            let detail = fields
                .iter()
                .map(|(f, why)| format!("{f} {why}"))
                .collect::<Vec<_>>()
                .join("; ");
            return answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                &receiver,
                "invalid",
                detail,
            );
        }
    };
    match ctx.router.centre_input(&alarm.device, id, input).await {
        Ok(()) => answer(
            StatusCode::OK,
            &receiver,
            "done",
            format!("{} of alarm {}", action.action, cb.alarm),
        ),
        Err(e @ (InputError::NotFound(_) | InputError::NotHolder(_) | InputError::Invalid(_))) => {
            answer(
                StatusCode::CONFLICT,
                &receiver,
                "not-allowed-now",
                e.to_string(),
            )
        }
        Err(e) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &receiver,
            "unavailable",
            e.to_string(),
        ),
    }
}
