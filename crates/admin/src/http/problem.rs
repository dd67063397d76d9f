//! Errors as RFC 9457 problem details (`application/problem+json`), naming the field at fault.
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use vaka_core::access::Denied;
use vaka_core::directory::DirectoryError;

use crate::control::ControlError;

/// One field that is wrong, and why.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

/// A problem document (RFC 9457).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:vaka:problem:invalid`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For `invalid`: every field at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:vaka:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{} not found", what.into()),
        )
    }

    /// 409: `what` has open alarms (`ids`); `why` says why that stops the call.
    pub fn open_alarms(what: &str, ids: &[u64], why: &str) -> Problem {
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        Problem::new(
            StatusCode::CONFLICT,
            "open-alarms",
            format!("{what} has open alarms ({}): {why}", ids.join(", ")),
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// A body that does not parse: the field serde names, if any.
    pub fn body(e: &serde_json::Error) -> Problem {
        Problem::invalid(vec![FieldError {
            field: String::new(),
            reason: format!("{e} (line {}, column {})", e.line(), e.column()),
        }])
    }

    /// A body that does not deserialise, naming the field where it failed (the path, or the
    /// unknown field).
    pub fn body_at(e: &serde_path_to_error::Error<serde_json::Error>) -> Problem {
        let inner = e.inner();
        Problem::invalid(vec![FieldError {
            field: error_field(e),
            reason: format!("{inner} (line {}, column {})", inner.line(), inner.column()),
        }])
    }

    pub fn invalid(errors: Vec<FieldError>) -> Problem {
        let detail = errors
            .iter()
            .map(|e| {
                if e.field.is_empty() {
                    e.reason.clone()
                } else {
                    format!("{}: {}", e.field, e.reason)
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        Problem {
            errors,
            ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail)
        }
    }

    /// What to answer a call that access control refused.
    pub fn denied(d: Denied, what: &str) -> Problem {
        match d {
            Denied::Hidden => Problem::not_found(what),
            Denied::Forbidden => Problem::forbidden(format!("this token may not change {what}")),
        }
    }
}

impl From<ControlError> for Problem {
    fn from(e: ControlError) -> Problem {
        match e {
            ControlError::Directory(DirectoryError::Invalid(p)) => Problem::invalid(
                p.into_iter()
                    .map(|(field, reason)| FieldError { field, reason })
                    .collect(),
            ),
            ControlError::Directory(DirectoryError::NotFound(what)) => Problem::not_found(what),
            ControlError::Directory(DirectoryError::Conflict(why)) => {
                Problem::new(StatusCode::CONFLICT, "conflict", why)
            }
            e @ ControlError::Stale { .. } => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "stale-revision",
                e.to_string(),
            ),
            ControlError::Store(e) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                format!("the change was not made: {e}"),
            ),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (status, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"vaka-admin\""),
            );
        }
        r
    }
}

/// The field a deserialisation error is about: its path, or for an unknown or missing field
/// (reported at the object itself) the field the message names.
pub fn error_field<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    if path != "." {
        return path;
    }
    let msg = e.inner().to_string();
    msg.split('`')
        .nth(1)
        .filter(|_| msg.contains("field"))
        .unwrap_or("")
        .to_owned()
}
