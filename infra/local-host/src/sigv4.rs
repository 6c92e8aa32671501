//! The `AWS_IAM` side of the local API Gateway: a route the template marks `AWS_IAM` runs only
//! for a request signed with Signature Version 4 by the local credentials. The signature is
//! recomputed with `aws-sigv4` over the headers the request says it signed, at the time it says
//! it signed them, and compared.
//!
//! Refusals are API Gateway's: 403 with `{"message": ...}` and `x-amzn-errortype`, for an
//! unsigned request (`MissingAuthenticationTokenException`), an unknown access key
//! (`UnrecognizedClientException`), a signature that does not match or a date more than five
//! minutes away (`InvalidSignatureException`)
//! (<https://repost.aws/knowledge-center/api-gateway-troubleshoot-403-forbidden>).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use http::{HeaderMap, HeaderValue, StatusCode};

/// How far a request's `x-amz-date` may be from now.
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// Why a signed call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    pub error_type: &'static str,
    pub message: String,
}

impl Forbidden {
    fn new(error_type: &'static str, message: impl Into<String>) -> Self {
        Self { error_type, message: message.into() }
    }

    fn mismatch() -> Self {
        Self::new(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
             Access Key and signing method. Consult the service documentation for details.",
        )
    }

    pub fn response(&self) -> axum::response::Response {
        use axum::response::IntoResponse;
        let body = serde_json::json!({ "message": self.message }).to_string();
        let mut response = (StatusCode::FORBIDDEN, body).into_response();
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.error_type));
        response
    }
}

/// The credentials signed calls must be signed with, and the region they are for.
#[derive(Clone)]
pub struct IamVerifier {
    credentials: Credentials,
    region: String,
}

impl std::fmt::Debug for IamVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamVerifier").field("access_key", &self.credentials.access_key_id()).finish()
    }
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=.., SignedHeaders=.., Signature=..`.
struct Authorization<'a> {
    access_key: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=')?;
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => return None,
        }
    }
    let scope: Vec<&str> = credential?.split('/').collect();
    let [access_key, _date, region, service, terminator] = scope[..] else { return None };
    if terminator != "aws4_request" {
        return None;
    }
    Some(Authorization {
        access_key,
        region,
        service,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    })
}

impl IamVerifier {
    pub fn new(credentials: Credentials, region: impl Into<String>) -> Self {
        Self { credentials, region: region.into() }
    }

    /// Signs `request` with the local credentials, as the gateway signs its calls in AWS (for
    /// tests and tools that call an internal API directly).
    pub fn sign(&self, request: &mut reqwest::Request) {
        let identity: aws_smithy_runtime_api::client::identity::Identity = self.credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("execute-api")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("complete signing parameters")
            .into();
        let body = request.body().and_then(|b| b.as_bytes()).unwrap_or_default().to_vec();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let url = request.url().to_string();
        let signable = SignableRequest::new(
            request.method().as_str(),
            &url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&body),
        )
        .expect("a signable request");
        let (instructions, _) = sign(signable, &params).expect("the local credentials sign").into_parts();
        let (headers, _) = instructions.into_parts();
        for header in headers {
            let name = http::HeaderName::from_bytes(header.name().as_bytes()).expect("a header name");
            let value = HeaderValue::from_str(header.value()).expect("a header value");
            request.headers_mut().insert(name, value);
        }
    }

    /// `Ok` when the request is signed by the local credentials for `execute-api`, now.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), Forbidden> {
        let authorization = self.caller(headers)?;
        let signed_at = signed_at(headers, now)?;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let host = header("host").ok_or_else(Forbidden::mismatch)?;
        if header("x-amz-security-token") != self.credentials.session_token() {
            return Err(Forbidden::new(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
        // Exactly the headers the request says it signed; the signer adds host, date and token.
        let mut signed: Vec<(&str, &str)> = Vec::new();
        for &name in &authorization.signed_headers {
            if matches!(name, "host" | "x-amz-date" | "x-amz-security-token") {
                continue;
            }
            for value in headers.get_all(name) {
                signed.push((name, value.to_str().map_err(|_| Forbidden::mismatch())?));
            }
        }
        let url = format!("http://{host}{path_and_query}");
        match self.expected(method, &url, signed, body, signed_at) {
            Some((signature, signed_headers))
                if signature == authorization.signature && signed_headers == authorization.signed_headers.join(";") =>
            {
                Ok(())
            }
            _ => Err(Forbidden::mismatch()),
        }
    }

    /// The request's `Authorization`, when it names the local credentials for `execute-api` in
    /// this region.
    fn caller<'a>(&self, headers: &'a HeaderMap) -> Result<Authorization<'a>, Forbidden> {
        let authorization = headers.get(http::header::AUTHORIZATION).ok_or_else(missing_token)?;
        let authorization = authorization.to_str().ok().and_then(parse_authorization).ok_or_else(|| {
            Forbidden::new(
                "IncompleteSignatureException",
                "Authorization header requires Credential, SignedHeaders and Signature.",
            )
        })?;
        if authorization.access_key != self.credentials.access_key_id() {
            return Err(Forbidden::new(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
        if authorization.service != "execute-api" || authorization.region != self.region {
            return Err(Forbidden::mismatch());
        }
        Ok(authorization)
    }

    /// The signature and signed headers the local credentials give this request at `signed_at`
    /// (`None` when the request cannot be signed: no signature can match it).
    fn expected(
        &self,
        method: &str,
        url: &str,
        signed: Vec<(&str, &str)>,
        body: &[u8],
        signed_at: SystemTime,
    ) -> Option<(String, String)> {
        let mut settings = SigningSettings::default();
        settings.excluded_headers = Some(Vec::new());
        let identity: aws_smithy_runtime_api::client::identity::Identity = self.credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("execute-api")
            .time(signed_at)
            .settings(settings)
            .build()
            .ok()?
            .into();
        let request = SignableRequest::new(method, url, signed.into_iter(), SignableBody::Bytes(body)).ok()?;
        let (instructions, _) = sign(request, &params).ok()?.into_parts();
        let (expected, _) = instructions.into_parts();
        let authorization = expected.iter().find(|h| h.name().eq_ignore_ascii_case("authorization"))?;
        parse_authorization(authorization.value()).map(|a| (a.signature.to_owned(), a.signed_headers.join(";")))
    }
}

fn missing_token() -> Forbidden {
    Forbidden::new("MissingAuthenticationTokenException", "Missing Authentication Token")
}

/// When the request was signed (`X-Amz-Date`), if within five minutes of `now`.
fn signed_at(headers: &HeaderMap, now: SystemTime) -> Result<SystemTime, Forbidden> {
    let date = headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or_else(missing_token)?;
    let signed_at =
        chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ").map_err(|_| Forbidden::mismatch())?.and_utc();
    let signed_at = SystemTime::from(signed_at);
    let skew = now.duration_since(signed_at).or_else(|e| Ok::<_, ()>(e.duration())).unwrap_or_default();
    if skew > MAX_SKEW {
        return Err(Forbidden::new(
            "InvalidSignatureException",
            format!("Signature expired: {date} is now earlier or later than 5 minutes from now."),
        ));
    }
    Ok(signed_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(secret: &str) -> IamVerifier {
        IamVerifier::new(Credentials::new("AKIDLOCAL", secret, None, None, "test"), "us-east-1")
    }

    /// What the server sees of a request the client signed: its headers with `host`.
    fn signed(signer: &IamVerifier, body: &str) -> (HeaderMap, Vec<u8>) {
        let mut request = reqwest::Client::new()
            .post("http://127.0.0.1:3000/orders?limit=2")
            .header("content-type", "application/json")
            .header("x-correlation-id", "c-1")
            .body(body.to_owned())
            .build()
            .unwrap();
        signer.sign(&mut request);
        let mut headers = request.headers().clone();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
        (headers, body.as_bytes().to_vec())
    }

    #[test]
    fn a_signature_is_recomputed_and_any_change_is_refused() {
        let local = verifier("local-secret");
        let now = SystemTime::now();
        let (headers, body) = signed(&local, r#"{"a":1}"#);
        assert_eq!(local.verify("POST", "/orders?limit=2", &headers, &body, now), Ok(()));
        let refused = |method: &str, path: &str, headers: &HeaderMap, body: &[u8], now| {
            local.verify(method, path, headers, body, now).unwrap_err().error_type
        };
        assert_eq!(refused("POST", "/orders?limit=3", &headers, &body, now), "InvalidSignatureException");
        assert_eq!(refused("PUT", "/orders?limit=2", &headers, &body, now), "InvalidSignatureException");
        assert_eq!(refused("POST", "/orders?limit=2", &headers, br#"{"a":2}"#, now), "InvalidSignatureException");
        let mut changed = headers.clone();
        changed.insert("x-correlation-id", HeaderValue::from_static("c-2"));
        assert_eq!(refused("POST", "/orders?limit=2", &changed, &body, now), "InvalidSignatureException");
        let later = now + Duration::from_secs(6 * 60);
        assert_eq!(refused("POST", "/orders?limit=2", &headers, &body, later), "InvalidSignatureException");
        let (other, body) = signed(&verifier("another-secret"), r#"{"a":1}"#);
        assert_eq!(refused("POST", "/orders?limit=2", &other, &body, now), "InvalidSignatureException");
        let mut unsigned = headers.clone();
        unsigned.remove(http::header::AUTHORIZATION);
        assert_eq!(refused("POST", "/orders?limit=2", &unsigned, &body, now), "MissingAuthenticationTokenException");
        let stranger = IamVerifier::new(Credentials::new("AKIDOTHER", "local-secret", None, None, "t"), "us-east-1");
        let (theirs, body) = signed(&stranger, r#"{"a":1}"#);
        assert_eq!(refused("POST", "/orders?limit=2", &theirs, &body, now), "UnrecognizedClientException");
    }
}
