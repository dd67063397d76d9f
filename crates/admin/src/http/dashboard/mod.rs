//! The operators' pages, on the admin API's HTTP server: a live dashboard (server-sent events),
//! one page per alarm with its timeline, and the answer-time statistics with plots. Every asset is
//! embedded in the binary (`assets/`, uPlot vendored in `assets/vendor/`): the pages work on
//! machines without internet. Pages are shells; their data comes from `/dashboard/live` and
//! `/dashboard/data/*`, scoped to what the logged-in token may see (`session`).
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use serde::Serialize;
use std::convert::Infallible;
use std::time::Duration;
use vaka_core::access::{Action, Resource};
use vaka_core::{AlarmId, EventKind};

use super::auth::Caller;
use super::problem::Problem;
use super::queries::{blocking, AlarmView, AuditView, PositionView};
use super::state::Api;
use super::statistics::{self, StatisticsQuery};

pub mod exposition;
pub mod session;
pub mod snapshot;

use session::{page_or_login, Viewer};

/// How often the live dashboard gets a snapshot.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// Every file under `assets/`, by its path there.
const ASSETS: &[(&str, &[u8])] = &[
    ("login.html", include_bytes!("assets/login.html")),
    ("login.js", include_bytes!("assets/login.js")),
    ("dashboard.html", include_bytes!("assets/dashboard.html")),
    ("dashboard.js", include_bytes!("assets/dashboard.js")),
    ("dashboard.css", include_bytes!("assets/dashboard.css")),
    ("common.js", include_bytes!("assets/common.js")),
    ("alarm.html", include_bytes!("assets/alarm.html")),
    ("alarm.js", include_bytes!("assets/alarm.js")),
    ("statistics.html", include_bytes!("assets/statistics.html")),
    ("statistics.js", include_bytes!("assets/statistics.js")),
    (
        "vendor/uPlot.iife.min.js",
        include_bytes!("assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        include_bytes!("assets/vendor/uPlot.min.css"),
    ),
    ("vendor/LICENSE", include_bytes!("assets/vendor/LICENSE")),
];

/// Same-origin only: no script or style from anywhere else, none inline.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

pub fn router(api: Api) -> Router {
    Router::new()
        .route(
            "/dashboard/login",
            get(|| async { asset("login.html") }).post(session::login),
        )
        .route("/dashboard/logout", get(session::logout))
        .route("/dashboard", get(|s, h| page(s, h, "dashboard.html")))
        .route(
            "/dashboard/statistics",
            get(|s, h| page(s, h, "statistics.html")),
        )
        .route(
            "/dashboard/alarms/{id}",
            get(|s, h| page(s, h, "alarm.html")),
        )
        .route(
            "/dashboard/assets/{*path}",
            get(|Path(p): Path<String>| async move { asset(&p) }),
        )
        .route("/dashboard/live", get(live))
        .route("/dashboard/data/tenants", get(tenants))
        .route("/dashboard/data/alarms/{id}", get(alarm))
        .route("/dashboard/data/statistics", get(stats_json))
        .route("/dashboard/data/statistics.csv", get(stats_csv))
        .with_state(api)
}

async fn page(State(api): State<Api>, headers: HeaderMap, name: &'static str) -> Response {
    page_or_login(&headers, &api, asset(name))
}

fn asset(path: &str) -> Response {
    let Some((name, body)) = ASSETS.iter().find(|(n, _)| *n == path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let kind = match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    };
    (
        [
            (CONTENT_TYPE, kind),
            (CONTENT_SECURITY_POLICY, CSP),
            (CACHE_CONTROL, "no-cache"),
        ],
        *body,
    )
        .into_response()
}

/// A snapshot a second, built from this engine's metrics and open alarms for the viewer's tenants.
async fn live(
    State(api): State<Api>,
    viewer: Viewer,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let tenants = viewer.tenants(&api);
    let platform = viewer.is_platform();
    let state = (api, tenants, platform, snapshot::Window::default(), true);
    let stream = futures::stream::unfold(
        state,
        |(api, tenants, platform, mut window, first)| async move {
            if !first {
                tokio::time::sleep(SNAPSHOT_EVERY).await;
            }
            let text = api.metrics.as_ref().map(|m| m()).unwrap_or_default();
            // In a cluster, the other nodes' open alarms too (their replicas).
            let open = blocking(api.control.store(), |s| {
                Ok(s.listed_page(&snapshot::open_filter(), None, 10_000)?
                    .alarms
                    .into_iter()
                    .map(|l| l.alarm)
                    .collect::<Vec<_>>())
            })
            .await
            .unwrap_or_default();
            let now = api.control.now_ms();
            let snap = snapshot::build(&mut window, now, &text, &open, &tenants, platform);
            let event = Event::default()
                .event("snapshot")
                .json_data(&snap)
                .unwrap_or_else(|_| Event::default().comment("snapshot not serialisable"));
            Some((Ok(event), (api, tenants, platform, window, false)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn tenants(State(api): State<Api>, viewer: Viewer) -> Json<Vec<String>> {
    Json(viewer.tenants(&api))
}

/// One alarm for its page: the alarm with its stage times, its audit trail, the deadlines that
/// applied and whether they were met, its opening event, and the device's positions around it.
#[derive(Serialize)]
struct AlarmPage {
    alarm: AlarmView,
    audit: Vec<AuditView>,
    deadlines: Vec<DeadlineView>,
    events: Vec<EventView>,
    positions: Vec<PositionView>,
}

#[derive(Serialize)]
struct DeadlineView {
    kind: &'static str,
    due_ms: i64,
    met_ms: Option<i64>,
    missed: bool,
}

#[derive(Serialize)]
struct EventView {
    id: String,
    received_ms: i64,
    kind: &'static str,
    summary: String,
}

/// Positions this long either side of the alarm are shown with it.
const AROUND_MS: i64 = 15 * 60_000;

async fn alarm(
    State(api): State<Api>,
    viewer: Viewer,
    Path(id): Path<u64>,
) -> Result<Json<AlarmPage>, Problem> {
    let what = format!("alarm {id}");
    let found = blocking(api.control.store(), move |s| {
        let Some(listed) = s.listed_alarm(AlarmId(id))? else {
            return Ok(None);
        };
        // Another node's alarm (a replica): its trail and opening event are on its holder
        // (this node keeps that event under an id of its own).
        let (audit, event) = match &listed.holder {
            None => (
                s.alarm_audit(AlarmId(id))?,
                s.event(vaka_core::EventId(id))?,
            ),
            Some(_) => (Vec::new(), None),
        };
        let a = &listed.alarm;
        let positions = s.positions(
            &a.device,
            a.created_ms - AROUND_MS,
            a.created_ms + AROUND_MS,
            100,
        )?;
        Ok(Some((listed.clone(), audit, event, positions)))
    })
    .await?;
    let (listed, audit, event, positions) = found.ok_or_else(|| Problem::not_found(&what))?;
    let a = &listed.alarm;
    let dir = api.control.live().load();
    let caller: &Caller = &viewer.0;
    caller.may(
        Action::Read,
        Resource::Tenant(&a.device.tenant.0),
        &dir,
        &what,
    )?;
    let d = dir.deadlines(&a.device);
    let now = api.control.now_ms();
    let s = a.stages;
    let mut deadlines = Vec::new();
    let deadline = |kind, due_ms: i64, met_ms: Option<i64>| DeadlineView {
        kind,
        due_ms,
        met_ms,
        missed: met_ms.map_or(now > due_ms, |m| m > due_ms),
    };
    deadlines.push(deadline(
        "receipt",
        s.offered_ms.unwrap_or(a.created_ms) + d.receipt_ms,
        s.receipted_ms,
    ));
    if let Some(r) = s.receipted_ms {
        deadlines.push(deadline("accept", r + d.accept_ms, s.accepted_ms));
    }
    let events = event
        .map(|e| EventView {
            id: id.to_string(),
            received_ms: e.received_ms,
            kind: event_kind(&e.kind),
            summary: event_summary(&e.kind),
        })
        .into_iter()
        .collect();
    Ok(Json(AlarmPage {
        alarm: AlarmView::from(&listed),
        audit: audit.iter().map(AuditView::from).collect(),
        deadlines,
        events,
        positions: positions.iter().map(PositionView::from).collect(),
    }))
}

fn event_kind(k: &EventKind) -> &'static str {
    match k {
        EventKind::Alarm(_) => "alarm",
        EventKind::Technical { .. } => "technical",
        EventKind::Heartbeat => "heartbeat",
        EventKind::Position => "position",
        EventKind::Telemetry { .. } => "telemetry",
        EventKind::Reset { .. } => "reset",
        EventKind::Silent => "silent",
        EventKind::Geofence { .. } => "geofence",
        EventKind::Rule { .. } => "rule",
    }
}

fn event_summary(k: &EventKind) -> String {
    match k {
        EventKind::Alarm(a) => format!("alarm {} priority {}", a.code, a.priority),
        EventKind::Technical { code, restoral } => {
            format!(
                "technical {code}{}",
                if *restoral { " restored" } else { "" }
            )
        }
        EventKind::Geofence { fence, exit } => {
            format!(
                "{} geofence {fence}",
                if *exit { "left" } else { "back in" }
            )
        }
        EventKind::Rule { text, .. } => text.clone(),
        EventKind::Silent => "no message within the supervision interval".into(),
        other => event_kind(other).into(),
    }
}

#[derive(serde::Deserialize)]
struct StatsParams {
    tenant: String,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

async fn stats_json(
    State(api): State<Api>,
    viewer: Viewer,
    Query(p): Query<StatsParams>,
) -> Result<Response, Problem> {
    let s = statistics::compute(&api, &viewer.0, &p.tenant, p.from_ms, p.to_ms).await?;
    Ok(Json(s).into_response())
}

async fn stats_csv(
    State(api): State<Api>,
    viewer: Viewer,
    Query(p): Query<StatsParams>,
) -> Result<Response, Problem> {
    let q = StatisticsQuery {
        from_ms: p.from_ms,
        to_ms: p.to_ms,
        format: Some("csv".into()),
    };
    statistics::respond(&api, &viewer.0, &p.tenant, q).await
}
