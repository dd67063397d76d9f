//! API tokens: a platform operator makes any; a tenant admin makes and revokes tenant-admin
//! tokens of its own tenant; a centre token makes none. The secret is shown once, at creation.
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vaka_core::access::{Role, TokenRecord};

use super::auth::Caller;
use super::directory::parse;
use super::problem::{FieldError, Problem};
use super::state::Api;
use crate::tokens::NewToken;

/// A token as listed: never its secret or hash.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub role: Role,
    pub tenant: Option<String>,
    pub centre: Option<String>,
    pub label: String,
    pub created_ms: i64,
    pub created_by: String,
}

impl From<&TokenRecord> for TokenView {
    fn from(t: &TokenRecord) -> Self {
        TokenView {
            id: t.id.clone(),
            role: t.role,
            tenant: t.tenant.clone(),
            centre: t.centre.clone(),
            label: t.label.clone(),
            created_ms: t.created_ms,
            created_by: t.created_by.clone(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    pub role: Role,
    /// For a tenant admin: its tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// For a centre: the centre.
    #[serde(default)]
    pub centre: Option<String>,
    #[serde(default)]
    pub label: String,
}

/// A new token: the secret is in this answer only.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: TokenView,
    pub secret: String,
}

/// The tokens a caller may see (decided in `vaka_core::access`).
fn visible(caller: &Caller, t: &TokenRecord) -> bool {
    caller.0.may_see_token(t)
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = [TokenView]), (status = 403, body = Problem)))]
pub async fn list_tokens(
    State(api): State<Api>,
    caller: Caller,
) -> Result<Json<Vec<TokenView>>, Problem> {
    if caller.0.role == Role::Centre {
        return Err(Problem::forbidden("a centre token cannot list tokens"));
    }
    Ok(Json(
        api.control
            .token_list()
            .iter()
            .filter(|t| visible(&caller, t))
            .map(TokenView::from)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens",
    request_body = TokenInput,
    responses((status = 201, body = CreatedToken), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_token(
    State(api): State<Api>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, Problem> {
    if caller.0.role == Role::Centre {
        return Err(Problem::forbidden("a centre token cannot make tokens"));
    }
    let input: TokenInput = parse(&body)?;
    if caller
        .0
        .may_create_token(input.role, input.tenant.as_deref())
        .is_err()
    {
        return Err(Problem::forbidden(
            "a tenant admin may only make tenant-admin tokens of its own tenant",
        ));
    }
    let mut problems = Vec::new();
    let mut bad = |field: &str, reason: &str| {
        problems.push(FieldError {
            field: field.into(),
            reason: reason.into(),
        })
    };
    {
        let dir = api.control.live().load();
        match input.role {
            Role::PlatformOperator => {
                if input.tenant.is_some() || input.centre.is_some() {
                    bad(
                        "role",
                        "a platform operator token names no tenant or centre",
                    );
                }
            }
            Role::TenantAdmin => match &input.tenant {
                Some(t) if dir.records.tenants.contains_key(t) => {}
                Some(_) => bad("tenant", "unknown tenant"),
                None => bad("tenant", "a tenant-admin token needs its tenant"),
            },
            Role::Centre => match &input.centre {
                Some(c) if dir.records.centres.contains_key(c) => {}
                Some(_) => bad("centre", "unknown centre"),
                None => bad("centre", "a centre token needs its centre"),
            },
        }
    }
    if !problems.is_empty() {
        return Err(Problem::invalid(problems));
    }
    let new = NewToken {
        role: input.role,
        tenant: input.tenant,
        centre: input.centre,
        label: input.label,
    };
    let (record, secret) = api.control.create_token(&caller.actor(), new).await?;
    let created = CreatedToken {
        token: TokenView::from(&record),
        secret,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/tokens/{token}", tag = "tokens",
    params(("token" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_token(
    State(api): State<Api>,
    caller: Caller,
    Path(token): Path<String>,
) -> Result<Response, Problem> {
    let what = format!("token \"{token}\"");
    let found = api.control.token_list().into_iter().find(|t| t.id == token);
    match found {
        Some(t) if visible(&caller, &t) => {}
        _ => return Err(Problem::not_found(what)),
    }
    api.control.delete_token(&caller.actor(), &token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
