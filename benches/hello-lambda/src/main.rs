//! Hello world on `lambda_runtime`: what a Rust function costs to start when it does nothing at
//! init. `benches/coldstart` launches it next to every function of the template and reports each
//! function's init as a ratio to this one.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, lambda_runtime::Error>(json!({ "hello": "world", "request_id": event.context.request_id }))
    }))
    .await
}
