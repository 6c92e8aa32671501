//! Where the stack's resources are: on AWS, from the CloudFormation stack's outputs (and its
//! event archive, which has no output, as the bus's archive); on the local system, from the
//! names the local host gives them (`<stack>-<LogicalId>`, an archive cut to 48 characters, as
//! `infra/local-host/src/provision.rs` does).
//!
//! Either way every later call is the same SDK call against the endpoint the environment names
//! (`AWS_ENDPOINT_URL`, or for `--local` the emulator recorded in `<state dir>/moto.json`).

use std::path::Path;

use aws_config::{BehaviorVersion, SdkConfig};

use crate::Error;

/// The dead-letter queues of the stack, by what they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QueueKind {
    /// Rule-target and async-invocation dead letters: saga commands and order events.
    Saga,
    /// An outbox relay's on-failure destination: failed stream batches.
    Relay,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    /// The template's logical id (`SagaDLQ`, `OrdersOutboxRelayDLQ`, ...).
    pub logical_id: &'static str,
    pub url: String,
    pub kind: QueueKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub logical_id: &'static str,
    pub name: String,
}

/// The stack's resources shopctl works with.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub bus: String,
    /// The event archive's name when it is known from the name alone (locally); on AWS the
    /// archive of the bus (`ListArchives` by its source), found when a replay needs it.
    pub archive: Option<String>,
    pub queues: Vec<Queue>,
    pub tables: Vec<Table>,
}

/// (queue logical id, its output, kind).
const QUEUES: [(&str, &str, QueueKind); 4] = [
    ("SagaDLQ", "SagaDLQUrl", QueueKind::Saga),
    ("OrdersOutboxRelayDLQ", "OrdersOutboxRelayDLQUrl", QueueKind::Relay),
    ("InventoryOutboxRelayDLQ", "InventoryOutboxRelayDLQUrl", QueueKind::Relay),
    ("PaymentsOutboxRelayDLQ", "PaymentsOutboxRelayDLQUrl", QueueKind::Relay),
];
/// (table logical id, its output).
const TABLES: [(&str, &str); 3] = [
    ("OrdersTable", "OrdersTableName"),
    ("InventoryTable", "InventoryTableName"),
    ("PaymentsTable", "PaymentsTableName"),
];
const BUS: (&str, &str) = ("ShopEventBus", "EventBusName");
const ARCHIVE: &str = "ShopEventArchive";

/// The name the local host gives a resource of `stack` (SQS allows 80 characters).
pub fn local_name(stack: &str, logical_id: &str) -> String {
    let mut name = format!("{stack}-{logical_id}");
    name.truncate(80);
    name
}

impl Stack {
    /// A stack deployed with CloudFormation (`sam deploy`): `DescribeStacks`' outputs.
    pub async fn from_cloudformation(sdk: &SdkConfig, name: &str) -> Result<Self, Error> {
        let cfn = aws_sdk_cloudformation::Client::new(sdk);
        let described = cfn.describe_stacks().stack_name(name).send().await.map_err(Error::aws("DescribeStacks"))?;
        let stack = described.stacks().first().ok_or_else(|| Error::Stack(format!("no stack {name}")))?;
        let output = |key: &str| {
            stack
                .outputs()
                .iter()
                .find(|o| o.output_key() == Some(key))
                .and_then(|o| o.output_value())
                .map(str::to_owned)
                .ok_or_else(|| Error::Stack(format!("stack {name} has no output {key}")))
        };
        let mut queues = Vec::new();
        for (logical_id, key, kind) in QUEUES {
            queues.push(Queue { logical_id, url: output(key)?, kind });
        }
        let mut tables = Vec::new();
        for (logical_id, key) in TABLES {
            tables.push(Table { logical_id, name: output(key)? });
        }
        Ok(Self { name: name.to_owned(), bus: output(BUS.1)?, archive: None, queues, tables })
    }

    /// A stack of the local system (`make local`: stack `local`).
    pub async fn local(sdk: &SdkConfig, name: &str) -> Result<Self, Error> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let mut queues = Vec::new();
        for (logical_id, _, kind) in QUEUES {
            let queue_name = local_name(name, logical_id);
            let url = sqs.get_queue_url().queue_name(&queue_name).send().await.map_err(|e| {
                Error::Stack(format!(
                    "no queue {queue_name} ({}): is the local system of stack {name} running?",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                ))
            })?;
            queues.push(Queue { logical_id, url: url.queue_url().unwrap_or_default().to_owned(), kind });
        }
        let tables = TABLES.iter().map(|(id, _)| Table { logical_id: id, name: local_name(name, id) }).collect();
        let mut archive = local_name(name, ARCHIVE);
        archive.truncate(48);
        Ok(Self { name: name.to_owned(), bus: local_name(name, BUS.0), archive: Some(archive), queues, tables })
    }

    pub fn queue(&self, logical_id: &str) -> Option<&Queue> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }

    /// The logical id of the table named `name`.
    pub fn table_id(&self, name: &str) -> Option<&'static str> {
        self.tables.iter().find(|t| t.name == name).map(|t| t.logical_id)
    }
}

/// The SDK configuration: the environment's (credentials, region, `AWS_ENDPOINT_URL`). For the
/// local system without `AWS_ENDPOINT_URL`, the emulator `make local` recorded in
/// `<state_dir>/moto.json`, with the emulator's test credentials when none are set.
pub async fn sdk_config(local_state_dir: Option<&Path>) -> Result<SdkConfig, Error> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    let Some(state_dir) = local_state_dir else {
        return Ok(loader.load().await);
    };
    let endpoint = match std::env::var("AWS_ENDPOINT_URL").ok().filter(|v| !v.is_empty()) {
        Some(endpoint) => endpoint,
        None => {
            let path = state_dir.join("moto.json");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::Stack(format!(
                    "{}: {e}: start the local system (`make local`) or set AWS_ENDPOINT_URL",
                    path.display()
                ))
            })?;
            let saved: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::Stack(format!("{}: {e}", path.display())))?;
            saved["endpoint"]
                .as_str()
                .ok_or_else(|| Error::Stack(format!("{}: no endpoint", path.display())))?
                .to_owned()
        }
    };
    loader = loader.endpoint_url(endpoint);
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        loader = loader.region(aws_config::Region::new("us-east-1"));
    }
    if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        loader = loader
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "local"));
    }
    Ok(loader.load().await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_norway::Value;

    /// The stack's outputs shopctl reads are the template's, each the `!Ref` of the resource it
    /// stands for (a queue's URL, a table's or a bus's name), and the archive is declared.
    #[test]
    fn every_output_shopctl_reads_is_the_template_s_ref_of_its_resource() {
        let template: Value = serde_norway::from_str(include_str!("../../../template.yaml")).unwrap();
        let wanted = QUEUES.iter().map(|(id, key, _)| (*id, *key)).chain(TABLES).chain([BUS]);
        for (logical_id, key) in wanted {
            let value = &template["Outputs"][key]["Value"];
            assert_eq!(local_aws::referenced(value), Some(logical_id), "output {key}: {value:?}");
            assert!(matches!(value, Value::Tagged(t) if t.tag == "Ref"), "output {key} is the Ref of {logical_id}");
        }
        assert_eq!(template["Resources"][ARCHIVE]["Type"].as_str(), Some("AWS::Events::Archive"));
    }

    #[test]
    fn local_names_are_the_local_host_s() {
        assert_eq!(local_name("local", "SagaDLQ"), "local-SagaDLQ");
        assert_eq!(local_name(&"s".repeat(90), "SagaDLQ").len(), 80, "SQS's limit");
    }
}
