//! `ServiceClient`: HTTP calls to another service (or a third party) through a [`Policy`],
//! configured from environment variables with sane defaults.
//!
//! For a downstream named `PAYMENTS` (any prefix), the variables are:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `PAYMENTS_BASE_URL` | required | e.g. `https://abc.execute-api.eu-west-1.amazonaws.com` |
//! | `PAYMENTS_ATTEMPT_TIMEOUT_MS` | 2000 | one attempt |
//! | `PAYMENTS_TIMEOUT_MS` | 6000 | everything, retries included |
//! | `PAYMENTS_RETRY_MAX_ATTEMPTS` | 3 | attempts in all (1: no retry) |
//! | `PAYMENTS_RETRY_BASE_DELAY_MS` | 50 | first backoff ceiling |
//! | `PAYMENTS_RETRY_MAX_DELAY_MS` | 1000 | backoff cap |
//! | `PAYMENTS_BREAKER_WINDOW` | 20 | calls in the count window |
//! | `PAYMENTS_BREAKER_MINIMUM_CALLS` | 10 | calls before rates count |
//! | `PAYMENTS_BREAKER_FAILURE_RATE` | 50 | % of failures that opens |
//! | `PAYMENTS_BREAKER_SLOW_CALL_MS` | 2000 | a slower call is slow |
//! | `PAYMENTS_BREAKER_SLOW_CALL_RATE` | 100 | % of slow calls that opens |
//! | `PAYMENTS_BREAKER_OPEN_MS` | 30000 | wait in OPEN |
//! | `PAYMENTS_BREAKER_HALF_OPEN_CALLS` | 3 | trial calls in HALF_OPEN |
//! | `PAYMENTS_BULKHEAD_MAX_CONCURRENT` | 32 | calls in flight |
//! | `PAYMENTS_BULKHEAD_MAX_WAIT_MS` | 0 | wait for a slot |
//!
//! Responses 5xx, 408 and 429 (with `Retry-After` honoured) and transport errors are transient:
//! they count against the breaker and are retried when the call is idempotent (GET, PUT, DELETE,
//! or a POST with an idempotency key). Other 4xx are the caller's problem: returned at once,
//! never counted.
//!
//! Every client of a process sends through [`http_client`]: one `reqwest::Client`, so one rustls
//! configuration (the root certificates are read and parsed once, not once per downstream) and
//! one connection pool, built on the first request rather than at cold start. A client can send
//! through a service in the same process instead ([`Transport::in_process`], an axum `Router` in
//! tests and benchmarks): the same request, policy and signing, without a socket.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceExt};

use super::{
    BreakerConfig, Bulkhead, CallError, CircuitBreaker, Idempotency, Policy, RetryConfig, SlidingWindow, Verdict,
};
use crate::config::ConfigError as EnvError;
use shared_core::correlation::{CORRELATION_HEADER, CorrelationId};

static HTTP_CLIENT: LazyLock<reqwest::Client> = LazyLock::new(reqwest::Client::new);

/// The process's one HTTP client, shared by every downstream (the services behind the gateway,
/// the legacy backend, the payment provider). Building a `reqwest::Client` loads and parses the
/// platform's root certificates into a rustls configuration, a few milliseconds each time: done
/// once, on first use, so a cold start that sends nothing pays nothing. Per-downstream timeouts,
/// retries and breakers live in each client's [`Policy`], not here.
pub fn http_client() -> &'static reqwest::Client {
    &HTTP_CLIENT
}

/// A service in this process that answers a [`ServiceClient`]'s requests.
pub type InProcessService = BoxCloneSyncService<http::Request<Full<Bytes>>, http::Response<Bytes>, BoxError>;

/// What a [`ServiceClient`] sends its requests through.
#[derive(Clone, Default)]
pub enum Transport {
    /// The network, through the process's one HTTP client ([`http_client`]).
    #[default]
    Network,
    /// A service in this process (see [`Transport::in_process`]).
    InProcess(InProcessService),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Network => "Network",
            Self::InProcess(_) => "InProcess",
        })
    }
}

impl Transport {
    /// Requests answered by `service` in this process (an axum `Router`, say): the request the
    /// network would carry (URL, headers, signature, body), without a socket or HTTP/1 framing.
    pub fn in_process<S, B>(service: S) -> Self
    where
        S: tower::Service<http::Request<Full<Bytes>>, Response = http::Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let service = service.map_err(Into::into).and_then(|response: http::Response<B>| async move {
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            Ok::<_, BoxError>(http::Response::from_parts(parts, body))
        });
        Self::InProcess(BoxCloneSyncService::new(service))
    }

    /// Sends `request` and reads the whole answer.
    async fn exchange(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let transport = |e: &dyn std::fmt::Display| HttpError::Transport(e.to_string());
        match self {
            Self::Network => {
                let request = reqwest::Request::try_from(request).map_err(|e| transport(&e))?;
                let response = http_client().execute(request).await.map_err(|e| transport(&e))?;
                let mut answer = http::Response::new(Bytes::new());
                *answer.status_mut() = response.status();
                *answer.headers_mut() = response.headers().clone();
                *answer.body_mut() = response.bytes().await.map_err(|e| transport(&e))?;
                Ok(answer)
            }
            Self::InProcess(service) => {
                service.clone().oneshot(request.map(Full::new)).await.map_err(|e| transport(&e))
            }
        }
    }
}

/// Everything a [`ServiceClient`] is built from.
#[derive(Debug, Clone)]
pub struct ServiceClientConfig {
    pub name: String,
    pub base_url: String,
    pub attempt_timeout: Duration,
    pub overall_timeout: Duration,
    pub retry: RetryConfig,
    pub breaker: BreakerConfig,
    pub bulkhead_max_concurrent: usize,
    pub bulkhead_max_wait: Duration,
}

impl ServiceClientConfig {
    /// Reads the variables `<PREFIX>_*` through `lookup` (the environment in production, a map
    /// in tests). Every bad value is an error naming its variable.
    pub fn from_lookup(prefix: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let var = |suffix: &str| format!("{prefix}_{suffix}");
        let number = |suffix: &str, default: u64| -> Result<u64, EnvError> {
            let name = var(suffix);
            match lookup(&name) {
                Some(raw) if !raw.trim().is_empty() => {
                    u64::from_str(raw.trim()).map_err(|e| EnvError::Invalid { name, value: raw, reason: e.to_string() })
                }
                _ => Ok(default),
            }
        };
        let millis = |suffix: &str, default: u64| number(suffix, default).map(Duration::from_millis);
        let base_url = lookup(&var("BASE_URL"))
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| EnvError::Missing { name: var("BASE_URL") })?;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(EnvError::Invalid {
                name: var("BASE_URL"),
                value: base_url,
                reason: "must be an http:// or https:// URL".into(),
            });
        }
        let config = Self {
            name: prefix.to_ascii_lowercase(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            attempt_timeout: millis("ATTEMPT_TIMEOUT_MS", 2000)?,
            overall_timeout: millis("TIMEOUT_MS", 6000)?,
            retry: RetryConfig {
                max_attempts: number("RETRY_MAX_ATTEMPTS", 3)? as u32,
                base_delay: millis("RETRY_BASE_DELAY_MS", 50)?,
                max_delay: millis("RETRY_MAX_DELAY_MS", 1000)?,
                ..RetryConfig::default()
            },
            breaker: BreakerConfig {
                window: SlidingWindow::Count(number("BREAKER_WINDOW", 20)? as u32),
                minimum_calls: number("BREAKER_MINIMUM_CALLS", 10)? as u32,
                failure_rate_threshold: number("BREAKER_FAILURE_RATE", 50)? as f64,
                slow_call_duration: Some(millis("BREAKER_SLOW_CALL_MS", 2000)?),
                slow_call_rate_threshold: number("BREAKER_SLOW_CALL_RATE", 100)? as f64,
                wait_in_open: millis("BREAKER_OPEN_MS", 30_000)?,
                permitted_in_half_open: number("BREAKER_HALF_OPEN_CALLS", 3)? as u32,
                shared_state_refresh: millis("BREAKER_SHARED_REFRESH_MS", 5000)?,
            },
            bulkhead_max_concurrent: number("BULKHEAD_MAX_CONCURRENT", 32)? as usize,
            bulkhead_max_wait: millis("BULKHEAD_MAX_WAIT_MS", 0)?,
        };
        Ok(config)
    }

    pub fn from_env(prefix: &str) -> Result<Self, EnvError> {
        Self::from_lookup(prefix, |name| std::env::var(name).ok())
    }

    /// The policy these settings describe: overall and attempt timeouts, retry, a breaker and a
    /// bulkhead named after the downstream. For clients that speak their own protocol over
    /// HTTP (a payment provider) and so cannot use [`ServiceClient`] itself.
    pub fn policy(&self) -> Result<Policy, super::InvalidSetting> {
        self.build_policy(None)
    }

    /// [`policy`](Self::policy) with a breaker that shares its OPEN decisions with the other
    /// instances of the function through `store` (read at most once per
    /// `{PREFIX}_BREAKER_SHARED_REFRESH_MS`, default 5 s, never once per call; written when the
    /// circuit opens or closes).
    pub fn policy_sharing_breaker(
        &self,
        store: std::sync::Arc<dyn super::store::BreakerStateStore>,
    ) -> Result<Policy, super::InvalidSetting> {
        self.build_policy(Some(store))
    }

    fn build_policy(
        &self,
        store: Option<std::sync::Arc<dyn super::store::BreakerStateStore>>,
    ) -> Result<Policy, super::InvalidSetting> {
        let mut breaker = CircuitBreaker::new(self.name.clone(), self.breaker.clone())?;
        if let Some(store) = store {
            breaker = breaker.with_shared_state(store);
        }
        Policy::builder(self.name.clone())
            .overall_timeout(self.overall_timeout)
            .attempt_timeout(self.attempt_timeout)
            .retry(self.retry.clone())
            .breaker(breaker)
            .bulkhead(Bulkhead::new(self.bulkhead_max_concurrent, self.bulkhead_max_wait)?)
            .build()
    }
}

/// A failed HTTP call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("HTTP {status}")]
    Status { status: StatusCode, headers: HeaderMap, body: Bytes },
    #[error("transport: {0}")]
    Transport(String),
}

impl HttpError {
    pub fn verdict(&self) -> Verdict {
        match self {
            HttpError::Transport(_) => Verdict::TRANSIENT,
            HttpError::Status { status, headers, .. } => {
                let transient = status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT;
                if !transient {
                    return Verdict::FINAL;
                }
                let retry_after = headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Verdict { failure: true, retryable: true, retry_after }
            }
        }
    }
}

/// A successful (2xx or 3xx) answer.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpReply {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Signs requests with SigV4, as API Gateway APIs with `AWS_IAM` authorization require.
#[derive(Debug, Clone)]
pub struct SigV4 {
    credentials: aws_credential_types::provider::SharedCredentialsProvider,
    region: String,
    service: String,
}

impl SigV4 {
    /// For API Gateway (`execute-api`) with the credentials and region of `config` (the
    /// function's role in Lambda).
    pub fn execute_api(config: &aws_config::SdkConfig) -> Option<Self> {
        Some(Self {
            credentials: config.credentials_provider()?,
            region: config.region()?.to_string(),
            service: "execute-api".into(),
        })
    }

    async fn sign(&self, request: &mut http::Request<Bytes>) -> Result<(), HttpError> {
        use aws_credential_types::provider::ProvideCredentials;
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| HttpError::Transport(format!("no credentials to sign with: {e}")))?;
        let identity: aws_smithy_runtime_api::client::identity::Identity = credentials.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| HttpError::Transport(format!("signing parameters: {e}")))?
            .into();
        let url = request.uri().to_string();
        let headers: Vec<(&str, &str)> =
            request.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
        let signable = SignableRequest::new(
            request.method().as_str(),
            &url,
            headers.into_iter(),
            SignableBody::Bytes(request.body()),
        )
        .map_err(|e| HttpError::Transport(format!("signing: {e}")))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| HttpError::Transport(format!("signing: {e}")))?.into_parts();
        let (headers, _) = instructions.into_parts();
        for header in headers {
            let name = http::HeaderName::from_bytes(header.name().as_bytes())
                .map_err(|e| HttpError::Transport(format!("signing: {e}")))?;
            let value = http::HeaderValue::from_str(header.value())
                .map_err(|e| HttpError::Transport(format!("signing: {e}")))?;
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

/// `base` and `path` as the URI reqwest sends, so that a signature covers exactly that: the URL
/// parser's spelling (scheme and host normalised, dot segments removed, some characters
/// percent-encoded). A canonical base and a path of characters the parser keeps as they are
/// (every path the services are called with) need no parse: the parse was 6 % of the
/// instructions of a gateway order view (three calls).
fn url_as_sent(base: &str, base_is_canonical: bool, path: &str) -> Result<http::Uri, String> {
    let joined = format!("{base}{path}");
    if base_is_canonical && kept_as_is(path) {
        return http::Uri::try_from(joined).map_err(|e| e.to_string());
    }
    let url = reqwest::Url::parse(&joined).map_err(|e| e.to_string())?;
    http::Uri::try_from(url.as_str()).map_err(|e| e.to_string())
}

/// A path and query the URL parser leaves exactly as written after a canonical base: it starts
/// with `/`, has only unreserved characters and `/ ? = & % + , : @ ! $ * ;`, and no segment
/// that could be a dot segment (`.`, `..` or `%2e` spelt any way).
fn kept_as_is(path: &str) -> bool {
    let (route, _query) = path.split_once('?').unwrap_or((path, ""));
    path.starts_with('/')
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/?=&%+,:@!$*;".contains(&b))
        && !route.contains("/.")
        && !route.to_ascii_lowercase().contains("%2e")
}

#[derive(Debug, Clone)]
pub struct ServiceClient {
    base_url: String,
    /// `base_url` is spelled as the URL parser spells it (see [`url_as_sent`]).
    base_is_canonical: bool,
    policy: Policy,
    signer: Option<SigV4>,
    transport: Transport,
}

impl ServiceClient {
    pub fn new(config: &ServiceClientConfig) -> Result<Self, super::InvalidSetting> {
        Ok(Self::with_policy(config.base_url.clone(), config.policy()?))
    }

    pub fn with_policy(base_url: impl Into<String>, policy: Policy) -> Self {
        let base_url = base_url.into();
        let base_is_canonical = reqwest::Url::parse(&base_url).is_ok_and(|url| {
            url.as_str() == base_url || (url.path() == "/" && url.as_str().strip_suffix('/') == Some(base_url.as_str()))
        });
        Self { base_url, base_is_canonical, policy, signer: None, transport: Transport::Network }
    }

    /// Signs every request with `signer` (SigV4), e.g. for an internal API with IAM auth.
    pub fn signed(mut self, signer: SigV4) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Sends through `transport` instead of the network.
    pub fn through(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub async fn get(&self, path: &str, correlation_id: &CorrelationId) -> Result<HttpReply, CallError<HttpError>> {
        self.send(Method::GET, path, None, None, correlation_id).await
    }

    /// Sends a request. `body` is sent as JSON. A POST is retried only with an idempotency key,
    /// which is sent as `Idempotency-Key`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        idempotency_key: Option<&str>,
        correlation_id: &CorrelationId,
    ) -> Result<HttpReply, CallError<HttpError>> {
        let idempotency = if method == Method::POST || method == Method::PATCH {
            if idempotency_key.is_some() { Idempotency::Idempotent } else { Idempotency::NotIdempotent }
        } else {
            Idempotency::Idempotent
        };
        let bad = |what: String| CallError::Inner(HttpError::Transport(what));
        let uri = url_as_sent(&self.base_url, self.base_is_canonical, path).map_err(|e| bad(format!("URL: {e}")))?;
        let mut headers = HeaderMap::new();
        let mut header = |name: &'static str, value: &str| {
            let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
            headers.insert(name, value);
            Ok::<_, String>(())
        };
        header(CORRELATION_HEADER, correlation_id.as_str()).map_err(bad)?;
        // The downstream continues this invocation's trace (W3C Trace Context).
        if let Some(traceparent) = shared_core::trace::current_traceparent() {
            header(shared_core::trace::TRACEPARENT_HEADER, &traceparent).map_err(bad)?;
        }
        if let Some(key) = idempotency_key {
            header("idempotency-key", key).map_err(bad)?;
        }
        let body = match body {
            Some(body) => {
                header("content-type", "application/json").map_err(bad)?;
                Bytes::from(serde_json::to_vec(body).map_err(|e| bad(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        self.policy
            .call(idempotency, HttpError::verdict, || {
                let mut request = http::Request::new(body.clone());
                *request.method_mut() = method.clone();
                *request.uri_mut() = uri.clone();
                *request.headers_mut() = headers.clone();
                async move {
                    if let Some(signer) = &self.signer {
                        signer.sign(&mut request).await?;
                    }
                    let (parts, body) = self.transport.exchange(request).await?.into_parts();
                    let (status, headers) = (parts.status, parts.headers);
                    if status.is_client_error() || status.is_server_error() {
                        Err(HttpError::Status { status, headers, body })
                    } else {
                        Ok(HttpReply { status, headers, body })
                    }
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What the URL parser makes of `base` and `path`, as an `http::Uri` (what reqwest sends).
    fn parsed(base: &str, path: &str) -> Option<String> {
        let url = reqwest::Url::parse(&format!("{base}{path}")).ok()?;
        http::Uri::try_from(url.as_str()).ok().map(|uri| uri.to_string())
    }

    const BASES: [&str; 6] = [
        "https://orders.internal",
        "http://127.0.0.1:8080",
        "https://abc.execute-api.eu-west-1.amazonaws.com/prod",
        "HTTPS://Orders.Internal",
        "https://orders.internal:443",
        "https://orders.internal/a/../b",
    ];

    fn client(base: &str) -> ServiceClient {
        ServiceClient::with_policy(base, Policy::builder("test").build().unwrap())
    }

    proptest! {
        /// Whatever the path (any of the characters that matter to the parser, dot segments,
        /// encoded dots), the URI sent is the one the URL parser makes, fast path or not.
        #[test]
        fn the_uri_sent_is_the_one_the_url_parser_makes(
            base in prop::sample::select(&BASES[..]),
            path in "/[a-zA-Z0-9._~%/?=&+,:@!$*;'\"<>{}# \\\\^|`\\[\\]-]{0,24}|/(\\.|%2[eE]|[a-z/?])*",
        ) {
            let client = client(base);
            let sent = url_as_sent(&client.base_url, client.base_is_canonical, &path).map(|uri| uri.to_string());
            match parsed(base, &path) {
                Some(expected) => prop_assert_eq!(sent, Ok(expected)),
                None => prop_assert!(sent.is_err()),
            }
        }
    }

    #[test]
    fn the_services_paths_take_the_fast_path_and_odd_bases_do_not() {
        let id = "0193a3c2-5f00-7000-8000-00000000c0de";
        for path in
            [format!("/orders/{id}?customer_id=cust-42"), format!("/payments/order/{id}"), "/inventory/SKU%2F1".into()]
        {
            assert!(kept_as_is(&path), "{path}");
        }
        for path in ["/orders/../payments", "/a/%2E%2e/b", "/a b", "/a#b", "orders"] {
            assert!(!kept_as_is(path), "{path}");
        }
        assert!(client("https://orders.internal").base_is_canonical);
        assert!(client("https://abc.execute-api.eu-west-1.amazonaws.com/prod").base_is_canonical);
        assert!(!client("HTTPS://Orders.Internal").base_is_canonical);
        assert!(!client("https://orders.internal:443").base_is_canonical);
    }
}
