//! Tracing setup for Lambda: JSON lines on stdout, level from the environment (Lambda's
//! `AWS_LAMBDA_LOG_LEVEL` first, then `RUST_LOG`, else `info`).
//!
//! Every line carries the fields of the spans it was emitted in: the runtime's
//! `Lambda runtime invoke` span gives `requestId`, and our handlers open a span with
//! `correlation_id` (see [`crate::http::correlation_layer`] and the event handlers).

use tracing_subscriber::EnvFilter;

use crate::config::ConfigError;

/// The filter directive in force, from the environment.
pub fn log_filter() -> Result<EnvFilter, ConfigError> {
    let (name, directive) = match (std::env::var("AWS_LAMBDA_LOG_LEVEL"), std::env::var("RUST_LOG")) {
        (Ok(level), _) if !level.trim().is_empty() => ("AWS_LAMBDA_LOG_LEVEL", level.to_ascii_lowercase()),
        (_, Ok(filter)) if !filter.trim().is_empty() => ("RUST_LOG", filter),
        _ => return Ok(EnvFilter::new("info")),
    };
    EnvFilter::try_new(&directive).map_err(|e| ConfigError::Invalid {
        name: name.to_owned(),
        value: directive.clone(),
        reason: e.to_string(),
    })
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
