//! Answer-time statistics of one tenant over a period (`vaka_core::stats`), as JSON or CSV.
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use vaka_core::access::Action;
use vaka_core::alarm::AuditRecord;
use vaka_core::stats::{self, AlarmFacts, Statistics};
use vaka_core::{Alarm, TenantId};
use vaka_store::query::AlarmFilter;

use super::auth::Caller;
use super::problem::{FieldError, Problem};
use super::queries::blocking;
use super::state::Api;

/// The default period: the last 30 days.
const DEFAULT_PERIOD_MS: i64 = 30 * 24 * 3_600_000;

#[derive(Clone, Debug, Deserialize, IntoParams)]
pub struct StatisticsQuery {
    /// Alarms created at or after (unix ms); default 30 days before `to_ms`.
    pub from_ms: Option<i64>,
    /// Alarms created before (unix ms); default now.
    pub to_ms: Option<i64>,
    /// json (default) or csv.
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/statistics", tag = "alarms",
    params(("tenant" = String, Path), StatisticsQuery),
    responses((status = 200, description = "the tenant's answer-time statistics (JSON, or CSV with format=csv)"),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn tenant_statistics(
    State(api): State<Api>,
    caller: Caller,
    Path(tenant): Path<String>,
    Query(q): Query<StatisticsQuery>,
) -> Result<Response, Problem> {
    respond(&api, &caller, &tenant, q).await
}

/// The statistics as `q` asks (JSON or CSV).
pub async fn respond(
    api: &Api,
    caller: &Caller,
    tenant: &str,
    q: StatisticsQuery,
) -> Result<Response, Problem> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(Problem::invalid(vec![FieldError {
                field: "format".into(),
                reason: format!("\"{other}\" is neither json nor csv"),
            }]))
        }
    };
    let s = compute(api, caller, tenant, q.from_ms, q.to_ms).await?;
    Ok(if csv {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            stats::to_csv(&s),
        )
            .into_response()
    } else {
        Json(s).into_response()
    })
}

/// The statistics `caller` may read for `tenant` over `[from_ms, to_ms)`.
pub async fn compute(
    api: &Api,
    caller: &Caller,
    tenant: &str,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<Statistics, Problem> {
    caller.may_on_tenant(api, Action::Read, tenant, &format!("tenant \"{tenant}\""))?;
    let now = api.control.now_ms();
    let to_ms = to_ms.unwrap_or(now);
    let from_ms = from_ms.unwrap_or(to_ms - DEFAULT_PERIOD_MS);
    if from_ms >= to_ms {
        return Err(Problem::invalid(vec![FieldError {
            field: "from_ms".into(),
            reason: format!("the period must start before it ends ({from_ms} >= {to_ms})"),
        }]));
    }
    let filter = AlarmFilter {
        tenant: Some(tenant.to_string()),
        from_ms: Some(from_ms),
        to_ms: Some(to_ms),
        ..AlarmFilter::default()
    };
    let alarms: Vec<(Alarm, Vec<AuditRecord>)> = blocking(api.control.store(), move |s| {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = s.alarms_page(&filter, after, 1_000)?;
            for a in page.alarms {
                let audit = s.alarm_audit(a.id)?;
                out.push((a, audit));
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    })
    .await?;
    let dir = api.control.live().load();
    let facts: Vec<AlarmFacts<'_>> = alarms
        .iter()
        .map(|(alarm, audit)| AlarmFacts {
            alarm,
            audit,
            deadlines: dir.deadlines(&alarm.device),
        })
        .collect();
    let tz = dir.time_zone(&TenantId::new(tenant));
    Ok(stats::compute(tenant, from_ms, to_ms, now, tz, &facts))
}
