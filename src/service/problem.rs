//! RFC 9457 problem documents: every error the API returns, with the domain's rejection code.

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_commands::CommandError;
use ledger_domain::Rejection;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where problem types are described (docs/api.md, "Errors").
const PROBLEM_TYPE_BASE: &str = "https://order-ledger.dev/problems/";
/// The code of a command refused because the log's disk is full.
pub(super) const STORAGE_FULL: &str = "storage_full";
/// How long a client may take to send a request's body, whole. Bodies are small and go out
/// with the head; one that stops halfway would otherwise hold its connection and a task for
/// as long as the client stays.
pub(super) const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable, machine-readable: the domain's rejection code, or the API's own.
    pub code: String,
}

/// The media type of every error answer (RFC 9457 §3).
pub const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";

/// Documented as what it is sent as, so that a client generated from the document, or one that
/// checks the content type, reads errors as problems.
impl<'s> utoipa::ToResponse<'s> for Problem {
    fn response() -> (
        &'s str,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    ) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build();
        let response = ResponseBuilder::new()
            .description("An RFC 9457 problem document; `code` says what went wrong")
            .content(PROBLEM_MEDIA_TYPE, content)
            .build();
        ("Problem", response.into())
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// What went wrong inside, for the operator: logged with the request it failed
    /// (`ops::record_request`), never sent.
    cause: Option<String>,
}

/// A failed request's inner cause, handed from the error to the request's log line in the
/// response's extensions, where the method, path and correlation id are known.
#[derive(Clone, Debug)]
pub struct FailureCause {
    pub code: &'static str,
    pub cause: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            cause: None,
        }
    }

    fn caused_by(mut self, cause: impl Into<String>) -> ApiError {
        self.cause = Some(cause.into());
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn internal(detail: impl Into<String>) -> ApiError {
        let detail = detail.into();
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            detail.clone(),
        )
        .caused_by(detail)
    }

    pub fn problem(&self) -> Problem {
        Problem {
            problem_type: format!("{PROBLEM_TYPE_BASE}{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_MEDIA_TYPE),
        );
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was never read: the connection cannot carry another request.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(FailureCause {
                code: self.code,
                cause,
            });
        }
        response
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        let status = match rejection {
            Rejection::RoleNotAllowed { .. } | Rejection::NotAParty { .. } => StatusCode::FORBIDDEN,
            Rejection::OrderNotFound => StatusCode::NOT_FOUND,
            Rejection::AlreadyPlaced => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, rejection.code(), rejection.to_string())
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> ApiError {
        match error {
            CommandError::Rejected(rejection) => rejection.into(),
            CommandError::StaleRevision { .. } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "stale_revision",
                error.to_string(),
            ),
            CommandError::CommandIdReused(_) => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request",
            ),
            CommandError::OrderIdMismatch => {
                ApiError::bad_request("order_id_mismatch", error.to_string())
            }
            CommandError::TooMuchContention(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_much_contention",
                error.to_string(),
            ),
            // Not the client's fault, and nothing was written: the same request succeeds
            // once an operator has made room, so it is told to come back, not that it broke.
            CommandError::Store(ledger_store::StoreError::Full(detail)) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                STORAGE_FULL,
                "the disk holding the log is full: nothing was written; send the same request again later",
            )
            .caused_by(format!("the disk holding the log is full: {detail}")),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// A JSON body, read whatever its content type says, refused with a problem document.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let read = axum::body::Bytes::from_request(request, state);
        let bytes = tokio::time::timeout(BODY_READ_TIMEOUT, read)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the request body did not arrive whole within {} s",
                        BODY_READ_TIMEOUT.as_secs()
                    ),
                )
            })?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "the request body is larger than the service accepts",
                    )
                } else {
                    ApiError::bad_request("unreadable_body", rejection.body_text())
                }
            })?;
        let body = if bytes.is_empty() { &b"{}"[..] } else { &bytes };
        serde_json::from_slice(body).map(JsonBody).map_err(|e| {
            ApiError::bad_request(
                "malformed_body",
                format!("the body is not a valid request: {e}"),
            )
        })
    }
}

/// A route that takes no query parameters refuses them rather than pass them over: a command,
/// whose input is its body (`POST …/refunds?dry_run=true` would refund for real), or a read
/// such as `/orders/{id}?at=…`, which would answer with the order as it is now.
pub struct NoQueryString;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for NoQueryString {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        let Some(query) = parts.uri.query().filter(|query| !query.is_empty()) else {
            return Ok(NoQueryString);
        };
        let names: Vec<String> = query
            .split('&')
            .filter_map(|pair| pair.split('=').next().filter(|name| !name.is_empty()))
            .map(|name| format!("`{name}`"))
            .collect();
        let command = if parts.method == axum::http::Method::POST {
            "; a command's input is its JSON body"
        } else {
            ""
        };
        Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "{} takes no query parameters ({} given){command}",
                parts.uri.path(),
                names.join(", ")
            ),
        ))
    }
}

/// A path parameter, refused with a problem document when it does not parse.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::bad_request("invalid_path", rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_store::StoreError;

    #[test]
    fn a_full_disk_asks_the_client_to_come_back_where_other_store_failures_are_internal() {
        let full = ApiError::from(CommandError::Store(StoreError::Full(
            "database or disk is full".to_owned(),
        )));
        assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
        let problem = full.problem();
        assert_eq!(problem.code, STORAGE_FULL);
        assert!(
            problem.detail.contains("nothing was written"),
            "{problem:?}"
        );
        let broken = ApiError::from(CommandError::Store(StoreError::Io(
            "disk I/O error".to_owned(),
        )));
        assert_eq!(broken.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(broken.code, "internal");
    }
}
