//! Reads `template.yaml` (AWS SAM / CloudFormation) so that local resources are created from the
//! same declarations that are deployed. Intrinsic functions (`!Ref`, `!Sub`, ...) parse as
//! tagged values and are only resolved where the local side needs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use serde::Deserialize;
use serde_norway::Value;

use crate::{Error, project_root};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resource {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default)]
    pub properties: Value,
    #[serde(default)]
    pub metadata: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Template {
    #[serde(default)]
    pub parameters: BTreeMap<String, Value>,
    /// `Conditions`: name to its intrinsic (`!Equals`, `!Not`, ...), unevaluated.
    #[serde(default)]
    pub conditions: BTreeMap<String, Value>,
    pub resources: BTreeMap<String, Resource>,
}

impl Template {
    pub fn parse(yaml: &str) -> Result<Self, Error> {
        serde_norway::from_str(yaml).map_err(|e| Error::Template(format!("not a valid template: {e}")))
    }

    pub fn load(path: &Path) -> Result<Self, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Template(format!("reading {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// The project's own `template.yaml`.
    pub fn load_project() -> Result<Self, Error> {
        Self::load(&project_root().join("template.yaml"))
    }

    pub fn resource(&self, logical_id: &str) -> Result<&Resource, Error> {
        self.resources
            .get(logical_id)
            .ok_or_else(|| Error::Template(format!("no resource `{logical_id}` in the template")))
    }

    /// Logical ids of the resources of one type, e.g. `AWS::DynamoDB::Table`.
    pub fn resources_of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Resource)> + 'a {
        self.resources.iter().filter(move |(_, r)| r.kind == kind).map(|(id, r)| (id.as_str(), r))
    }

    /// Every `EventBridgeRule` event of every `AWS::Serverless::Function`: which function a rule
    /// invokes, and the rule's pattern as JSON.
    pub fn event_rules(&self) -> Result<Vec<FunctionRule>, Error> {
        let mut rules = Vec::new();
        for (function, resource) in self.resources_of_type("AWS::Serverless::Function") {
            let Some(events) = resource.properties.get("Events").and_then(Value::as_mapping) else { continue };
            for (name, event) in events {
                if event.get("Type").and_then(Value::as_str) != Some("EventBridgeRule") {
                    continue;
                }
                let name = name.as_str().unwrap_or_default().to_owned();
                let pattern = event.get("Properties").and_then(|p| p.get("Pattern")).ok_or_else(|| {
                    Error::Template(format!("{function}.{name}: an EventBridgeRule without a Pattern"))
                })?;
                let pattern = serde_json::to_value(pattern)
                    .map_err(|e| Error::Template(format!("{function}.{name}: pattern is not JSON: {e}")))?;
                rules.push(FunctionRule { function: function.to_owned(), event: name, pattern });
            }
        }
        Ok(rules)
    }

    /// The declaration of an `AWS::Serverless::StateMachine` with a `DefinitionUri` file.
    pub fn state_machine(&self, logical_id: &str) -> Result<StateMachineSpec, Error> {
        let resource = self.resource(logical_id)?;
        if resource.kind != "AWS::Serverless::StateMachine" {
            return Err(Error::Template(format!("`{logical_id}` is a {}, not a state machine", resource.kind)));
        }
        let uri = resource
            .properties
            .get("DefinitionUri")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Template(format!("`{logical_id}` has no local DefinitionUri")))?;
        let substitutions = match resource.properties.get("DefinitionSubstitutions") {
            Some(Value::Mapping(map)) => {
                map.iter().filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone()))).collect()
            }
            _ => BTreeMap::new(),
        };
        Ok(StateMachineSpec { definition_uri: project_root().join(uri), substitutions })
    }

    /// The declaration of a DynamoDB table.
    pub fn table(&self, logical_id: &str) -> Result<TableSpec, Error> {
        let resource = self.resource(logical_id)?;
        if resource.kind != "AWS::DynamoDB::Table" {
            return Err(Error::Template(format!("`{logical_id}` is a {}, not a table", resource.kind)));
        }
        serde_norway::from_value(resource.properties.clone())
            .map_err(|e| Error::Template(format!("table `{logical_id}`: {e}")))
    }
}

/// A function invoked by an EventBridge rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionRule {
    /// The function's logical id.
    pub function: String,
    /// The event's name under the function's `Events`.
    pub event: String,
    pub pattern: serde_json::Value,
}

/// A state machine's definition file and its `DefinitionSubstitutions`.
#[derive(Debug, Clone)]
pub struct StateMachineSpec {
    pub definition_uri: PathBuf,
    pub substitutions: BTreeMap<String, Value>,
}

/// The logical id a value refers to: `!Ref X`, `{Ref: X}` or `!GetAtt X.Attr`.
pub fn referenced(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" || tagged.tag == "GetAtt" => {
            tagged.value.as_str().map(|s| s.split('.').next().unwrap_or(s))
        }
        Value::Mapping(map) => map.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}

impl StateMachineSpec {
    /// The definition with each `${Name}` replaced by `resolve(Name, declared value)`, as
    /// CloudFormation does at deploy time. A placeholder left unresolved is an error.
    pub fn definition(&self, resolve: impl Fn(&str, &Value) -> Option<String>) -> Result<String, Error> {
        let mut text = std::fs::read_to_string(&self.definition_uri)
            .map_err(|e| Error::Template(format!("reading {}: {e}", self.definition_uri.display())))?;
        for (name, value) in &self.substitutions {
            let resolved = resolve(name, value)
                .ok_or_else(|| Error::Template(format!("no local value for the substitution `{name}`")))?;
            text = text.replace(&format!("${{{name}}}"), &resolved);
        }
        if let Some(start) = text.find("${") {
            let end = text[start..].find('}').map_or(text.len(), |e| start + e + 1);
            return Err(Error::Template(format!("{} is not declared in DefinitionSubstitutions", &text[start..end])));
        }
        Ok(text)
    }
}

/// The parts of `AWS::DynamoDB::Table` properties that shape the table locally. Billing,
/// encryption and recovery settings have no local meaning and are ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableSpec {
    pub attribute_definitions: Vec<AttributeDef>,
    pub key_schema: Vec<KeyElement>,
    #[serde(default)]
    pub global_secondary_indexes: Vec<IndexSpec>,
    pub stream_specification: Option<StreamSpec>,
    pub time_to_live_specification: Option<TtlSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDef {
    pub attribute_name: String,
    pub attribute_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyElement {
    pub attribute_name: String,
    pub key_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexSpec {
    pub index_name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection: ProjectionSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectionSpec {
    pub projection_type: String,
    #[serde(default)]
    pub non_key_attributes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSpec {
    pub stream_view_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtlSpec {
    pub attribute_name: String,
    pub enabled: bool,
}

fn keys(elements: &[KeyElement]) -> Result<Vec<KeySchemaElement>, Error> {
    elements
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(Error::aws)
        })
        .collect()
}

impl TableSpec {
    pub async fn create(&self, client: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), Error> {
        let mut request = client.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest);
        for attribute in &self.attribute_definitions {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(&attribute.attribute_name)
                    .attribute_type(ScalarAttributeType::from(attribute.attribute_type.as_str()))
                    .build()
                    .map_err(Error::aws)?,
            );
        }
        request = request.set_key_schema(Some(keys(&self.key_schema)?));
        for index in &self.global_secondary_indexes {
            let projection = Projection::builder()
                .projection_type(ProjectionType::from(index.projection.projection_type.as_str()))
                .set_non_key_attributes(
                    (!index.projection.non_key_attributes.is_empty())
                        .then(|| index.projection.non_key_attributes.clone()),
                )
                .build();
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&index.index_name)
                    .set_key_schema(Some(keys(&index.key_schema)?))
                    .projection(projection)
                    .build()
                    .map_err(Error::aws)?,
            );
        }
        if let Some(stream) = &self.stream_specification {
            request = request.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(stream.stream_view_type.as_str()))
                    .build()
                    .map_err(Error::aws)?,
            );
        }
        request.send().await.map_err(Error::aws)?;
        if let Some(ttl) = &self.time_to_live_specification {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(&ttl.attribute_name)
                        .enabled(ttl.enabled)
                        .build()
                        .map_err(Error::aws)?,
                )
                .send()
                .await
                .map_err(Error::aws)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_orders_table_from_the_project_template() {
        let template = Template::load_project().unwrap();
        let table = template.table("OrdersTable").unwrap();
        assert_eq!(table.key_schema.len(), 2);
        assert_eq!(table.global_secondary_indexes[0].index_name, "gsi1");
        assert_eq!(table.stream_specification.unwrap().stream_view_type, "NEW_IMAGE");
        assert_eq!(table.time_to_live_specification.unwrap().attribute_name, "expires_at");
    }

    #[test]
    fn intrinsic_functions_parse_and_wrong_lookups_are_named() {
        let template = Template::parse(
            "Resources:\n  Bus:\n    Type: AWS::Events::EventBus\n    Properties:\n      Name: !Sub shop-${Stage}\n",
        )
        .unwrap();
        assert_eq!(template.resources_of_type("AWS::Events::EventBus").count(), 1);
        let err = template.table("Bus").unwrap_err().to_string();
        assert!(err.contains("`Bus` is a AWS::Events::EventBus"), "{err}");
        let err = template.table("Nope").unwrap_err().to_string();
        assert!(err.contains("no resource `Nope`"), "{err}");
    }
}
