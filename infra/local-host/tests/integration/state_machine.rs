//! Checks of the fulfilment state machine that moto does not make (it accepts a `Next` to a
//! missing state), and its agreement with the template's rules.

use std::collections::{BTreeSet, HashMap};

use local_aws::{Template, referenced};
use serde_json::{Value, json};

fn definition() -> Value {
    definition_of("FulfilmentStateMachine")
}

/// The retry of a parked order's compensations (infra/statemachine/compensate.asl.json).
fn compensation() -> Value {
    definition_of("CompensationStateMachine")
}

fn definition_of(logical_id: &str) -> Value {
    let template = Template::load_project().unwrap();
    let machine = template.state_machine(logical_id).unwrap();
    let text = machine
        .definition(|name, value| {
            (name == "EventBusName" && referenced(value) == Some("ShopEventBus")).then(|| "bus".into())
        })
        .expect("every placeholder is declared in DefinitionSubstitutions");
    serde_json::from_str(&text).expect("the definition is JSON")
}

fn states(definition: &Value) -> &serde_json::Map<String, Value> {
    definition["States"].as_object().unwrap()
}

/// Where a state can go next (Next, Catch targets).
fn successors(state: &Value) -> Vec<String> {
    let mut next: Vec<String> = state["Next"].as_str().map(str::to_owned).into_iter().collect();
    for catcher in state["Catch"].as_array().into_iter().flatten() {
        next.push(catcher["Next"].as_str().unwrap().to_owned());
    }
    next
}

/// Where a state can go next, Choice branches included.
fn all_successors(state: &Value) -> Vec<String> {
    let mut next = successors(state);
    for choice in state["Choices"].as_array().into_iter().flatten() {
        next.push(choice["Next"].as_str().unwrap().to_owned());
    }
    next.extend(state["Default"].as_str().map(str::to_owned));
    next
}

#[test]
fn every_transition_targets_a_state_and_every_state_is_reachable() {
    for definition in [definition(), compensation()] {
        every_state_reachable(&definition);
    }
}

fn every_state_reachable(definition: &Value) {
    let states = states(definition);
    let start = definition["StartAt"].as_str().unwrap();
    let mut seen = BTreeSet::from([start.to_owned()]);
    let mut todo = vec![start.to_owned()];
    while let Some(name) = todo.pop() {
        let state = states.get(&name).unwrap_or_else(|| panic!("a transition goes to {name}, which does not exist"));
        for next in all_successors(state) {
            if seen.insert(next.clone()) {
                todo.push(next);
            }
        }
    }
    let all: BTreeSet<String> = states.keys().cloned().collect();
    assert_eq!(seen, all, "unreachable states");
}

const FORWARD: [&str; 3] = ["ReserveInventory", "ProcessPayment", "ConfirmOrder"];
const COMPENSATIONS: [&str; 3] = ["RefundPayment", "ReleaseInventory", "CancelOrder"];

/// What the `events:putEvents` integration itself can fail with, whatever the step: the bus,
/// not the order, is at fault, so every task retries these before any `Catch` sees them.
///
/// - `EventBridge.FailedEntry`: "If the response from PutEvents contains a non-zero
///   FailedEntryCount then the Task state fails with the error EventBridge.FailedEntry"
///   (<https://docs.aws.amazon.com/step-functions/latest/dg/connect-eventbridge.html>); a failed
///   entry's `ErrorCode` is e.g. `ThrottlingException` or `InternalFailure`.
/// - An exception of the PutEvents call is named `<Service>.<Exception>`, with the `Exception`
///   suffix even where the API reference omits it
///   (<https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html>):
///   PutEvents' own `InternalException`, the common `ThrottlingException`, the SDK's base
///   `AmazonEventBridgeException` and the client-side `SdkClientException` (as
///   `Lambda.SdkClientException` for Lambda,
///   <https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html>).
///
/// Not `States.TaskFailed`: in a retrier it is a wildcard for every error but `States.Timeout`
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>), so it
/// would retry `InsufficientStock` and `PaymentDeclined` too.
const INTEGRATION_ERRORS: [&str; 5] = [
    "EventBridge.FailedEntry",
    "EventBridge.AmazonEventBridgeException",
    "EventBridge.InternalException",
    "EventBridge.ThrottlingException",
    "EventBridge.SdkClientException",
];

/// The retrier Step Functions applies to `error`: the first whose `ErrorEquals` names it, or a
/// `States.ALL` one (which must come last).
fn retrier_for<'a>(state: &'a Value, error: &str) -> Option<&'a Value> {
    state["Retry"]
        .as_array()?
        .iter()
        .find(|retry| retry["ErrorEquals"].as_array().unwrap().iter().any(|e| e == error || e == "States.ALL"))
}

/// The ceilings of a retrier's delays: attempt `n` (from 1) waits at most
/// `min(MaxDelaySeconds, IntervalSeconds × BackoffRate^(n-1))`, and with `JitterStrategy: FULL`
/// a random time between 0 and that ceiling
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>, retrier
/// fields; the defaults are 1 s, 2.0 and 3 attempts).
fn delay_ceilings(retry: &Value) -> Vec<f64> {
    let interval = retry["IntervalSeconds"].as_f64().unwrap_or(1.0);
    let backoff = retry["BackoffRate"].as_f64().unwrap_or(2.0);
    let cap = retry["MaxDelaySeconds"].as_f64().unwrap_or(f64::INFINITY);
    let attempts = retry["MaxAttempts"].as_u64().unwrap_or(3);
    (0..attempts).map(|n| (interval * backoff.powi(n as i32)).min(cap)).collect()
}

/// P(sum of independent uniforms on [0, c_i] < s), exactly: the Irwin-Hall formula for unequal
/// widths, `Σ_J (-1)^|J| (s - Σ_J c)_+^n / (n! Π c)` over the subsets J of the ceilings.
fn probability_sum_below(ceilings: &[f64], s: f64) -> f64 {
    let n = ceilings.len();
    let mut total = 0.0;
    for subset in 0u32..(1 << n) {
        let taken: f64 = (0..n).filter(|i| subset & (1 << i) != 0).map(|i| ceilings[i]).sum();
        if taken < s {
            let sign = if subset.count_ones() % 2 == 0 { 1.0 } else { -1.0 };
            total += sign * (s - taken).powi(n as i32);
        }
    }
    let factorial: f64 = (1..=n).map(|k| k as f64).product();
    (total / (factorial * ceilings.iter().product::<f64>())).clamp(0.0, 1.0)
}

#[test]
fn the_probability_of_a_short_budget_is_computed_right() {
    assert!((probability_sum_below(&[10.0], 2.5) - 0.25).abs() < 1e-12);
    assert!((probability_sum_below(&[1.0, 1.0], 1.0) - 0.5).abs() < 1e-12, "two uniforms: a triangle");
    assert!((probability_sum_below(&[1.0, 1.0], 0.5) - 0.125).abs() < 1e-12);
    assert!((probability_sum_below(&[1.0, 2.0], 3.0) - 1.0).abs() < 1e-12);
    // Against a simulation: three unequal ceilings, 200,000 draws.
    let ceilings = [2.0, 4.0, 8.0];
    let mut rng = fastrand::Rng::with_seed(7);
    let draws = 200_000;
    let below = (0..draws).filter(|_| ceilings.iter().map(|c| rng.f64() * c).sum::<f64>() < 5.0).count();
    let simulated = below as f64 / f64::from(draws);
    assert!((probability_sum_below(&ceilings, 5.0) - simulated).abs() < 0.005, "{simulated}");
}

/// The time a compensation must be able to wait out: the payment provider's breaker stays open
/// `PAYMENT_PROVIDER_BREAKER_OPEN_MS`, then the trial call may take the whole
/// `PAYMENT_PROVIDER_TIMEOUT_MS`. Read from the payments worker's environment in template.yaml
/// through the very parser the worker uses, so defaults and overrides count alike.
fn outage_to_outlast() -> std::time::Duration {
    let template = Template::load_project().unwrap();
    let worker = template.resource("PaymentsSagaWorkerFunction").unwrap();
    let variables = &worker.properties["Environment"]["Variables"];
    let lookup = |name: &str| -> Option<String> {
        let value = variables.get(name)?;
        match referenced(value) {
            // A `!Ref` to a parameter: its default.
            Some(parameter) => template.parameters.get(parameter)?.get("Default")?.as_str().map(str::to_owned),
            None => value.as_str().map(str::to_owned),
        }
    };
    let config = shared::resilience::ServiceClientConfig::from_lookup(payments::entrypoints::PROVIDER_PREFIX, lookup)
        .expect("the payments worker's provider configuration in template.yaml is valid");
    config.breaker.wait_in_open + config.overall_timeout
}

/// With full jitter no budget is guaranteed (every delay may come out near 0): what a retrier
/// can promise is that falling short is vanishingly unlikely.
const SHORT_BUDGET_AT_MOST: f64 = 1e-6;

#[test]
fn every_task_has_a_timeout_jittered_retries_and_a_way_out() {
    for definition in [definition(), compensation()] {
        every_task_bounded(&definition);
    }
}

/// What a compensation that still fails leads to, in either machine: a Pass state naming the
/// failed step and what is still owed, the alert, `ParkOrder`, and a `Fail`; a `ParkOrder` that
/// fails too ends in its own `Fail` (the sweeper finds the order later).
fn assert_parks_on_failure(definition: &Value) {
    let states = states(definition);
    for (step, failed, owed) in [
        ("RefundPayment", "RefundFailed", json!({"refund_payment": true, "release_inventory": true})),
        ("ReleaseInventory", "ReleaseFailed", json!({"refund_payment": false, "release_inventory": true})),
        ("CancelOrder", "CancelFailed", json!({"refund_payment": false, "release_inventory": false})),
    ] {
        assert_eq!(states[step]["Catch"][0]["Next"], failed, "{step}");
        assert_eq!(states[step]["Catch"][0]["ResultPath"], "$.compensation_error", "{step}");
        assert_eq!(states[failed]["Type"], "Pass");
        assert_eq!(states[failed]["ResultPath"], "$.parking");
        assert_eq!(states[failed]["Result"], json!({"failed_step": step, "owed": owed}), "{failed}");
        assert_eq!(states[failed]["Next"], "CompensationFailed");
    }
    assert_eq!(states["CompensationFailed"]["Next"], "ParkOrder");
    let park = &states["ParkOrder"];
    assert_eq!(park["Parameters"]["Entries"][0]["DetailType"], "ParkOrder");
    let data = &park["Parameters"]["Entries"][0]["Detail"]["data"];
    for (field, path) in [
        ("order_id.$", "$.order_id"),
        ("failed_step.$", "$.parking.failed_step"),
        ("owed.$", "$.parking.owed"),
        ("compensation_error.$", "$.compensation_error"),
        ("error.$", "$.error"),
    ] {
        assert_eq!(data[field], path, "ParkOrder {field}");
    }
    assert_eq!(park["Next"], "Failed");
    assert_eq!(park["Catch"][0]["Next"], "ParkingFailed");
    assert_eq!(states["Failed"]["Type"], "Fail");
    assert_eq!(states["ParkingFailed"]["Type"], "Fail");
}

#[test]
fn a_compensation_that_still_fails_parks_the_order_with_what_is_owed_in_both_machines() {
    assert_parks_on_failure(&definition());
    let compensation = compensation();
    assert_parks_on_failure(&compensation);
    let states = states(&compensation);
    assert_eq!(
        states["ParkOrder"]["Parameters"]["Entries"][0]["Detail"]["data"]["attempt.$"], "$.attempt",
        "a retry re-parks with its attempt, so a late report of an older one changes nothing"
    );
    assert!(
        definition()["States"]["ParkOrder"]["Parameters"]["Entries"][0]["Detail"]["data"].get("attempt.$").is_none()
    );
    // The retry skips what is not owed, in the saga's reverse order, and always cancels.
    assert_eq!(compensation["StartAt"], "RefundOwed");
    for (choice, flag, step, otherwise) in [
        ("RefundOwed", "$.owed.refund_payment", "RefundPayment", "ReleaseOwed"),
        ("ReleaseOwed", "$.owed.release_inventory", "ReleaseInventory", "CancelOrder"),
    ] {
        assert_eq!(states[choice]["Choices"][0]["Variable"], flag);
        assert_eq!(states[choice]["Choices"][0]["BooleanEquals"], true);
        assert_eq!(states[choice]["Choices"][0]["Next"], step);
        assert_eq!(states[choice]["Default"], otherwise);
    }
    assert_eq!(states["RefundPayment"]["Next"], "ReleaseOwed");
    assert_eq!(states["ReleaseInventory"]["Next"], "CancelOrder");
    assert_eq!(states["CancelOrder"]["End"], true);
    // The same commands as the saga's, retried the same way.
    let saga = definition();
    for name in COMPENSATIONS {
        for key in ["Resource", "Parameters", "Retry", "TimeoutSecondsPath"] {
            assert_eq!(states[name][key], saga["States"][name][key], "{name}.{key}");
        }
    }
}

fn every_task_bounded(definition: &Value) {
    let states = states(definition);
    for (name, state) in states.iter().filter(|(_, s)| s["Type"] == "Task") {
        let waits = state["Resource"].as_str().unwrap().ends_with(".waitForTaskToken");
        if waits {
            assert!(
                state.get("TimeoutSeconds").is_some() || state.get("TimeoutSecondsPath").is_some(),
                "{name} waits for a worker without a timeout"
            );
        }
        let retries = state["Retry"].as_array().unwrap_or_else(|| panic!("{name} has no Retry"));
        for (i, retry) in retries.iter().enumerate() {
            assert_eq!(retry["JitterStrategy"], "FULL", "{name}");
            assert!(retry["BackoffRate"].as_f64().unwrap_or(1.0) > 1.0 || retry["MaxAttempts"] == 0, "{name}");
            assert!(retry.get("MaxDelaySeconds").is_some(), "{name}: every backoff is capped");
            if retry["ErrorEquals"].as_array().unwrap().iter().any(|e| e == "States.ALL") {
                assert_eq!(i, retries.len() - 1, "{name}: States.ALL comes last, alone");
                assert_eq!(retry["ErrorEquals"].as_array().unwrap().len(), 1, "{name}");
            }
        }
    }
}

#[test]
fn forward_steps_retry_briefly_and_compensations_for_long() {
    let definition = definition();
    let states = states(&definition);
    for name in FORWARD {
        let retried: Vec<&str> =
            states[name]["Retry"][0]["ErrorEquals"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
        assert_eq!(retried, ["Transient", "States.Timeout"], "{name} retries briefly what the worker says may pass");
        for business in ["InsufficientStock", "PaymentDeclined", "OrderNotPending", "ReservationImpossible"] {
            assert!(retrier_for(&states[name], business).is_none(), "{name} never retries {business}");
        }
        let last_catch = states[name]["Catch"].as_array().unwrap().last().unwrap();
        assert_eq!(last_catch["ErrorEquals"][0], "States.ALL", "{name} catches everything in the end");
    }
    for name in COMPENSATIONS.into_iter().chain(["ParkOrder"]) {
        let last = states[name]["Retry"].as_array().unwrap().last().unwrap();
        assert_eq!(last["ErrorEquals"][0], "States.ALL", "{name} retries anything, final errors too");
    }
    // A refund may settle an unfinished charge first: it waits on the provider as long as a
    // charge does, or longer.
    for name in ["ProcessPayment", "RefundPayment"] {
        assert_eq!(states[name]["TimeoutSecondsPath"], "$.settings.payment_timeout_seconds", "{name}");
    }
}

#[test]
fn every_task_retries_the_bus_own_failures_before_its_catch_for_longer_than_an_outage() {
    for (definition, count) in [(definition(), 8), (compensation(), 5)] {
        retries_bus_failures(&definition, count);
    }
}

fn retries_bus_failures(definition: &Value, count: usize) {
    let states = states(definition);
    let outage = outage_to_outlast().as_secs_f64();
    let tasks: Vec<&str> = states.iter().filter(|(_, s)| s["Type"] == "Task").map(|(n, _)| n.as_str()).collect();
    assert_eq!(tasks.len(), count, "{tasks:?}");
    for name in tasks {
        for error in INTEGRATION_ERRORS {
            let retry = retrier_for(&states[name], error).unwrap_or_else(|| panic!("{name} does not retry {error}"));
            let ceilings = delay_ceilings(retry);
            let short = probability_sum_below(&ceilings, outage);
            assert!(
                short <= SHORT_BUDGET_AT_MOST,
                "{name} gives up on {error} before {outage} s with probability {short:e} (delays up to {ceilings:?})"
            );
        }
    }
}

#[test]
fn compensations_outlast_the_payment_providers_breaker_and_timeout() {
    for definition in [definition(), compensation()] {
        compensations_outlast(&definition);
    }
}

fn compensations_outlast(definition: &Value) {
    let states = states(definition);
    let outage = outage_to_outlast();
    assert!(outage.as_secs() >= 30, "the breaker alone stays open 30 s by default: {outage:?}");
    let outage = outage.as_secs_f64();
    for name in COMPENSATIONS.into_iter().chain(["ParkOrder"]) {
        for error in ["Transient", "States.Timeout"] {
            let retry = retrier_for(&states[name], error).unwrap();
            let ceilings = delay_ceilings(retry);
            let expected: f64 = ceilings.iter().sum::<f64>() / 2.0;
            let short = probability_sum_below(&ceilings, outage);
            assert!(
                short <= SHORT_BUDGET_AT_MOST,
                "{name} gives up on {error} before {outage} s with probability {short:e} (delays up to {ceilings:?})"
            );
            assert!(expected >= 3.0 * outage, "{name}: {expected} s expected against a {outage} s outage");
        }
    }
}

#[test]
fn compensations_undo_in_reverse_order_of_what_succeeded() {
    let definition = definition();
    let states = states(&definition);
    let catch_target = |state: &str, error: &str| -> String {
        states[state]["Catch"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["ErrorEquals"].as_array().unwrap().iter().any(|e| e == error))
            .map(|c| c["Next"].as_str().unwrap().to_owned())
            .unwrap()
    };
    // Nothing reserved yet: cancel. Reserved but not charged: release, then cancel. Charged:
    // refund, release, cancel.
    assert_eq!(catch_target("ReserveInventory", "InsufficientStock"), "CancelOrder");
    assert_eq!(catch_target("ReserveInventory", "States.ALL"), "ReleaseInventory");
    assert_eq!(catch_target("ProcessPayment", "PaymentDeclined"), "ReleaseInventory");
    assert_eq!(catch_target("ProcessPayment", "States.ALL"), "RefundPayment");
    assert_eq!(catch_target("ConfirmOrder", "States.ALL"), "RefundPayment");
    assert_eq!(states["RefundPayment"]["Next"], "ReleaseInventory");
    assert_eq!(states["ReleaseInventory"]["Next"], "CancelOrder");
    assert_eq!(states["CancelOrder"]["End"], true);
    assert_eq!(states["ConfirmOrder"]["End"], true);
}

#[test]
fn each_command_the_saga_sends_is_routed_by_the_template_to_exactly_one_worker() {
    let (saga, compensation) = (definition(), compensation());
    let commands: BTreeSet<String> = states(&saga)
        .values()
        .chain(states(&compensation).values())
        .filter(|s| s["Resource"].as_str().is_some_and(|r| r.ends_with(".waitForTaskToken")))
        .map(|s| s["Parameters"]["Entries"][0]["DetailType"].as_str().unwrap().to_owned())
        .collect();
    let mut routed: HashMap<String, Vec<String>> = HashMap::new();
    for rule in Template::load_project().unwrap().event_rules().unwrap() {
        if rule.pattern["source"] != serde_json::json!(["shop.saga"]) {
            continue;
        }
        for detail_type in rule.pattern["detail-type"].as_array().unwrap() {
            routed.entry(detail_type.as_str().unwrap().to_owned()).or_default().push(rule.function.clone());
        }
    }
    for command in &commands {
        assert_eq!(routed.get(command).map(Vec::len), Some(1), "{command} goes to {:?}", routed.get(command));
    }
    let routed: BTreeSet<String> = routed.into_keys().collect();
    assert_eq!(routed, commands, "no rule waits for a command the saga never sends");
}

/// The saga waits for a payment step at least as long as the payments worker may run (its
/// Lambda `Timeout`, derived in the template from the provider timeout and the lease): a shorter
/// task timeout gives up on a step that is still working and retries it into the holder's lease.
/// The starter's built-in default agrees with the template's, so a deployment without the
/// parameter gets the same.
#[test]
fn the_saga_waits_for_a_payment_step_as_long_as_the_payments_worker_may_run() {
    let template = Template::load_project().unwrap();
    let number = |value: &serde_norway::Value| value.as_u64().or_else(|| value.as_str()?.parse().ok());
    let worker = template.resource("PaymentsSagaWorkerFunction").unwrap();
    let worker_timeout = number(&worker.properties["Timeout"]).expect("the payments worker declares a Timeout");
    let saga_timeout = number(&template.parameters["SagaPaymentTimeoutSeconds"]["Default"])
        .expect("SagaPaymentTimeoutSeconds has a default");
    assert!(
        saga_timeout >= worker_timeout,
        "SagaPaymentTimeoutSeconds defaults to {saga_timeout} s, shorter than the payments worker's {worker_timeout} s"
    );
    assert_eq!(orders::saga::SagaSettings::default().payment_timeout_seconds, saga_timeout);
}
