//! The admin REST API (axum), under `/api/v1`, with its OpenAPI 3 document generated from the
//! handlers (utoipa) at `/api/v1/openapi.json`. Every operation but the document needs a bearer
//! token; what the token may see and do is decided by `vaka_core::access` (see `auth`).
use axum::routing::{get, post};
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub mod actions;
pub mod auth;
pub mod dashboard;
pub mod directory;
pub mod erasure;
pub mod export;
pub mod import;
pub mod moves;
pub mod problem;
pub mod queries;
pub mod state;
pub mod statistics;
pub mod tenant_import;
pub mod timeline;
mod timeline_page;
pub mod tokens;

pub use state::{Api, Link, Links, MetricsText};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Vaka admin API", description = "The directory (tenants, centres, devices, chains, geofences, deadline policies), alarms, device status, API tokens and the admin audit log. Errors are RFC 9457 problem+json. Writes take If-Match with the record's revision (its ETag) and answer 412 when it moved on."),
    modifiers(&BearerAuth),
    paths(
        directory::list_tenants, directory::get_tenant, directory::put_tenant, directory::delete_tenant,
        directory::get_tenant_chain, directory::put_tenant_chain,
        directory::list_centres, directory::get_centre, directory::put_centre, directory::delete_centre,
        directory::list_devices, directory::get_device, directory::put_device, directory::delete_device,
        directory::get_device_chain, directory::put_device_chain,
        directory::get_fences, directory::put_fences,
        directory::list_policies, directory::get_policy, directory::put_policy, directory::delete_policy,
        import::import_devices, erasure::erase_device, export::export_tenant, tenant_import::import_tenant, moves::offer_move, moves::accept_move,
        queries::list_alarms, queries::get_alarm, timeline::alarm_timeline, actions::alarm_action, queries::device_status, queries::device_positions,
        queries::tenant_audit, queries::platform_audit, statistics::tenant_statistics,
        tokens::list_tokens, tokens::create_token, tokens::delete_token,
    ),
    components(schemas(
        problem::Problem, problem::FieldError, import::RowResult, import::ImportSummary,
        erasure::Erasure, tenant_import::TenantImport, tenant_import::Counts,
        moves::OfferBody, moves::AcceptBody, moves::MoveDone,
        timeline::Timeline, timeline::DeadlineView, timeline::EventView, timeline::TimelineWindow,
    ))
)]
pub struct ApiDoc;

/// The API's routes (paths start with `/api/v1`).
pub fn router(api: Api) -> Router {
    use directory as d;
    use queries as q;
    let doc = ApiDoc::openapi();
    let pages = dashboard::router(api.clone());
    Router::new()
        .route(
            "/api/v1/openapi.json",
            get(move || async move { axum::Json(doc) }),
        )
        .route("/api/v1/tenants", get(d::list_tenants))
        .route(
            "/api/v1/tenants/{tenant}",
            get(d::get_tenant)
                .put(d::put_tenant)
                .delete(d::delete_tenant),
        )
        .route(
            "/api/v1/tenants/{tenant}/chain",
            get(d::get_tenant_chain).put(d::put_tenant_chain),
        )
        .route("/api/v1/centres", get(d::list_centres))
        .route(
            "/api/v1/centres/{centre}",
            get(d::get_centre)
                .put(d::put_centre)
                .delete(d::delete_centre),
        )
        .route("/api/v1/tenants/{tenant}/devices", get(d::list_devices))
        .route(
            "/api/v1/tenants/{tenant}/devices/{device}",
            get(d::get_device)
                .put(d::put_device)
                .delete(d::delete_device),
        )
        .route(
            "/api/v1/tenants/{tenant}/devices/{device}/chain",
            get(d::get_device_chain).put(d::put_device_chain),
        )
        .route(
            "/api/v1/tenants/{tenant}/devices/{device}/fences",
            get(d::get_fences).put(d::put_fences),
        )
        .route(
            "/api/v1/tenants/{tenant}/devices/{device}/status",
            get(q::device_status),
        )
        .route(
            "/api/v1/tenants/{tenant}/devices/{device}/positions",
            get(q::device_positions),
        )
        .route(
            "/api/v1/tenants/{tenant}/devices/{device}/erasure",
            post(erasure::erase_device),
        )
        .route(
            "/api/v1/tenants/{tenant}/export",
            get(export::export_tenant),
        )
        .route(
            "/api/v1/tenants/{tenant}/import",
            // Spooled to disk as it arrives (bounded by `tenant_import::MAX_ARCHIVE`).
            post(tenant_import::import_tenant).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/tenants/{tenant}/devices/{device}/move",
            post(moves::offer_move),
        )
        .route(
            "/api/v1/tenants/{tenant}/device-moves/{device}",
            post(moves::accept_move),
        )
        .route(
            "/api/v1/tenants/{tenant}/device-imports",
            post(import::import_devices),
        )
        .route(
            "/api/v1/tenants/{tenant}/deadline-policies",
            get(d::list_policies),
        )
        .route(
            "/api/v1/tenants/{tenant}/deadline-policies/{policy}",
            get(d::get_policy)
                .put(d::put_policy)
                .delete(d::delete_policy),
        )
        .route("/api/v1/tenants/{tenant}/alarms", get(q::list_alarms))
        .route("/api/v1/alarms/{alarm}", get(q::get_alarm))
        .route(
            "/api/v1/alarms/{alarm}/timeline",
            get(timeline::alarm_timeline),
        )
        .route(
            "/api/v1/alarms/{alarm}/actions",
            post(actions::alarm_action),
        )
        .route(
            "/api/v1/tenants/{tenant}/statistics",
            get(statistics::tenant_statistics),
        )
        .route("/api/v1/tenants/{tenant}/admin-audit", get(q::tenant_audit))
        .route("/api/v1/admin-audit", get(q::platform_audit))
        .route(
            "/api/v1/tokens",
            get(tokens::list_tokens).post(tokens::create_token),
        )
        .route(
            "/api/v1/tokens/{token}",
            axum::routing::delete(tokens::delete_token),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
        .merge(pages)
        .fallback(|| async { problem::Problem::not_found("no such API path") })
        .route_layer(axum::middleware::from_fn(count))
}

/// Bodies up to this size (a 10,000-device import is about 1 MB).
pub const MAX_BODY: usize = 64 << 20;

async fn count(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let r = next.run(req).await;
    metrics::histogram!("vaka_admin_request_seconds", "method" => method, "status" => r.status().as_u16().to_string())
        .record(started.elapsed().as_secs_f64());
    r
}
