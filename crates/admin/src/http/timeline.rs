//! `GET /api/v1/alarms/{id}/timeline`: one alarm's course for an incident report (a Lex Sarah
//! report): every transition with its time, actor and reason; the deadlines it ran under and
//! which were missed (`vaka_core::timeline`); the device's messages and positions within a
//! window around it. JSON, or a printable HTML page (`?format=html` or `Accept: text/html`,
//! `timeline_page`). Scoped like the alarm: a tenant's admins see their own alarms only.
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vaka_core::access::{Action, Resource};
use vaka_core::alarm::DeadlineKind;
use vaka_core::timeline::{self, Outcome};
use vaka_core::{AlarmId, EventKind, Lane};
use vaka_store::StoredEvent;

use super::auth::Caller;
use super::problem::{FieldError, Problem};
use super::queries::{blocking, AlarmView, AuditView, PositionView};
use super::state::Api;
use super::timeline_page;

/// The window around the alarm when none is asked for, and the widest taken.
const WINDOW_SECS: u64 = 15 * 60;
const MAX_WINDOW_SECS: u64 = 24 * 3600;
/// Events and positions shown at most; events read at most (of every device) to find them.
const LIMIT: usize = 2_000;
const BUDGET: usize = 500_000;

#[derive(Debug, Deserialize, IntoParams)]
pub struct TimelineQuery {
    /// Seconds before the alarm's creation and after its end shown (default 900, at most
    /// 86,400).
    pub window_secs: Option<u64>,
    /// `html` for the printable page (or send `Accept: text/html`).
    pub format: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TimelineWindow {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// A deadline the alarm ran under.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeadlineView {
    /// receipt or accept.
    pub kind: String,
    pub centre: String,
    pub started_ms: i64,
    pub due_ms: i64,
    /// met, missed, ended (the alarm ended otherwise first) or running.
    pub outcome: String,
    pub ended_ms: Option<i64>,
}

/// A message of the device.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: u64,
    pub received_ms: i64,
    /// The device's own time of it, if it gave one.
    pub occurred_ms: Option<i64>,
    /// The device's reference or event key.
    pub key: String,
    /// alarm, technical, heartbeat, position, telemetry, reset, silent, geofence, rule.
    pub kind: String,
    /// alarm or telemetry.
    pub lane: String,
    /// This event opened the alarm.
    pub opened_this_alarm: bool,
    /// The message as received, when it is text (SCAIP XML, DC-09); else `raw_hex`.
    pub raw_text: Option<String>,
    pub raw_hex: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub alarm: AlarmView,
    /// Times in the page are shown in it (IANA name).
    pub time_zone: String,
    pub window: TimelineWindow,
    /// The device's deadlines as configured now (receipt, accept), in ms.
    pub receipt_deadline_ms: i64,
    pub accept_deadline_ms: i64,
    pub deadlines: Vec<DeadlineView>,
    /// Every transition, oldest first.
    pub transitions: Vec<AuditView>,
    /// The device's messages received within the window, oldest first.
    pub events: Vec<EventView>,
    /// More messages than shown were in the window (or too many to look through).
    pub events_truncated: bool,
    /// Its positions with a fix time within the window, oldest first.
    pub positions: Vec<PositionView>,
}

fn event_view(e: &StoredEvent, alarm: AlarmId) -> EventView {
    let ev = &e.event;
    let kind = match &ev.kind {
        EventKind::Alarm(_) => "alarm",
        EventKind::Technical { .. } => "technical",
        EventKind::Heartbeat => "heartbeat",
        EventKind::Position => "position",
        EventKind::Telemetry { .. } => "telemetry",
        EventKind::Reset { .. } => "reset",
        EventKind::Silent => "silent",
        EventKind::Geofence { .. } => "geofence",
        _ => "rule",
    };
    let text = std::str::from_utf8(&ev.raw)
        .ok()
        .filter(|s| s.chars().all(|c| !c.is_control() || c.is_whitespace()));
    EventView {
        id: e.id.0,
        received_ms: ev.received_ms,
        occurred_ms: ev.occurred_ms,
        key: ev.key.clone(),
        kind: kind.into(),
        lane: match ev.lane() {
            Lane::Alarm => "alarm".into(),
            Lane::Telemetry => "telemetry".into(),
        },
        opened_this_alarm: e.id.0 == alarm.0,
        raw_text: text.map(str::to_owned),
        raw_hex: text.is_none().then(|| hex::encode(&ev.raw)),
    }
}

fn wants_html(q: &TimelineQuery, headers: &HeaderMap) -> bool {
    match q.format.as_deref() {
        Some(f) => f == "html",
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html")),
    }
}

#[utoipa::path(get, path = "/api/v1/alarms/{alarm}/timeline", tag = "alarms",
    params(("alarm" = u64, Path), TimelineQuery),
    responses((status = 200, body = Timeline, description = "JSON, or with format=html / Accept: text/html a printable HTML page"),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn alarm_timeline(
    State(api): State<Api>,
    caller: Caller,
    Path(alarm): Path<u64>,
    Query(q): Query<TimelineQuery>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id = AlarmId(alarm);
    let what = format!("alarm {alarm}");
    let window_secs = q.window_secs.unwrap_or(WINDOW_SECS);
    if window_secs > MAX_WINDOW_SECS {
        return Err(Problem::invalid(vec![FieldError {
            field: "window_secs".into(),
            reason: format!("at most {MAX_WINDOW_SECS}"),
        }]));
    }
    let (found, trail) = blocking(api.control.store(), move |s| {
        let a = s.alarm(id)?;
        let trail = match &a {
            Some(_) => s.alarm_audit(id)?,
            None => Vec::new(),
        };
        Ok((a, trail))
    })
    .await?;
    let a = found.ok_or_else(|| Problem::not_found(&what))?;
    let (lengths, zone) = {
        let dir = api.control.live().load();
        caller.may(
            Action::Read,
            Resource::Tenant(&a.device.tenant.0),
            &dir,
            &what,
        )?;
        let zone = dir
            .tenants
            .get(&a.device.tenant)
            .map_or_else(|| dir.defaults.time_zone.clone(), |t| t.time_zone.clone());
        (dir.deadlines(&a.device), zone)
    };
    let margin = window_secs as i64 * 1000;
    let end = a
        .stages
        .closed_ms
        .unwrap_or(a.updated_ms)
        .max(trail.last().map_or(a.updated_ms, |r| r.at_ms));
    let window = TimelineWindow {
        from_ms: a.created_ms - margin,
        to_ms: end + margin,
    };
    let (device, w) = (a.device.clone(), window.clone());
    let (events, positions) = blocking(api.control.store(), move |s| {
        let events = s.device_events_around(&device, w.from_ms, w.to_ms, id.0, LIMIT, BUDGET)?;
        let positions = s.positions(&device, w.from_ms, w.to_ms, LIMIT)?;
        Ok((events, positions))
    })
    .await?;
    let deadlines = timeline::deadlines(&trail, lengths, a.is_open())
        .into_iter()
        .map(|d| DeadlineView {
            kind: match d.kind {
                DeadlineKind::Receipt => "receipt".into(),
                DeadlineKind::Accept => "accept".into(),
            },
            centre: d.centre,
            started_ms: d.started_ms,
            due_ms: d.due_ms,
            outcome: match d.outcome {
                Outcome::Met => "met",
                Outcome::Missed => "missed",
                Outcome::Ended => "ended",
                Outcome::Running => "running",
            }
            .into(),
            ended_ms: d.ended_ms,
        })
        .collect();
    let t = Timeline {
        alarm: AlarmView::from(&a),
        time_zone: zone.iana_name().unwrap_or("UTC").to_owned(),
        window,
        receipt_deadline_ms: lengths.receipt_ms,
        accept_deadline_ms: lengths.accept_ms,
        deadlines,
        transitions: trail.iter().map(AuditView::from).collect(),
        events: events.events.iter().map(|e| event_view(e, id)).collect(),
        events_truncated: events.truncated,
        positions: positions.iter().map(PositionView::from).collect(),
    };
    if wants_html(&q, &headers) {
        let page = timeline_page::render(&t, &zone, api.control.now_ms());
        return Ok(Html(page).into_response());
    }
    Ok(Json(t).into_response())
}
