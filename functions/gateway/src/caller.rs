//! Who is calling: the customer API Gateway's JWT authorizer verified.
//!
//! API Gateway checks the token (signature against the issuer's JWKS, `iss`, `aud` or
//! `client_id`, `exp`, `nbf`, `iat`) before the gateway runs and refuses a bad one with 401; the
//! Lambda gets the token's claims in `requestContext.authorizer.jwt.claims` (payload format 2.0),
//! every value a string (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html>).
//! `lambda_http` puts that request context into the request's extensions; the local host puts
//! the same there (see [`jwt_request_context`]). The gateway never reads the `Authorization`
//! header itself: a route that API Gateway did not authorize has no claims, and is refused here.
//!
//! The customer is the `sub` claim. An admin is a caller whose groups claim
//! (`GROUPS_CLAIM`, default `cognito:groups`) holds the admin group (`ADMIN_GROUP`, default
//! `admin`). API Gateway writes an array claim as `[a b]` (its members between brackets, space
//! separated); a JSON array or a single value is read too.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lambda_http::RequestExt;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use shared::config::Lookup;
use shared::http::problem::{PROBLEM_CONTENT_TYPE, Problem};

use crate::upstream::Upstreams;

pub const DEFAULT_GROUPS_CLAIM: &str = "cognito:groups";
pub const DEFAULT_ADMIN_GROUP: &str = "admin";

/// Which claim carries the caller's groups, and which group is the shop's admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub groups_claim: String,
    pub admin_group: String,
}

impl Default for Access {
    fn default() -> Self {
        Self { groups_claim: DEFAULT_GROUPS_CLAIM.into(), admin_group: DEFAULT_ADMIN_GROUP.into() }
    }
}

impl Access {
    /// From `GROUPS_CLAIM` and `ADMIN_GROUP`; blank or unset keeps the default.
    pub fn from_lookup(env: Lookup<'_>) -> Self {
        let value = |name: &str, default: &str| {
            env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
        };
        Self {
            groups_claim: value("GROUPS_CLAIM", DEFAULT_GROUPS_CLAIM),
            admin_group: value("ADMIN_GROUP", DEFAULT_ADMIN_GROUP),
        }
    }
}

/// The authenticated caller of a route behind the JWT authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`: the customer every order of this caller belongs to.
    pub customer_id: String,
    pub admin: bool,
}

impl Caller {
    /// The caller the claims describe; `None` without a usable `sub`.
    pub fn from_claims(claims: &HashMap<String, String>, access: &Access) -> Option<Self> {
        let customer_id = claims.get("sub").filter(|sub| !sub.trim().is_empty())?.clone();
        let admin =
            claims.get(&access.groups_claim).is_some_and(|groups| array_claim(groups).contains(&access.admin_group));
        Some(Self { customer_id, admin })
    }

    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), Refused> {
        if self.admin { Ok(()) } else { Err(Refused::forbidden()) }
    }
}

/// A caller refused: 401 (no verified caller) or 403 (a caller without the admin group), as a
/// problem document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    pub detail: &'static str,
}

impl Refused {
    pub fn unauthorized() -> Self {
        Self { status: StatusCode::UNAUTHORIZED, detail: "this route needs a valid bearer token" }
    }

    pub fn forbidden() -> Self {
        Self { status: StatusCode::FORBIDDEN, detail: "this operation is for the shop's admins" }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (slug, title) = match self.status {
            StatusCode::UNAUTHORIZED => ("unauthorized", "Not authenticated"),
            _ => ("forbidden", "Not allowed"),
        };
        let problem = Problem {
            type_uri: format!("https://errors.shop.example/{slug}"),
            title: title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.to_owned(),
            invalid_params: Vec::new(),
        };
        let body = serde_json::to_vec(&problem).expect("a problem document always serialises");
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The members of an array claim as API Gateway passes it: `[a b]`, a JSON array, or one value.
pub fn array_claim(raw: &str) -> Vec<String> {
    let raw = raw.trim();
    if let Ok(values) = serde_json::from_str::<Vec<String>>(raw) {
        return values;
    }
    let inner = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(raw);
    inner.split_whitespace().map(str::to_owned).collect()
}

fn claims(parts: &Parts) -> Option<&HashMap<String, String>> {
    match parts.extensions.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => Some(&context.authorizer.as_ref()?.jwt.as_ref()?.claims),
        _ => None,
    }
}

impl FromRequestParts<Arc<Upstreams>> for Caller {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, upstreams: &Arc<Upstreams>) -> Result<Self, Self::Rejection> {
        claims(parts).and_then(|claims| Caller::from_claims(claims, &upstreams.access)).ok_or_else(|| {
            // API Gateway refuses a request without a valid token before the gateway runs: only
            // a route deployed without the authorizer gets here.
            tracing::warn!("a protected route was called without authorizer claims");
            Refused::unauthorized()
        })
    }
}

/// The request context API Gateway gives the Lambda for a request its JWT authorizer accepted
/// (HTTP API, payload format 2.0): `authorizer.jwt.claims` holds every claim of the token as a
/// string (an array as `[a b]`, a number as its digits), `authorizer.jwt.scopes` the token's
/// scopes. The local host puts it into the request it hands to the gateway; tests use it too.
pub fn jwt_request_context(
    method: &str,
    path: &str,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> RequestContext {
    let as_text = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|item| match item {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect();
            format!("[{}]", items.join(" "))
        }
        other => other.to_string(),
    };
    let text: serde_json::Map<String, serde_json::Value> =
        claims.iter().map(|(name, value)| (name.clone(), serde_json::Value::String(as_text(value)))).collect();
    let scopes = claims.get("scope").and_then(|s| s.as_str()).map(|s| s.split_whitespace().collect::<Vec<_>>());
    let context = serde_json::json!({
        "routeKey": "ANY /api/{proxy+}",
        "accountId": "123456789012",
        "stage": "$default",
        "requestId": uuid::Uuid::new_v4().to_string(),
        "apiId": "local",
        "domainName": "localhost",
        "timeEpoch": 0,
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": ""},
        "authorizer": {"jwt": {"claims": text, "scopes": scopes}},
    });
    let context: ApiGatewayV2httpRequestContext =
        serde_json::from_value(context).expect("the payload 2.0 request context deserialises");
    RequestContext::ApiGatewayV2(context)
}

/// `request` as API Gateway's JWT authorizer passes it on for a token with these claims.
pub fn with_claims<B>(request: http::Request<B>, claims: serde_json::Value) -> http::Request<B> {
    let claims = claims.as_object().cloned().unwrap_or_default();
    let context = jwt_request_context(request.method().as_str(), request.uri().path(), &claims);
    request.with_request_context(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_customer_is_the_sub_and_an_admin_is_in_the_admin_group() {
        let access = Access::default();
        let customer = Caller::from_claims(&claims(&[("sub", "c1")]), &access).unwrap();
        assert_eq!(customer, Caller { customer_id: "c1".into(), admin: false });
        for groups in ["[admin]", "[staff admin]", r#"["staff","admin"]"#, "admin"] {
            let caller = Caller::from_claims(&claims(&[("sub", "a1"), ("cognito:groups", groups)]), &access).unwrap();
            assert!(caller.admin, "{groups}");
        }
        for groups in ["[administrators]", "[staff]", "", "[]"] {
            let caller = Caller::from_claims(&claims(&[("sub", "a1"), ("cognito:groups", groups)]), &access).unwrap();
            assert!(!caller.admin, "{groups}");
        }
        assert_eq!(Caller::from_claims(&claims(&[("cognito:groups", "[admin]")]), &access), None);
        assert_eq!(Caller::from_claims(&claims(&[("sub", " ")]), &access), None);
    }

    #[test]
    fn the_groups_claim_and_the_admin_group_are_configurable() {
        let env = |name: &str| match name {
            "GROUPS_CLAIM" => Some("groups".to_owned()),
            "ADMIN_GROUP" => Some("shop-admins".to_owned()),
            _ => None,
        };
        let access = Access::from_lookup(&env);
        let caller = Caller::from_claims(&claims(&[("sub", "a"), ("groups", "[shop-admins]")]), &access).unwrap();
        assert!(caller.admin);
        let caller = Caller::from_claims(&claims(&[("sub", "a"), ("cognito:groups", "[admin]")]), &access).unwrap();
        assert!(!caller.admin, "only the configured claim counts");
        assert_eq!(Access::from_lookup(&|_: &str| Some(" ".to_owned())), Access::default());
    }

    #[test]
    fn claims_reach_the_request_context_as_api_gateway_writes_them() {
        let claims = serde_json::json!({"sub": "c1", "cognito:groups": ["admin", "staff"], "exp": 1700000000,
            "scope": "openid email"});
        let RequestContext::ApiGatewayV2(context) =
            jwt_request_context("GET", "/api/orders", claims.as_object().unwrap())
        else {
            panic!("not an HTTP API context")
        };
        let jwt = context.authorizer.unwrap().jwt.unwrap();
        assert_eq!(jwt.claims["sub"], "c1");
        assert_eq!(jwt.claims["cognito:groups"], "[admin staff]");
        assert_eq!(jwt.claims["exp"], "1700000000");
        assert_eq!(jwt.scopes, Some(vec!["openid".to_owned(), "email".to_owned()]));
    }
}
