//! ServiceClient against a wiremock downstream: what is retried, what opens the breaker, what
//! is sent; and its configuration from the environment.

use std::collections::HashMap;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use shared::config::ConfigError;
use shared::resilience::{BreakerState, CallError, HttpError, ServiceClient, ServiceClientConfig};
use shared_core::CorrelationId;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn config(base_url: &str, extra: &[(&str, &str)]) -> ServiceClientConfig {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DOWN_BASE_URL".into(), base_url.into()),
        ("DOWN_RETRY_BASE_DELAY_MS".into(), "1".into()),
        ("DOWN_RETRY_MAX_DELAY_MS".into(), "5".into()),
        ("DOWN_BREAKER_MINIMUM_CALLS".into(), "4".into()),
        ("DOWN_BREAKER_WINDOW".into(), "4".into()),
    ]);
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ServiceClientConfig::from_lookup("DOWN", |name| vars.get(name).cloned()).unwrap()
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn two_server_errors_then_success_take_three_calls() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    let client = ServiceClient::new(&config(&server.uri(), &[])).unwrap();
    let correlation = CorrelationId::parse("corr-42").unwrap();
    let reply = client.get("/things/1", &correlation).await.unwrap();
    assert_eq!(reply.json::<serde_json::Value>().unwrap(), json!({"ok": true}));
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.headers["x-correlation-id"] == "corr-42"), "the correlation id goes downstream");
}

#[tokio::test]
async fn client_errors_are_returned_at_once_and_never_open_the_breaker() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(404).set_body_string("nope")).mount(&server).await;
    let client = ServiceClient::new(&config(&server.uri(), &[])).unwrap();
    for _ in 0..8 {
        let err = client.get("/missing", &CorrelationId::generate()).await.unwrap_err();
        assert!(matches!(err, CallError::Inner(HttpError::Status { status: StatusCode::NOT_FOUND, .. })), "{err:?}");
    }
    assert_eq!(requests(&server).await, 8, "no retries");
    assert_eq!(client.policy().breaker().unwrap().state(), BreakerState::Closed);
}

#[tokio::test]
async fn a_failing_downstream_opens_the_breaker_and_later_calls_do_not_reach_it() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    let client = ServiceClient::new(&config(&server.uri(), &[("DOWN_RETRY_MAX_ATTEMPTS", "1")])).unwrap();
    for _ in 0..4 {
        assert!(matches!(client.get("/", &CorrelationId::generate()).await, Err(CallError::Inner(_))));
    }
    let err = client.get("/", &CorrelationId::generate()).await.unwrap_err();
    assert!(matches!(err, CallError::CircuitOpen { ref breaker, .. } if breaker == "down"), "{err:?}");
    assert_eq!(requests(&server).await, 4);
}

#[tokio::test]
async fn posts_are_retried_only_with_an_idempotency_key_which_is_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/charges"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).and(path("/charges")).respond_with(ResponseTemplate::new(201)).mount(&server).await;
    let client = ServiceClient::new(&config(&server.uri(), &[])).unwrap();
    let body = json!({"amount": 100});
    let err = client.send(Method::POST, "/charges", Some(&body), None, &CorrelationId::generate()).await.unwrap_err();
    assert!(matches!(err, CallError::Inner(HttpError::Status { status: StatusCode::BAD_GATEWAY, .. })));
    assert_eq!(requests(&server).await, 1, "a POST without a key may have been applied: not retried");

    server.reset().await;
    Mock::given(method("POST"))
        .and(header("idempotency-key", "order-1:charge"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(header("idempotency-key", "order-1:charge"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let reply = client
        .send(Method::POST, "/charges", Some(&body), Some("order-1:charge"), &CorrelationId::generate())
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn retry_after_from_a_429_is_honoured() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
    let client = ServiceClient::new(&config(&server.uri(), &[])).unwrap();
    let started = std::time::Instant::now();
    client.get("/", &CorrelationId::generate()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "waited as asked: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_hung_downstream_times_out_per_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let client = ServiceClient::new(&config(
        &server.uri(),
        &[("DOWN_ATTEMPT_TIMEOUT_MS", "100"), ("DOWN_RETRY_MAX_ATTEMPTS", "2"), ("DOWN_TIMEOUT_MS", "1000")],
    ))
    .unwrap();
    let err = client.get("/", &CorrelationId::generate()).await.unwrap_err();
    assert!(matches!(err, CallError::AttemptTimeout(t) if t == Duration::from_millis(100)), "{err:?}");
    assert_eq!(requests(&server).await, 2);
}

#[test]
fn configuration_comes_from_prefixed_variables_with_defaults_and_named_errors() {
    let config = ServiceClientConfig::from_lookup("INVENTORY", |name| {
        (name == "INVENTORY_BASE_URL").then(|| "https://inventory.internal/".to_owned())
    })
    .unwrap();
    assert_eq!(config.base_url, "https://inventory.internal");
    assert_eq!(config.retry.max_attempts, 3);
    assert_eq!(config.attempt_timeout, Duration::from_secs(2));
    assert_eq!(config.bulkhead_max_concurrent, 32);

    let missing = ServiceClientConfig::from_lookup("INVENTORY", |_| None).unwrap_err();
    assert_eq!(missing, ConfigError::Missing { name: "INVENTORY_BASE_URL".into() });
    let bad = ServiceClientConfig::from_lookup("INVENTORY", |name| match name {
        "INVENTORY_BASE_URL" => Some("https://x".into()),
        "INVENTORY_RETRY_MAX_ATTEMPTS" => Some("three".into()),
        _ => None,
    })
    .unwrap_err();
    assert!(matches!(bad, ConfigError::Invalid { ref name, .. } if name == "INVENTORY_RETRY_MAX_ATTEMPTS"), "{bad:?}");
    let not_url = ServiceClientConfig::from_lookup("X", |_| Some("ftp://x".into())).unwrap_err();
    assert!(matches!(not_url, ConfigError::Invalid { ref name, .. } if name == "X_BASE_URL"));

    // Values that parse but cannot work are refused when the client is built.
    let zero_window = config_with("DOWN_BREAKER_WINDOW", "0");
    assert_eq!(ServiceClient::new(&zero_window).unwrap_err().field, "window");
    let rate = config_with("DOWN_BREAKER_FAILURE_RATE", "150");
    assert_eq!(ServiceClient::new(&rate).unwrap_err().field, "failure_rate_threshold");
}

fn config_with(name: &'static str, value: &'static str) -> ServiceClientConfig {
    config("http://127.0.0.1:9", &[(name, value)])
}

/// Accepts HTTP/1.1 connections and answers every request on them with `200 ok`, keeping the
/// connection open: the count of accepted connections tells how many clients (pools) sent.
async fn counting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = socket.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        buffer.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok";
                        if socket.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn every_downstream_of_a_process_shares_one_http_client_and_its_connections() {
    let (url, accepted) = counting_server().await;
    let (orders, inventory) =
        (ServiceClient::new(&config(&url, &[])).unwrap(), ServiceClient::new(&config(&url, &[])).unwrap());
    let correlation = CorrelationId::generate();
    for client in [&orders, &inventory, &orders, &inventory] {
        assert_eq!(client.get("/x", &correlation).await.unwrap().body.as_ref(), b"ok");
    }
    // A client of its own per downstream (one rustls configuration and pool each) would have
    // opened a connection per client.
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "one pool for both clients");
    assert!(std::ptr::eq(shared::resilience::http_client(), shared::resilience::http_client()));
}

#[tokio::test]
async fn a_call_made_inside_a_traced_invocation_carries_its_traceparent_and_one_outside_none() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).and(path("/x")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
    let client = ServiceClient::new(&config(&server.uri(), &[])).unwrap();
    let correlation = CorrelationId::generate();
    let invocation = shared_core::trace::TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .unwrap()
        .child();
    invocation.scope(client.get("/x", &correlation)).await.unwrap();
    client.get("/x", &correlation).await.unwrap();
    let received = server.received_requests().await.unwrap();
    let sent = received[0].headers.get("traceparent").expect("a traceparent header").to_str().unwrap();
    assert_eq!(sent, invocation.traceparent(), "the downstream becomes a child of the calling span");
    assert!(received[1].headers.get("traceparent").is_none(), "no trace, no header");
}

/// The in-process transport carries the request the network would (method, path and query,
/// headers, JSON body) to a router in the same process, and its answers go through the same
/// policy: a 503 is retried, a 404 is returned at once.
#[tokio::test]
async fn a_client_through_an_in_process_router_sends_the_same_request_under_the_same_policy() {
    use std::sync::{Arc, Mutex};

    use axum::extract::{Request, State};
    use shared::resilience::Transport;

    type Seen = Arc<Mutex<Vec<(String, String, Option<String>, Option<String>, String)>>>;
    async fn record(State(seen): State<Seen>, request: Request) -> (StatusCode, String) {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let header = |name: &str| parts.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        let mut seen = seen.lock().unwrap();
        seen.push((
            parts.method.to_string(),
            parts.uri.to_string(),
            header("x-correlation-id"),
            header("idempotency-key"),
            String::from_utf8(body.to_vec()).unwrap(),
        ));
        let status = match (parts.uri.path(), seen.len()) {
            ("/missing", _) => StatusCode::NOT_FOUND,
            (_, 1) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        };
        (status, r#"{"ok":true}"#.into())
    }
    let seen = Seen::default();
    let router = axum::Router::new().fallback(record).with_state(seen.clone());
    let client =
        ServiceClient::new(&config("https://orders.internal", &[])).unwrap().through(Transport::in_process(router));
    let correlation = CorrelationId::parse("corr-7").unwrap();
    let body = json!({"qty": 2});
    let reply = client.send(Method::POST, "/things?x=1", Some(&body), Some("key-1"), &correlation).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json::<serde_json::Value>().unwrap(), json!({"ok": true}));
    let err = client.get("/missing", &correlation).await.unwrap_err();
    assert!(matches!(err, CallError::Inner(HttpError::Status { status: StatusCode::NOT_FOUND, .. })), "{err:?}");
    let seen = seen.lock().unwrap().clone();
    let sent = (
        "POST".to_owned(),
        "https://orders.internal/things?x=1".to_owned(),
        Some("corr-7".to_owned()),
        Some("key-1".to_owned()),
        r#"{"qty":2}"#.to_owned(),
    );
    assert_eq!(seen[..2], [sent.clone(), sent], "the 503 was retried with the same request");
    assert_eq!(seen.len(), 3, "the 404 was not retried");
}
