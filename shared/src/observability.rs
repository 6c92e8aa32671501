//! Tracing setup for Lambda: JSON lines on stdout, level from the environment (Lambda's
//! `AWS_LAMBDA_LOG_LEVEL` first, then `RUST_LOG`, else `info`).
//!
//! Every line carries the fields of the spans it was emitted in: the runtime's
//! `Lambda runtime invoke` span gives `requestId`, and our handlers open a span with
//! `correlation_id` (see [`crate::http::correlation_layer`] and the event handlers).

use tracing_subscriber::EnvFilter;

use crate::config::ConfigError;

/// `lambda_runtime` logs every raw event body at TRACE (`raw JSON event received from Lambda`):
/// order bodies, payment methods, the saga's task tokens. Its module is held at DEBUG whatever
/// the level (it logs nothing at DEBUG or INFO; its errors still show).
const RUNTIME_RAW_EVENTS: &str = "lambda_runtime::layers::api_response=debug";

/// The filter directive in force, from the environment.
pub fn log_filter() -> Result<EnvFilter, ConfigError> {
    let (name, directive) = match (std::env::var("AWS_LAMBDA_LOG_LEVEL"), std::env::var("RUST_LOG")) {
        (Ok(level), _) if !level.trim().is_empty() => ("AWS_LAMBDA_LOG_LEVEL", level.to_ascii_lowercase()),
        (_, Ok(filter)) if !filter.trim().is_empty() => ("RUST_LOG", filter),
        _ => ("default", "info".to_owned()),
    };
    filter_for(&directive).map_err(|reason| ConfigError::Invalid { name: name.to_owned(), value: directive, reason })
}

/// The filter for a directive (`info`, `trace`, `orders=debug,info`), never logging raw events.
pub fn filter_for(directive: &str) -> Result<EnvFilter, String> {
    let filter = EnvFilter::try_new(directive).map_err(|e| e.to_string())?;
    Ok(filter.add_directive(RUNTIME_RAW_EVENTS.parse().expect("a valid directive")))
}

/// Installs the JSON subscriber. Call once, first thing in `main`.
pub fn init_tracing() -> Result<(), ConfigError> {
    let filter = log_filter()?;
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(true)
        .init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};
    use tracing::Instrument;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Regression (#16): at TRACE, `lambda_runtime` would log every event's raw body.
    #[test]
    fn no_level_logs_the_runtimes_raw_events_and_trace_still_traces() {
        for level in ["trace", "debug", "info", "lambda_runtime=trace,trace"] {
            let buffer = Buffer::default();
            let writer = buffer.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(super::filter_for(level).unwrap())
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(target: "lambda_runtime::layers::api_response", body = "pm_card_visa", "raw JSON event");
                tracing::error!(target: "lambda_runtime::layers::api_response", "the runtime's own error");
                tracing::trace!(target: "orders::service", "our own trace");
            });
            let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
            assert!(!text.contains("pm_card_visa"), "{level}: {text}");
            assert!(text.contains("the runtime's own error"), "{level}: {text}");
            assert_eq!(text.contains("our own trace"), level.ends_with("trace"), "{level}: {text}");
        }
        assert!(super::filter_for("not a [level").is_err());
    }

    #[tokio::test]
    async fn lines_carry_request_and_correlation_ids() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let invoke = tracing::info_span!("Lambda runtime invoke", requestId = "req-1");
        async {
            let inner = tracing::info_span!("http", correlation_id = "corr-9");
            async { tracing::info!(status = 201, "request handled") }.instrument(inner).await
        }
        .instrument(invoke)
        .await;
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["message"], "request handled");
        assert_eq!(line["spans"][0]["requestId"], "req-1");
        assert_eq!(line["spans"][1]["correlation_id"], "corr-9");
    }
}
