//! A fake Lambda Runtime API on 127.0.0.1: the three calls a function makes
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>), each one reported to the
//! benchmark with the instant it arrived.
//!
//! - `GET /2018-06-01/runtime/invocation/next` reports [`Call::Next`] and waits for the next
//!   event the benchmark hands over with [`RuntimeApi::invoke`];
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../error` report the answer;
//! - `POST /2018-06-01/runtime/init/error` reports a function that failed to start.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Mutex, mpsc};

/// What a function did, and when the fake API saw it.
#[derive(Debug)]
pub enum Call {
    Next(Instant),
    Response { at: Instant, request_id: String, body: Bytes },
    Error { at: Instant, request_id: String, body: Bytes },
    InitError { body: Bytes },
}

struct Shared {
    calls: mpsc::UnboundedSender<Call>,
    events: Mutex<mpsc::UnboundedReceiver<(String, Bytes)>>,
}

pub struct RuntimeApi {
    pub address: String,
    calls: mpsc::UnboundedReceiver<Call>,
    events: mpsc::UnboundedSender<(String, Bytes)>,
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let _ = shared.calls.send(Call::Next(Instant::now()));
    let Some((request_id, body)) = shared.events.lock().await.recv().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + Duration::from_secs(10);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", request_id);
    set("lambda-runtime-deadline-ms", deadline.as_millis().to_string());
    set("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:coldstart".into());
    set("lambda-runtime-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0".into());
    set("content-type", "application/json".into());
    (headers, body).into_response()
}

async fn response(State(shared): State<Arc<Shared>>, Path(request_id): Path<String>, body: Bytes) -> StatusCode {
    let _ = shared.calls.send(Call::Response { at: Instant::now(), request_id, body });
    StatusCode::ACCEPTED
}

async fn error(State(shared): State<Arc<Shared>>, Path(request_id): Path<String>, body: Bytes) -> StatusCode {
    let _ = shared.calls.send(Call::Error { at: Instant::now(), request_id, body });
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let _ = shared.calls.send(Call::InitError { body });
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared { calls: calls_tx, events: Mutex::new(events_rx) });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { address, calls, events })
    }

    /// The next call a function made, or `None` after `timeout`.
    pub async fn call(&mut self, timeout: Duration) -> Option<Call> {
        tokio::time::timeout(timeout, self.calls.recv()).await.ok().flatten()
    }

    /// Hands `event` to the function waiting in `GET /next` (or the next one to ask), and returns
    /// when it was handed over.
    pub fn invoke(&self, request_id: &str, event: Bytes) -> Instant {
        let at = Instant::now();
        let _ = self.events.send((request_id.to_owned(), event));
        at
    }

    /// Forgets calls and events left from a launch that was cut short.
    pub fn reset(&mut self) {
        while self.calls.try_recv().is_ok() {}
    }
}
