//! Logging in to the pages: a browser cannot send a bearer header on navigation, so the login
//! form's token is kept in an HttpOnly, SameSite=Strict cookie scoped to `/dashboard` and checked
//! on every request exactly as a bearer token is (revoking the token ends the session). Only
//! platform operators (everything) and tenant admins (their tenant) may see the pages.
use axum::extract::{Form, FromRequestParts, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vaka_core::access::{Principal, Role};

use crate::http::auth::Caller;
use crate::http::state::Api;

const COOKIE_NAME: &str = "vaka_session";
/// A session lasts at most this long, then the browser logs in again.
const MAX_AGE_SECS: u64 = 12 * 3600;

/// A logged-in page user.
pub struct Viewer(pub Caller);

impl Viewer {
    /// The tenants this viewer's pages cover: every tenant for a platform operator.
    pub fn tenants(&self, api: &Api) -> Vec<String> {
        let p = &self.0 .0;
        match p.role {
            Role::PlatformOperator => {
                let mut all: Vec<String> = api
                    .control
                    .live()
                    .load()
                    .tenants
                    .keys()
                    .map(|t| t.0.clone())
                    .collect();
                all.sort();
                all
            }
            _ => p.tenant.iter().cloned().collect(),
        }
    }

    pub fn is_platform(&self) -> bool {
        self.0 .0.role == Role::PlatformOperator
    }
}

/// Why a request has no viewer: pages send the browser to the login form, data answers 401.
pub enum NoViewer {
    Missing,
    NotAllowed,
}

impl IntoResponse for NoViewer {
    fn into_response(self) -> Response {
        match self {
            NoViewer::Missing => {
                (StatusCode::UNAUTHORIZED, "log in at /dashboard/login").into_response()
            }
            NoViewer::NotAllowed => (
                StatusCode::FORBIDDEN,
                "the dashboard is for platform operators and tenant admins",
            )
                .into_response(),
        }
    }
}

impl FromRequestParts<Api> for Viewer {
    type Rejection = NoViewer;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, Self::Rejection> {
        viewer(&parts.headers, api)
    }
}

fn viewer(headers: &HeaderMap, api: &Api) -> Result<Viewer, NoViewer> {
    let secret = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE_NAME}="))
                .map(str::to_owned)
        })
        .ok_or(NoViewer::Missing)?;
    let token = api.control.authenticate(&secret).ok_or(NoViewer::Missing)?;
    let principal = Principal::from(&token);
    match principal.role {
        Role::PlatformOperator | Role::TenantAdmin => Ok(Viewer(Caller(principal))),
        Role::Centre => Err(NoViewer::NotAllowed),
    }
}

/// A page (HTML) for a logged-in viewer, or a redirect to the login form.
pub fn page_or_login(headers: &HeaderMap, api: &Api, page: Response) -> Response {
    match viewer(headers, api) {
        Ok(_) => page,
        Err(NoViewer::Missing) => see_other("/dashboard/login"),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(State(api): State<Api>, Form(form): Form<LoginForm>) -> Response {
    let secret = form.token.trim();
    let ok = api
        .control
        .authenticate(secret)
        .is_some_and(|t| matches!(t.role, Role::PlatformOperator | Role::TenantAdmin));
    if !ok {
        metrics::counter!("vaka_admin_auth_failures_total").increment(1);
        return see_other("/dashboard/login?failed=1");
    }
    let cookie = format!(
        "{COOKIE_NAME}={secret}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={MAX_AGE_SECS}"
    );
    let mut r = see_other("/dashboard");
    if let Ok(v) = cookie.parse() {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

pub async fn logout() -> Response {
    let mut r = see_other("/dashboard/login");
    let clear = format!("{COOKIE_NAME}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = clear.parse() {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response()
}
