//! Reads over what the engine stored: alarms by tenant, state, device and time (paginated), one
//! alarm with its audit trail, a device's status and its positions, and the admin audit log.
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vaka_core::access::{Action, Resource};
use vaka_core::alarm::{AlarmState, AuditRecord};
use vaka_core::{Alarm, AlarmId, DeviceKey};
use vaka_store::directory::AdminAuditEntry;
use vaka_store::query::{AlarmFilter, StateFilter};
use vaka_store::{Listed, Store, StoredPosition};

use super::auth::Caller;
use super::problem::Problem;
use super::state::{Api, Link};

/// An alarm as the admin API shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AlarmView {
    pub id: u64,
    pub tenant: String,
    pub device: String,
    pub reference: String,
    /// help, technical, silent, geofence_exit.
    pub kind: String,
    pub code: String,
    pub priority: u8,
    pub text: Option<String>,
    pub callback: Vec<String>,
    /// pending, offered, receipted, accepted, closed, cancelled, unhandled.
    pub state: String,
    /// The centre holding it (offered, receipted, accepted, closed).
    pub centre: Option<String>,
    pub operator: Option<String>,
    pub outcome: Option<String>,
    /// Index into the chain of the centre responsible now.
    pub step: u32,
    /// The deadline running now: "receipt" or "accept", and when (unix ms).
    pub deadline: Option<String>,
    pub deadline_ms: Option<i64>,
    pub repeats: u32,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// When it first reached each stage (unix ms; absent: not yet).
    pub stages: StagesView,
    /// A test alarm (device or tenant on test): never escalated, expires instead.
    pub test: bool,
    /// In a cluster, the node that holds it (offers it, runs its deadlines) when that is
    /// another node: this one shows its replica. Absent: held here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

impl From<&Listed> for AlarmView {
    fn from(l: &Listed) -> Self {
        AlarmView {
            holder: l.holder.clone(),
            ..AlarmView::from(&l.alarm)
        }
    }
}

/// An alarm's stage times: received (its `created_ms`), durable, offered, receipted, accepted,
/// attended (a responder reached the person), closed (or cancelled).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StagesView {
    pub received_ms: i64,
    pub durable_ms: Option<i64>,
    pub offered_ms: Option<i64>,
    pub receipted_ms: Option<i64>,
    pub accepted_ms: Option<i64>,
    pub attended_ms: Option<i64>,
    pub closed_ms: Option<i64>,
}

fn snake(debug: String) -> String {
    let mut out = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl From<&Alarm> for AlarmView {
    fn from(a: &Alarm) -> Self {
        let (state, centre, operator, outcome) = match &a.state {
            AlarmState::Pending => ("pending", None, None, None),
            AlarmState::Offered { centre } => ("offered", Some(centre), None, None),
            AlarmState::Receipted { centre } => ("receipted", Some(centre), None, None),
            AlarmState::Accepted { centre, operator } => {
                ("accepted", Some(centre), Some(operator.clone()), None)
            }
            AlarmState::Closed { centre, outcome } => {
                ("closed", Some(centre), None, Some(outcome.clone()))
            }
            AlarmState::Cancelled => ("cancelled", None, None, None),
            AlarmState::Unhandled => ("unhandled", None, None, None),
            AlarmState::Expired => ("expired", None, None, None),
        };
        AlarmView {
            id: a.id.0,
            tenant: a.device.tenant.to_string(),
            device: a.device.device.to_string(),
            reference: a.reference.clone(),
            kind: snake(format!("{:?}", a.kind)),
            code: a.code.clone(),
            priority: a.priority,
            text: a.text.clone(),
            callback: a.callback.clone(),
            state: state.into(),
            centre: centre.map(|c| c.to_string()),
            operator,
            outcome,
            step: a.step,
            deadline: a.deadline.map(|d| snake(format!("{:?}", d.kind))),
            deadline_ms: a.deadline.map(|d| d.at_ms),
            repeats: a.repeats,
            created_ms: a.created_ms,
            updated_ms: a.updated_ms,
            stages: StagesView {
                received_ms: a.created_ms,
                durable_ms: a.stages.durable_ms,
                offered_ms: a.stages.offered_ms,
                receipted_ms: a.stages.receipted_ms,
                accepted_ms: a.stages.accepted_ms,
                attended_ms: a.stages.attended_ms,
                closed_ms: a.stages.closed_ms,
            },
            test: a.test,
            holder: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, IntoParams)]
pub struct AlarmQuery {
    /// any (default), open, pending, offered, receipted, accepted, unhandled, closed, cancelled.
    pub state: Option<String>,
    pub device: Option<String>,
    /// Created at or after (unix ms).
    pub from: Option<i64>,
    /// Created before (unix ms).
    pub to: Option<i64>,
    /// Start after this alarm id (the previous page's `next_after`).
    pub after: Option<u64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AlarmPage {
    pub alarms: Vec<AlarmView>,
    /// Where the next page starts; absent at the end.
    pub next_after: Option<u64>,
}

pub(super) async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, vaka_store::StoreError> + Send + 'static,
) -> Result<T, Problem> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| {
            Problem::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                e.to_string(),
            )
        })?
        .map_err(|e| {
            Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                e.to_string(),
            )
        })
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/alarms", tag = "alarms",
    params(("tenant" = String, Path), AlarmQuery),
    responses((status = 200, body = AlarmPage), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_alarms(
    State(api): State<Api>,
    caller: Caller,
    Path(tenant): Path<String>,
    Query(q): Query<AlarmQuery>,
) -> Result<Json<AlarmPage>, Problem> {
    caller.may_on_tenant(&api, Action::Read, &tenant, &format!("tenant \"{tenant}\""))?;
    let state = match q.state.as_deref() {
        None => StateFilter::Any,
        Some(s) => StateFilter::parse(s).ok_or_else(|| {
            Problem::invalid(vec![super::problem::FieldError {
                field: "state".into(),
                reason: format!("unknown state \"{s}\""),
            }])
        })?,
    };
    let filter = AlarmFilter {
        tenant: Some(tenant),
        device: q.device,
        state,
        from_ms: q.from,
        to_ms: q.to,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let after = q.after.map(AlarmId);
    let page = blocking(api.control.store(), move |s| {
        s.listed_page(&filter, after, limit)
    })
    .await?;
    Ok(Json(AlarmPage {
        alarms: page.alarms.iter().map(AlarmView::from).collect(),
        next_after: page.next_after.map(|a| a.0),
    }))
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub at_ms: i64,
    /// "device", "engine", "centre:X", ...
    pub actor: String,
    pub action: String,
    pub reason: String,
}

impl From<&AuditRecord> for AuditView {
    fn from(r: &AuditRecord) -> Self {
        AuditView {
            at_ms: r.at_ms,
            actor: r.actor.clone(),
            action: r.action.clone(),
            reason: r.reason.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AlarmDetail {
    pub alarm: AlarmView,
    /// Every transition, oldest first.
    pub audit: Vec<AuditView>,
}

#[utoipa::path(get, path = "/api/v1/alarms/{alarm}", tag = "alarms",
    params(("alarm" = u64, Path)),
    responses((status = 200, body = AlarmDetail), (status = 404, body = Problem)))]
pub async fn get_alarm(
    State(api): State<Api>,
    caller: Caller,
    Path(alarm): Path<u64>,
) -> Result<Json<AlarmDetail>, Problem> {
    let id = AlarmId(alarm);
    let what = format!("alarm {alarm}");
    let (found, audit) = blocking(api.control.store(), move |s| {
        let a = s.listed_alarm(id)?;
        // A replica has no trail here: its holder keeps it.
        let audit = match &a {
            Some(l) if l.holder.is_none() => s.alarm_audit(id)?,
            _ => Vec::new(),
        };
        Ok((a, audit))
    })
    .await?;
    let listed = found.ok_or_else(|| Problem::not_found(&what))?;
    let a = &listed.alarm;
    let dir = api.control.live().load();
    caller.may(
        Action::Read,
        Resource::Tenant(&a.device.tenant.0),
        &dir,
        &what,
    )?;
    Ok(Json(AlarmDetail {
        alarm: AlarmView::from(&listed),
        audit: audit.iter().map(AuditView::from).collect(),
    }))
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PositionView {
    pub time_ms: i64,
    pub received_ms: i64,
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f32>,
    pub speed_mps: Option<f32>,
    pub course_deg: Option<f32>,
    pub event: u64,
}

impl From<&StoredPosition> for PositionView {
    fn from(p: &StoredPosition) -> Self {
        PositionView {
            time_ms: p.fix.time_ms,
            received_ms: p.received_ms,
            lat: p.fix.lat,
            lon: p.fix.lon,
            accuracy_m: p.fix.accuracy_m,
            speed_mps: p.fix.speed_mps,
            course_deg: p.fix.course_deg,
            event: p.event.0,
        }
    }
}

/// A device's supervision as it is applied now.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SupervisionView {
    /// The EN 50136-1 category ("DP4"), when supervised by one (own or its type's).
    pub category: Option<String>,
    /// The category's reporting time for the primary path, seconds.
    pub reporting_secs: Option<u32>,
    /// The category's second-path reporting time (dual-path categories), seconds.
    pub second_path_secs: Option<u32>,
    /// Silence allowed after a message before "device silent" is raised, seconds (the
    /// category's reporting time, or the heartbeat interval plus the platform's grace).
    pub silent_after_secs: u64,
    /// When the device is called silent if nothing is heard before (unix ms), from the last
    /// message; absent when it was never heard.
    pub silent_at_ms: Option<i64>,
}

/// An activity rule of the device and where it stands.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RuleView {
    pub id: String,
    pub kind: String,
    /// armed (watching), waiting (the condition began; fires at `due_ms` unless it ends) or
    /// fired (its alarm is open until the condition ends).
    pub state: String,
    pub since_ms: Option<i64>,
    pub due_ms: Option<i64>,
    /// The events that led to the waiting or fired condition.
    pub causes: Vec<u64>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeviceStatus {
    pub tenant: String,
    pub device: String,
    pub enabled: bool,
    /// Last heard (supervised devices), unix ms.
    pub last_heard_ms: Option<i64>,
    pub heartbeat_secs: Option<u32>,
    /// How the device is supervised; absent: not supervised.
    pub supervision: Option<SupervisionView>,
    /// Its activity rules (own or its type's) and their state.
    pub rules: Vec<RuleView>,
    pub open_alarms: Vec<AlarmView>,
    pub latest_position: Option<PositionView>,
    pub connections: Vec<Link>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/devices/{device}/status", tag = "devices",
    params(("tenant" = String, Path), ("device" = String, Path)),
    responses((status = 200, body = DeviceStatus), (status = 404, body = Problem)))]
pub async fn device_status(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, device)): Path<(String, String)>,
) -> Result<Json<DeviceStatus>, Problem> {
    let what = format!("device \"{tenant}/{device}\"");
    let key = DeviceKey::new(&tenant, &device);
    let (enabled, heartbeat_secs, silence, category, rules) = {
        let dir = api.control.live().load();
        caller.may(Action::Read, Resource::Tenant(&tenant), &dir, &what)?;
        let d = dir
            .records
            .devices
            .get(&(tenant.clone(), device.clone()))
            .ok_or_else(|| Problem::not_found(&what))?;
        let grace = api.control.supervision_grace_ms();
        let category = dir.device(&key).and_then(|d| d.category);
        let rules: Vec<(String, &'static str)> = dir
            .device(&key)
            .map(|d| {
                d.rules
                    .iter()
                    .map(|r| (r.id.clone(), r.kind_name()))
                    .collect()
            })
            .unwrap_or_default();
        (
            d.enabled,
            d.heartbeat_secs,
            dir.silence(&key, None, grace),
            category,
            rules,
        )
    };
    let k = key.clone();
    let (heard, open, latest, states) = blocking(api.control.store(), move |s| {
        Ok((
            s.last_heard(&k)?,
            s.open_listed_of(&k)?,
            s.latest_position(&k)?,
            s.rule_states(&k)?,
        ))
    })
    .await?;
    let rules = rules
        .into_iter()
        .map(|(id, kind)| {
            let st = states
                .iter()
                .find(|(r, _)| *r == id)
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            RuleView {
                id,
                kind: kind.to_owned(),
                state: match st.phase {
                    vaka_core::rules::Phase::Armed => "armed",
                    vaka_core::rules::Phase::Waiting => "waiting",
                    vaka_core::rules::Phase::Fired => "fired",
                }
                .to_owned(),
                since_ms: st.since,
                due_ms: st.due,
                causes: st.causes.iter().map(|c| c.0).collect(),
            }
        })
        .collect();
    Ok(Json(DeviceStatus {
        tenant,
        device,
        enabled,
        last_heard_ms: heard,
        heartbeat_secs,
        supervision: silence.map(|s| SupervisionView {
            category: category.map(|c| c.to_string()),
            reporting_secs: category.map(|c| c.reporting_secs()),
            second_path_secs: category.and_then(|c| c.second_path_secs()),
            silent_after_secs: ((s.interval_ms + s.grace_ms) / 1000) as u64,
            silent_at_ms: heard.map(|h| s.silent_at(h)),
        }),
        rules,
        open_alarms: open.iter().map(AlarmView::from).collect(),
        latest_position: latest.as_ref().map(PositionView::from),
        connections: (api.links)(&key),
    }))
}

#[derive(Clone, Debug, Deserialize, IntoParams)]
pub struct PositionQuery {
    /// Fix time at or after (unix ms); default 0.
    pub from: Option<i64>,
    /// Fix time before (unix ms); default: no end.
    pub to: Option<i64>,
    /// At most this many (default 1000, at most 10000).
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/devices/{device}/positions", tag = "devices",
    params(("tenant" = String, Path), ("device" = String, Path), PositionQuery),
    responses((status = 200, body = [PositionView]), (status = 404, body = Problem)))]
pub async fn device_positions(
    State(api): State<Api>,
    caller: Caller,
    Path((tenant, device)): Path<(String, String)>,
    Query(q): Query<PositionQuery>,
) -> Result<Json<Vec<PositionView>>, Problem> {
    let what = format!("device \"{tenant}/{device}\"");
    {
        let dir = api.control.live().load();
        caller.may(Action::Read, Resource::Tenant(&tenant), &dir, &what)?;
        if !dir
            .records
            .devices
            .contains_key(&(tenant.clone(), device.clone()))
        {
            return Err(Problem::not_found(&what));
        }
    }
    let key = DeviceKey::new(&tenant, &device);
    let (from, to) = (q.from.unwrap_or(0), q.to.unwrap_or(i64::MAX));
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let rows = blocking(api.control.store(), move |s| {
        s.positions(&key, from, to, limit)
    })
    .await?;
    Ok(Json(rows.iter().map(PositionView::from).collect()))
}

#[derive(Clone, Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Entries at or after this time (unix ms); default 0.
    pub from: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// One admin change as the audit log shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AdminAuditView {
    pub revision: u64,
    pub at_ms: i64,
    pub actor: String,
    pub tenant: Option<String>,
    pub action: String,
    pub resource: String,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

impl From<AdminAuditEntry> for AdminAuditView {
    fn from(e: AdminAuditEntry) -> Self {
        AdminAuditView {
            revision: e.revision,
            at_ms: e.at_ms,
            actor: e.actor,
            tenant: e.tenant,
            action: e.action,
            resource: e.resource,
            before: e.before,
            after: e.after,
        }
    }
}

async fn audit_page(
    api: &Api,
    tenant: Option<String>,
    q: AuditQuery,
) -> Result<Json<Vec<AdminAuditView>>, Problem> {
    let (from, limit) = (q.from.unwrap_or(0), q.limit.unwrap_or(100).clamp(1, 1000));
    let rows = blocking(api.control.store(), move |s| {
        s.admin_audit(tenant.as_deref(), from, limit)
    })
    .await?;
    Ok(Json(rows.into_iter().map(AdminAuditView::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/admin-audit", tag = "audit",
    params(("tenant" = String, Path), AuditQuery),
    responses((status = 200, body = [AdminAuditView]), (status = 404, body = Problem)))]
pub async fn tenant_audit(
    State(api): State<Api>,
    caller: Caller,
    Path(tenant): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AdminAuditView>>, Problem> {
    {
        let dir = api.control.live().load();
        let what = format!("tenant \"{tenant}\"");
        // The audit log is the tenant admin's (and the operator's), not a centre's.
        caller.may(Action::Write, Resource::Tenant(&tenant), &dir, &what)?;
    }
    audit_page(&api, Some(tenant), q).await
}

#[utoipa::path(get, path = "/api/v1/admin-audit", tag = "audit",
    params(AuditQuery),
    responses((status = 200, body = [AdminAuditView]), (status = 403, body = Problem)))]
pub async fn platform_audit(
    State(api): State<Api>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AdminAuditView>>, Problem> {
    if !caller.0.is_platform_operator() {
        return Err(Problem::forbidden(
            "the platform's audit log is the platform operator's",
        ));
    }
    audit_page(&api, None, q).await
}
