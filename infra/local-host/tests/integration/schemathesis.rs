//! schemathesis (PyPI, installed into .venv by `make setup`) against the whole local system:
//! every check on, driven by the checked-in `infra/openapi.json` and `infra/schemathesis.toml`.
//! Schema-valid requests must be accepted, invalid ones refused with 4xx, answers must match
//! the document, undeclared methods must get 405 with `Allow`, and nothing may be a 5xx. It calls
//! as an admin of the local token issuer (so every operation is explored past its 403), and its
//! `ignored_auth` check proves every operation the document secures refuses a missing token.

use local_host::{Host, HostConfig};
use serde_json::json;

/// Fixed, so a failure can be replayed with the same inputs. `SCHEMATHESIS_SEED` and
/// `SCHEMATHESIS_MAX_EXAMPLES` explore further (e.g. 1 to 20 and 200) without editing this.
const SEED: &str = "20261127";
const MAX_EXAMPLES: &str = "40";

#[tokio::test(flavor = "multi_thread")]
async fn the_public_api_holds_to_its_openapi_document_under_schemathesis() {
    // moto is one Python process shared by every function here; under the fuzzer's load one of
    // its calls can take seconds, which the gateway's production timeouts (2 s per attempt)
    // would rightly turn into 503s. The contract is under test here, not moto's latency.
    let env_overrides = ["ORDERS", "INVENTORY", "PAYMENTS"]
        .into_iter()
        .flat_map(|service| {
            [
                (format!("{service}_ATTEMPT_TIMEOUT_MS"), "10000".to_owned()),
                (format!("{service}_TIMEOUT_MS"), "25000".to_owned()),
            ]
        })
        .collect();
    let host = Host::start(HostConfig { http_port: 0, env_overrides, ..HostConfig::default() })
        .await
        .expect("the local system starts (moto is installed by `make setup`)");
    // The document's example sku exists, so the product route is tested beyond its 404: stocked
    // through the public API with an admin's token, the token schemathesis calls with.
    let admin = host.token("schemathesis-admin", &["admin"]);
    let product =
        json!({"name": "Red mug", "price": {"amount_minor": 1200, "currency": "EUR"}, "low_stock_threshold": 1});
    let response = reqwest::Client::new()
        .put(format!("{}/api/products/SKU-RED-MUG", host.base_url()))
        .bearer_auth(&admin)
        .json(&product)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let root = local_aws::project_root();
    let run = local_aws::schemathesis::Run {
        workdir: "schemathesis",
        config: &root.join("infra/schemathesis.toml"),
        spec: &root.join("infra/openapi.json"),
        url: &host.base_url(),
        workers: 2,
        seed: SEED,
        max_examples: MAX_EXAMPLES,
    };
    let mut command = run.command().expect("schemathesis is installed by `make setup`");
    command.args(["--header", &format!("Authorization: Bearer {admin}")]);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // It really tested the seven operations (and did not, say, load an empty document).
    assert!(report.contains("7 selected / 7 total"), "{report}");
}
