//! template.yaml and what lives beside it must agree: every function builds from a binary that
//! exists, has test events under `events/<binary>/`, and has an entry with every variable it
//! reads in `events/sam-local-env.json` (used by `sam local invoke --env-vars`); and what
//! CloudFormation deploys of it (the SAM transform's output, `sam`) keeps failures where the
//! template says they go.

mod iam;
mod operations;
mod sam;

use std::collections::BTreeSet;
use std::path::Path;

use local_aws::{Template, project_root};
use serde_norway::Value;

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(*key))?.as_str()
}

fn functions(template: &Template) -> Vec<(String, String, String)> {
    template
        .resources_of_type("AWS::Serverless::Function")
        .map(|(id, resource)| {
            let binary = str_at(&resource.metadata, &["BuildProperties", "Binary"])
                .unwrap_or_else(|| panic!("{id}: Metadata.BuildProperties.Binary is missing"));
            let code_uri = str_at(&resource.properties, &["CodeUri"]).unwrap_or_else(|| panic!("{id}: no CodeUri"));
            assert_eq!(str_at(&resource.metadata, &["BuildMethod"]), Some("rust-cargolambda"), "{id}");
            (id.to_owned(), binary.to_owned(), code_uri.to_owned())
        })
        .collect()
}

#[test]
fn every_function_builds_from_an_existing_binary() {
    let root = project_root();
    let template = Template::load_project().unwrap();
    let functions = functions(&template);
    assert!(!functions.is_empty());
    let targets = bin_targets();
    for (id, binary, code_uri) in functions {
        let crate_dir = root.join(&code_uri);
        let manifest = crate_dir.join("Cargo.toml");
        assert!(manifest.exists(), "{id}: CodeUri {code_uri} has no Cargo.toml");
        let manifest = manifest.canonicalize().unwrap();
        assert!(
            targets.contains(&(manifest.clone(), binary.clone())),
            "{id}: Cargo finds no binary named {binary} in {code_uri}"
        );
        assert!(crate_dir.join(format!("src/bin/{binary}.rs")).exists(), "{id}: src/bin/{binary}.rs is missing");
    }
}

/// Every binary target of the workspace as Cargo sees it (`[[bin]]` or `src/bin/*.rs`): its
/// package's manifest and its name.
fn bin_targets() -> BTreeSet<(std::path::PathBuf, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(project_root())
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut targets = BTreeSet::new();
    for package in metadata["packages"].as_array().unwrap() {
        let manifest = std::path::PathBuf::from(package["manifest_path"].as_str().unwrap()).canonicalize().unwrap();
        for target in package["targets"].as_array().unwrap() {
            if target["kind"].as_array().unwrap().iter().any(|k| k == "bin") {
                targets.insert((manifest.clone(), target["name"].as_str().unwrap().to_owned()));
            }
        }
    }
    targets
}

fn json_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_function_has_test_events_and_no_events_are_orphaned() {
    let events = project_root().join("events");
    let template = Template::load_project().unwrap();
    let binaries: BTreeSet<String> = functions(&template).into_iter().map(|(_, binary, _)| binary).collect();
    for binary in &binaries {
        let fixtures = json_files(&events.join(binary));
        assert!(!fixtures.is_empty(), "events/{binary}/ holds no test event for function binary {binary}");
        for name in fixtures {
            let text = std::fs::read_to_string(events.join(binary).join(&name)).unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("events/{binary}/{name}: {e}"));
        }
    }
    for entry in std::fs::read_dir(&events).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(binaries.contains(&name), "events/{name}/ belongs to no function in template.yaml");
        }
    }
}

#[test]
fn sam_local_env_covers_every_function_and_variable() {
    let template = Template::load_project().unwrap();
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project_root().join("events/sam-local-env.json")).unwrap())
            .unwrap();
    for (id, resource) in template.resources_of_type("AWS::Serverless::Function") {
        let entry = env.get(id).unwrap_or_else(|| panic!("events/sam-local-env.json has no entry for {id}"));
        let variables = resource.properties.get("Environment").and_then(|e| e.get("Variables"));
        for name in variables.and_then(Value::as_mapping).into_iter().flat_map(|m| m.keys()) {
            let name = name.as_str().unwrap();
            assert!(entry.get(name).is_some(), "events/sam-local-env.json: {id} lacks {name}");
        }
    }
}

#[test]
fn stream_triggered_functions_have_a_role_scoped_to_their_stream() {
    // SAM's generated role for a DynamoDB trigger carries AWSLambdaDynamoDBExecutionRole, which
    // reads every stream in the account: such functions must bring their own role.
    let template = Template::load_project().unwrap();
    for (id, resource) in template.resources_of_type("AWS::Serverless::Function") {
        let events = resource.properties.get("Events").and_then(Value::as_mapping);
        let stream_triggered =
            events.into_iter().flat_map(|m| m.values()).any(|event| str_at(event, &["Type"]) == Some("DynamoDB"));
        if !stream_triggered {
            continue;
        }
        let role =
            resource.properties.get("Role").unwrap_or_else(|| panic!("{id}: stream trigger without an explicit Role"));
        let role_id = match role {
            Value::Tagged(tagged) => tagged.value.as_str().unwrap_or_default().trim_end_matches(".Arn").to_owned(),
            other => panic!("{id}: Role should be !GetAtt <role>.Arn, got {other:?}"),
        };
        let policy = format!("{:?}", template.resource(&role_id).unwrap().properties);
        assert!(policy.contains("/stream/*"), "{id}: {role_id} must scope stream reads to its table's stream");
        assert!(!policy.contains("AWSLambdaDynamoDBExecutionRole"), "{id}: {role_id} must not read every stream");
    }
}

#[test]
fn deployed_rule_targets_dead_letter_into_the_declared_saga_dlq() {
    // SAM's `DeadLetterConfig: {Type: SQS}` ignores `Destination` and adds a queue of its own (4
    // days' retention, nobody watching it): only `Arn:` names a declared queue.
    let declared: BTreeSet<String> =
        Template::load_project().unwrap().resources_of_type("AWS::SQS::Queue").map(|(id, _)| id.to_owned()).collect();
    let deployed = sam::translated();
    let queues: BTreeSet<String> = sam::of_type(&deployed, "AWS::SQS::Queue").map(|(id, _)| id.to_owned()).collect();
    assert_eq!(queues, declared, "the SAM transform made queues template.yaml does not declare");

    let mut rules = BTreeSet::new();
    for (id, rule) in sam::of_type(&deployed, "AWS::Events::Rule") {
        let targets = rule["Properties"]["Targets"].as_array().unwrap_or_else(|| panic!("{id} has no Targets"));
        for target in targets {
            let dlq = &target["DeadLetterConfig"]["Arn"];
            assert_eq!(sam::referenced(dlq, "Arn"), Some("SagaDLQ"), "{id}'s target {}: DLQ {dlq}", target["Id"]);
        }
        rules.insert(id.to_owned());
    }
    assert!(rules.len() >= 5, "the saga starter, the three saga workers and inventory's order events: {rules:?}");

    // EventBridge may write there only for those rules.
    let (_, policy) = sam::of_type(&deployed, "AWS::SQS::QueuePolicy")
        .find(|(_, p)| {
            p["Properties"]["Queues"]
                .as_array()
                .is_some_and(|q| q.iter().any(|q| sam::referenced(q, "Ref") == Some("SagaDLQ")))
        })
        .expect("a queue policy on SagaDLQ");
    let statements = policy["Properties"]["PolicyDocument"]["Statement"].as_array().unwrap();
    let grant = statements
        .iter()
        .find(|s| s["Principal"]["Service"] == "events.amazonaws.com")
        .expect("SagaDLQPolicy grants EventBridge");
    assert_eq!(grant["Effect"], "Allow");
    assert_eq!(grant["Action"], "sqs:SendMessage");
    let sources = grant["Condition"]["ArnEquals"]["aws:SourceArn"].as_array().expect("aws:SourceArn conditions");
    let sources: BTreeSet<String> = sources
        .iter()
        .map(|s| sam::referenced(s, "Arn").unwrap_or_else(|| panic!("not !GetAtt <rule>.Arn: {s}")).to_owned())
        .collect();
    assert_eq!(sources, rules, "SagaDLQPolicy's aws:SourceArn must name exactly the rules that dead-letter there");
}
