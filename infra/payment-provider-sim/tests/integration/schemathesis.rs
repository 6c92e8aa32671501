//! The simulator against Stripe's own OpenAPI description of the five operations we use
//! (`../shared/specs/stripe/openapi-subset.json` from the project root, API version 2020-08-27):
//! schemathesis (PyPI, in `.venv`) with every check on (see `schemathesis.toml` beside this
//! crate for the few exceptions and why), then every kind of object the simulator makes checked
//! against the description's schemas (JSON Schema, through the `jsonschema` package schemathesis
//! brings).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use payment_provider_sim::{Faults, RunningSimulator, Simulator, SimulatorConfig};
use serde_json::{Value, json};

const KEY: &str = "sk_test_schemathesis";
/// Fixed, so a failure can be replayed with the same inputs; `SCHEMATHESIS_SEED` and
/// `SCHEMATHESIS_MAX_EXAMPLES` explore further without editing this.
const SEED: &str = "20261201";
const MAX_EXAMPLES: &str = "60";

fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn stripe_description() -> PathBuf {
    let spec = project_root().join("../shared/specs/stripe/openapi-subset.json");
    assert!(
        spec.exists(),
        "Stripe's OpenAPI subset is missing: expected {} (`../shared/specs/stripe/openapi-subset.json` from the \
         project root; see its README for where it comes from)",
        spec.display()
    );
    spec
}

fn venv_tool(name: &str) -> PathBuf {
    let tool = project_root().join(".venv/bin").join(name);
    assert!(
        tool.exists(),
        "{} is missing: run `make setup` (requirements-dev.txt installs schemathesis)",
        tool.display()
    );
    tool
}

async fn start() -> RunningSimulator {
    let config = SimulatorConfig { api_key: KEY.into(), seed: Some(5), ..SimulatorConfig::default() };
    Simulator::new(config).unwrap().spawn(0).await.unwrap()
}

async fn call(sim: &RunningSimulator, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.base_url()))
        .bearer_auth(KEY)
        .form(form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn intent(sim: &RunningSimulator, payment_method: &str, confirm: bool) -> (u16, Value) {
    let confirm = if confirm { "true" } else { "false" };
    let form = [("amount", "2500"), ("currency", "eur"), ("payment_method", payment_method), ("confirm", confirm)];
    call(sim, reqwest::Method::POST, "/v1/payment_intents", &form).await
}

fn id(body: &Value) -> String {
    body["id"].as_str().unwrap_or_else(|| panic!("no id in {body}")).to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_holds_to_stripes_openapi_description() {
    let spec = stripe_description();
    let sim = start().await;

    // Objects for the operations that need one (their ids go to schemathesis).
    let (_, paid) = intent(&sim, "pm_card_visa", true).await;
    let (_, unconfirmed) = intent(&sim, "pm_card_mastercard", false).await;
    let (status, refund) =
        call(&sim, reqwest::Method::POST, "/v1/refunds", &[("payment_intent", &id(&paid)), ("amount", "100")]).await;
    assert_eq!(status, 200, "{refund}");

    let run = local_aws::schemathesis::Run {
        workdir: "schemathesis-payment-provider-sim",
        config: &project_root().join("infra/payment-provider-sim/schemathesis.toml"),
        spec: &spec,
        url: &sim.base_url(),
        workers: 1,
        seed: SEED,
        max_examples: MAX_EXAMPLES,
    };
    let mut command = run.command().expect("schemathesis is installed by `make setup`");
    command
        .args(["--header", &format!("Authorization: Bearer {KEY}")])
        .env("SIM_PAYMENT_INTENT", id(&paid))
        .env("SIM_UNCONFIRMED_INTENT", id(&unconfirmed))
        .env("SIM_REFUND", id(&refund));
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("Selected: 5/5"), "all five operations were tested: {report}");
    let by_route = sim.simulator.stats().by_route;
    for route in ["POST /v1/payment_intents", "POST /v1/payment_intents/{id}/confirm", "POST /v1/refunds"] {
        assert!(by_route.get(route).copied().unwrap_or(0) > 20, "{route} was fuzzed: {by_route:?}");
    }
}

/// Validates `objects` (pairs of a component schema name and a JSON value) against Stripe's
/// description; returns the errors.
fn check_against_description(objects: &[(&str, Value)]) -> String {
    const SCRIPT: &str = r##"
import json, sys
import jsonschema
spec = json.load(open(sys.argv[1]))
def convert(node):
    # OpenAPI 3.0's `nullable` is not JSON Schema: null becomes one more alternative.
    if isinstance(node, dict):
        node = {k: convert(v) for k, v in node.items()}
        if node.pop("nullable", False):
            node = {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [convert(v) for v in node]
    return node
root = convert(spec)
errors = []
for name, value in json.load(sys.stdin):
    schema = {"$ref": "#/components/schemas/" + name, "components": root["components"]}
    for error in jsonschema.Draft4Validator(schema).iter_errors(value):
        errors.append(f"{name} {value.get('id', value.get('error', {}).get('code'))}: {list(error.absolute_path)}: {error.message[:300]}")
print("\n".join(errors))
"##;
    let mut child = Command::new(venv_tool("python"))
        .arg("-c")
        .arg(SCRIPT)
        .arg(stripe_description())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python runs");
    let input = serde_json::to_vec(objects).unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the check ran: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn every_object_the_simulator_makes_has_the_fields_stripes_description_requires() {
    let sim = start().await;
    let mut objects = Vec::new();
    // Each status an intent can end in here, and the 402 a decline is.
    let (_, paid) = intent(&sim, "pm_card_visa", true).await;
    objects.push(("payment_intent", paid.clone()));
    objects.push(("payment_intent", intent(&sim, "pm_card_visa", false).await.1));
    objects.push(("payment_intent", intent(&sim, "pm_card_threeDSecure2Required", true).await.1));
    let (status, declined) = intent(&sim, "pm_card_visa_chargeDeclinedInsufficientFunds", true).await;
    assert_eq!(status, 402);
    objects.push(("error", declined.clone()));
    objects.push(("payment_intent", declined["error"]["payment_intent"].clone()));
    sim.simulator.set_faults(Faults { processing_next: 1, ..Faults::default() }).unwrap();
    let (_, processing) = intent(&sim, "pm_card_visa", true).await;
    assert_eq!(processing["status"], "processing");
    objects.push(("payment_intent", processing));
    // Refunds: succeeded, pending, then failed.
    let (_, refund) = call(&sim, reqwest::Method::POST, "/v1/refunds", &[("payment_intent", &id(&paid))]).await;
    assert_eq!(refund["status"], "succeeded");
    objects.push(("refund", refund));
    sim.simulator.set_faults(Faults { settle_ms: 0, ..Faults::default() }).unwrap();
    let (_, failing) = intent(&sim, "pm_card_refundFail", true).await;
    let (_, pending) = call(&sim, reqwest::Method::POST, "/v1/refunds", &[("payment_intent", &id(&failing))]).await;
    assert_eq!(pending["status"], "pending");
    objects.push(("refund", pending.clone()));
    let (_, failed) = call(&sim, reqwest::Method::GET, &format!("/v1/refunds/{}", id(&pending)), &[]).await;
    assert_eq!(
        (failed["status"].as_str(), failed["failure_reason"].as_str()),
        (Some("failed"), Some("expired_or_canceled_card"))
    );
    objects.push(("refund", failed));
    // Errors: validation, missing object, idempotency, authentication.
    objects.push(("error", call(&sim, reqwest::Method::POST, "/v1/payment_intents", &[("amount", "10")]).await.1));
    objects.push(("error", call(&sim, reqwest::Method::GET, "/v1/refunds/re_nope", &[]).await.1));
    objects.push(("error", json!({"error": {"type": "api_error", "message": "a 500"}})));

    let errors = check_against_description(&objects);
    assert!(errors.is_empty(), "objects that do not match Stripe's description:\n{errors}");
    // And the check itself can fail: an intent without the required payment_method_types.
    let mut broken = paid;
    broken.as_object_mut().unwrap().remove("payment_method_types");
    let errors = check_against_description(&[("payment_intent", broken)]);
    assert!(errors.contains("payment_method_types"), "{errors}");
}
