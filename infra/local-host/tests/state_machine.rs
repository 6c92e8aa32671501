//! Checks of the fulfilment state machine that moto does not make (it accepts a `Next` to a
//! missing state), and its agreement with the template's rules.

use std::collections::{BTreeSet, HashMap};

use local_aws::{Template, referenced};
use serde_json::Value;

fn definition() -> Value {
    let template = Template::load_project().unwrap();
    let machine = template.state_machine("FulfilmentStateMachine").unwrap();
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

#[test]
fn every_transition_targets_a_state_and_every_state_is_reachable() {
    let definition = definition();
    let states = states(&definition);
    let start = definition["StartAt"].as_str().unwrap();
    let mut seen = BTreeSet::from([start.to_owned()]);
    let mut todo = vec![start.to_owned()];
    while let Some(name) = todo.pop() {
        let state = states.get(&name).unwrap_or_else(|| panic!("a transition goes to {name}, which does not exist"));
        for next in successors(state) {
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

#[test]
fn every_task_has_a_timeout_jittered_retries_and_a_way_out() {
    let definition = definition();
    let states = states(&definition);
    for (name, state) in states.iter().filter(|(_, s)| s["Type"] == "Task") {
        let waits = state["Resource"].as_str().unwrap().ends_with(".waitForTaskToken");
        if waits {
            assert!(
                state.get("TimeoutSeconds").is_some() || state.get("TimeoutSecondsPath").is_some(),
                "{name} waits for a worker without a timeout"
            );
        }
        let retries = state["Retry"].as_array().unwrap_or_else(|| panic!("{name} has no Retry"));
        for retry in retries {
            assert_eq!(retry["JitterStrategy"], "FULL", "{name}");
            assert!(retry["BackoffRate"].as_f64().unwrap_or(1.0) > 1.0 || retry["MaxAttempts"] == 0, "{name}");
        }
    }
    for name in FORWARD {
        let retried: Vec<&str> =
            states[name]["Retry"][0]["ErrorEquals"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
        assert_eq!(retried, ["Transient", "States.Timeout"], "{name} retries only what may pass");
        let last_catch = states[name]["Catch"].as_array().unwrap().last().unwrap();
        assert_eq!(last_catch["ErrorEquals"][0], "States.ALL", "{name} catches everything in the end");
    }
    for name in COMPENSATIONS {
        assert_eq!(states[name]["Retry"][0]["ErrorEquals"][0], "States.ALL", "{name} retries anything");
        assert_eq!(states[name]["Catch"][0]["Next"], "CompensationFailed", "{name}");
    }
    assert_eq!(states["CompensationFailed"]["Next"], "Failed");
    assert_eq!(states["Failed"]["Type"], "Fail");
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
    let definition = definition();
    let commands: BTreeSet<String> = states(&definition)
        .values()
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
