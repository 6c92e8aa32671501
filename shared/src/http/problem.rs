//! Errors as RFC 9457 `application/problem+json` responses.
//!
//! Handlers return [`ApiError`]; it decides the status, the stable `type` URI and the body, and
//! makes sure internal details are logged, never sent to the client.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use shared_core::InvalidParam;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Base of the `type` URIs. They name the problem kind; they need not resolve.
const TYPE_BASE: &str = "https://errors.shop.example/";

/// The problem document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(rename = "invalid-params", default, skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is well-formed HTTP but its content is not acceptable.
    #[error("validation failed: {}", summary(.0))]
    Validation(Vec<InvalidParam>),
    /// Fields that are each valid but together break a rule (a sku on two lines): 422.
    #[error("breaks a rule: {}", summary(.0))]
    BrokenRule(Vec<InvalidParam>),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// Well-formed and valid, but cannot be processed, e.g. an idempotency key reused with another body.
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Anything we did not expect. The source is logged; the client sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

fn summary(params: &[InvalidParam]) -> String {
    params.iter().map(|p| format!("{}: {}", p.name, p.reason)).collect::<Vec<_>>().join("; ")
}

impl ApiError {
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Validation(vec![InvalidParam::new(name, reason)])
    }

    pub fn internal(source: impl std::fmt::Display) -> Self {
        Self::Internal(source.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) | Self::BrokenRule(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn to_problem(&self) -> Problem {
        let (slug, title) = match self {
            Self::Validation(_) => ("validation", "Your request is not valid"),
            Self::BrokenRule(_) => ("broken-rule", "Your request breaks a rule"),
            Self::BadRequest(_) => ("bad-request", "Bad request"),
            Self::NotFound(_) => ("not-found", "Resource not found"),
            Self::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            Self::Conflict(_) => ("conflict", "Conflict"),
            Self::PayloadTooLarge { .. } => ("payload-too-large", "Request body too large"),
            Self::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            Self::Unprocessable(_) => ("unprocessable", "Request cannot be processed"),
            Self::Unavailable(_) => ("unavailable", "Service unavailable"),
            Self::Internal(_) => ("internal", "Internal error"),
        };
        let detail = match self {
            Self::Internal(_) => "An unexpected error occurred; it has been logged.".to_owned(),
            Self::Validation(params) | Self::BrokenRule(params) => summary(params),
            Self::PayloadTooLarge { limit } => format!("The request body must be at most {limit} bytes."),
            Self::MethodNotAllowed => "This resource does not support that method.".to_owned(),
            Self::BadRequest(d)
            | Self::NotFound(d)
            | Self::Conflict(d)
            | Self::UnsupportedMediaType(d)
            | Self::Unprocessable(d)
            | Self::Unavailable(d) => d.clone(),
        };
        Problem {
            type_uri: format!("{TYPE_BASE}{slug}"),
            title: title.to_owned(),
            status: self.status().as_u16(),
            detail,
            invalid_params: match self {
                Self::Validation(params) | Self::BrokenRule(params) => params.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(source) => tracing::error!(error = %source, "request failed"),
            other if other.status().is_server_error() => tracing::warn!(error = %other, "request failed"),
            other => tracing::info!(error = %other, "request rejected"),
        }
        let problem = self.to_problem();
        let body = serde_json::to_vec(&problem).expect("a problem document always serialises");
        let mut response = (self.status(), body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validation_problem_names_every_field() {
        let problem = ApiError::Validation(vec![
            InvalidParam::new("items[0].quantity", "must be between 1 and 1000"),
            InvalidParam::new("customer_id", "must not be empty"),
        ])
        .to_problem();
        assert_eq!(
            serde_json::to_value(problem).unwrap(),
            json!({
                "type": "https://errors.shop.example/validation",
                "title": "Your request is not valid",
                "status": 400,
                "detail": "items[0].quantity: must be between 1 and 1000; customer_id: must not be empty",
                "invalid-params": [
                    {"name": "items[0].quantity", "reason": "must be between 1 and 1000"},
                    {"name": "customer_id", "reason": "must not be empty"}
                ]
            })
        );
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let problem = ApiError::internal("dynamodb: table orders-prod-xyz not found").to_problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("orders-prod"), "{}", problem.detail);
    }

    #[test]
    fn response_is_problem_json_with_matching_status() {
        let response = ApiError::NotFound("order x".into()).into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
    }
}
