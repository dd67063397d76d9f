//! Who is calling: `Authorization: Bearer <token>` looked up by its hash. Every handler takes a
//! [`Caller`], so no operation answers an anonymous call; what the caller may do is decided by
//! `vaka_core::access` alone, through [`Caller::may`].
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use vaka_core::access::{Action, Principal, Resource};
use vaka_core::directory::Directory;

use super::problem::Problem;
use super::state::Api;

pub struct Caller(pub Principal);

impl FromRequestParts<Api> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Problem::unauthorized("an API token is required (Authorization: Bearer ...)")
            })?;
        let secret = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| Problem::unauthorized("only Bearer tokens are accepted"))?;
        match api.control.authenticate(secret.trim()) {
            Some(t) => Ok(Caller(Principal::from(&t))),
            None => {
                metrics::counter!("vaka_admin_auth_failures_total").increment(1);
                Err(Problem::unauthorized("unknown or revoked API token"))
            }
        }
    }
}

impl Caller {
    /// Access control for one call; `what` names the resource in the answer.
    pub fn may(
        &self,
        action: Action,
        resource: Resource<'_>,
        dir: &Directory,
        what: &str,
    ) -> Result<(), Problem> {
        self.0
            .may(action, resource, dir)
            .map_err(|d| Problem::denied(d, what))
    }

    /// [`Caller::may`] on something of `tenant`, against the directory as it is now.
    pub fn may_on_tenant(
        &self,
        api: &Api,
        action: Action,
        tenant: &str,
        what: &str,
    ) -> Result<(), Problem> {
        let dir = api.control.live().load();
        self.may(action, Resource::Tenant(tenant), &dir, what)
    }

    /// The actor named in audit logs.
    pub fn actor(&self) -> String {
        format!("token:{}", self.0.token)
    }
}
