//! Provisioning from the template: every table, bus, event archive, queue, secret and state machine, under
//! names derived from the stack (`<stack>-<LogicalId>`). A resource that already exists under its
//! name is found and used, not created again: a host restarted against the same emulator carries
//! on with the data, the messages and the executions it left.

use std::collections::BTreeMap;
use std::sync::Mutex;

use aws_config::SdkConfig;
use local_aws::{Moto, Template};
use serde_json::Value;
use serde_norway::Value as Yaml;

use crate::resolve::{Physical, Resolver};
use crate::{Error, sdk_setup, setup};

/// The secret holding the provider's API key: the simulator accepts the key generated into it.
pub const PROVIDER_SECRET: &str = "PaymentProviderSecret";

/// The physical name of a resource of `stack` (SQS allows 80 characters).
pub fn physical_name(stack: &str, logical_id: &str) -> String {
    let mut name = format!("{stack}-{logical_id}");
    name.truncate(80);
    name
}

/// The name of an event archive of `stack` (EventBridge allows 48 characters).
pub fn archive_name(stack: &str, logical_id: &str) -> String {
    let mut name = physical_name(stack, logical_id);
    name.truncate(48);
    name
}

/// What provisioning found: how many resources existed already (0 on a fresh emulator).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Provisioned {
    pub found: usize,
    pub created: usize,
}

/// Parameter values: the template's defaults, then the overrides.
pub fn parameters(
    template: &Template,
    overrides: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Error> {
    let mut values = BTreeMap::new();
    for (name, parameter) in &template.parameters {
        if let Some(default) = parameter.get("Default") {
            values.insert(name.clone(), Resolver::default().resolve(default)?);
        }
    }
    values.extend(overrides.clone());
    Ok(values)
}

impl Provisioned {
    fn tally(&mut self, found: bool) {
        if found { self.found += 1 } else { self.created += 1 }
    }
}

/// Finds or creates every resource of a kind the host knows, in dependency order.
pub async fn provision(moto: &Moto, template: &Template, resolver: &mut Resolver) -> Result<Provisioned, Error> {
    let sdk = moto.sdk_config();
    let mut provisioner = Provisioner { moto, sdk, template, resolver, count: Provisioned::default() };
    provisioner.tables().await?;
    provisioner.buses().await?;
    provisioner.archives().await?;
    provisioner.queues().await?;
    provisioner.secrets().await?;
    provisioner.state_machines().await?;
    Ok(provisioner.count)
}

/// One provisioning run: what it reads, where it records each resource, and its tally.
struct Provisioner<'a> {
    moto: &'a Moto,
    sdk: SdkConfig,
    template: &'a Template,
    resolver: &'a mut Resolver,
    count: Provisioned,
}

impl Provisioner<'_> {
    async fn tables(&mut self) -> Result<(), Error> {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.sdk);
        for (id, _) in self.template.resources_of_type("AWS::DynamoDB::Table") {
            let name = physical_name(&self.resolver.stack, id);
            let existing = dynamodb.describe_table().table_name(&name).send().await.ok();
            self.count.tally(existing.is_some());
            if existing.is_none() {
                self.moto.create_table(&self.template.table(id)?, &name).await?;
            }
            let description = dynamodb.describe_table().table_name(&name).send().await;
            let stream_arn = description.ok().and_then(|d| d.table?.latest_stream_arn);
            self.resolver.resources.insert(id.to_owned(), Physical::Table { name, stream_arn });
        }
        Ok(())
    }

    async fn buses(&mut self) -> Result<(), Error> {
        let events = aws_sdk_eventbridge::Client::new(&self.sdk);
        for (id, _) in self.template.resources_of_type("AWS::Events::EventBus") {
            let name = physical_name(&self.resolver.stack, id);
            let existing = events.describe_event_bus().name(&name).send().await.is_ok();
            self.count.tally(existing);
            if !existing {
                self.moto.create_bus(&name).await?;
            }
            self.resolver.resources.insert(id.to_owned(), Physical::Bus { name });
        }
        Ok(())
    }

    async fn archives(&mut self) -> Result<(), Error> {
        let events = aws_sdk_eventbridge::Client::new(&self.sdk);
        for (id, resource) in self.template.resources_of_type("AWS::Events::Archive") {
            let name = archive_name(&self.resolver.stack, id);
            let existing = events.describe_archive().archive_name(&name).send().await.is_ok();
            self.count.tally(existing);
            if existing {
                continue;
            }
            let source = self.resolver.resolve(resource.properties.get("SourceArn").unwrap_or(&Yaml::Null))?;
            let days = resource.properties.get("RetentionDays").and_then(Yaml::as_i64).unwrap_or(0);
            // The template's pattern (the shop's archive leaves out the saga's commands).
            let pattern = match resource.properties.get("EventPattern") {
                Some(pattern) => Some(
                    serde_json::to_string(pattern)
                        .map_err(|e| Error::Setup(format!("archive {id}: EventPattern: {e}")))?,
                ),
                None => None,
            };
            events
                .create_archive()
                .archive_name(&name)
                .event_source_arn(source)
                .set_event_pattern(pattern)
                .retention_days(days as i32)
                .send()
                .await
                .map_err(sdk_setup("CreateArchive"))?;
        }
        Ok(())
    }

    async fn queues(&mut self) -> Result<(), Error> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        for (id, _) in self.template.resources_of_type("AWS::SQS::Queue") {
            let name = physical_name(&self.resolver.stack, id);
            // CreateQueue returns the existing queue of that name when its attributes agree.
            let existing = sqs.get_queue_url().queue_name(&name).send().await.is_ok();
            self.count.tally(existing);
            let url = sqs.create_queue().queue_name(&name).send().await.map_err(setup("CreateQueue"))?.queue_url;
            let url = url.unwrap_or_default();
            let arn = local_aws::tap::queue_arn(&sqs, &url).await?;
            self.resolver.resources.insert(id.to_owned(), Physical::Queue { url, arn, name });
        }
        Ok(())
    }

    async fn secrets(&mut self) -> Result<(), Error> {
        let secrets = aws_sdk_secretsmanager::Client::new(&self.sdk);
        for (id, resource) in self.template.resources_of_type("AWS::SecretsManager::Secret") {
            let name = physical_name(&self.resolver.stack, id);
            let found = secrets.describe_secret().secret_id(&name).send().await.ok();
            self.count.tally(found.is_some());
            let arn = match found {
                Some(found) => found.arn,
                None => {
                    let value = secret_value(&resource.properties)?;
                    let created = secrets
                        .create_secret()
                        .name(&name)
                        .secret_string(value)
                        .send()
                        .await
                        .map_err(sdk_setup("CreateSecret"))?;
                    created.arn
                }
            };
            self.resolver.resources.insert(id.to_owned(), Physical::Secret { arn: arn.unwrap_or_default() });
        }
        Ok(())
    }

    async fn state_machines(&mut self) -> Result<(), Error> {
        let sfn = aws_sdk_sfn::Client::new(&self.sdk);
        for (id, _) in self.template.resources_of_type("AWS::Serverless::StateMachine") {
            let definition = state_machine_definition(self.template, id, self.resolver)?;
            let name = physical_name(&self.resolver.stack, id);
            let machines = sfn.list_state_machines().send().await.map_err(setup("ListStateMachines"))?;
            let existing =
                machines.state_machines().iter().find(|m| m.name() == name).map(|m| m.state_machine_arn().to_owned());
            self.count.tally(existing.is_some());
            let arn = match existing {
                Some(arn) => {
                    // The ASL may have changed since: the new definition applies to new executions.
                    sfn.update_state_machine()
                        .state_machine_arn(&arn)
                        .definition(&definition)
                        .send()
                        .await
                        .map_err(sdk_setup("UpdateStateMachine"))?;
                    arn
                }
                None => self.moto.create_state_machine(&name, &definition).await?,
            };
            self.resolver.resources.insert(id.to_owned(), Physical::StateMachine { arn, name });
        }
        Ok(())
    }
}

fn state_machine_definition(template: &Template, id: &str, resolver: &Resolver) -> Result<String, Error> {
    let spec = template.state_machine(id)?;
    let failure = Mutex::new(None);
    let definition = spec.definition(|name, value| match resolver.resolve(value) {
        Ok(v) => Some(v),
        Err(e) => {
            *failure.lock().unwrap() = Some(format!("{id}.DefinitionSubstitutions.{name}: {e}"));
            None
        }
    });
    definition.map_err(|e| Error::Setup(failure.into_inner().unwrap().unwrap_or_else(|| e.to_string())))
}

/// The initial value of a secret: its `SecretString`, or what `GenerateSecretString` describes.
fn secret_value(properties: &Yaml) -> Result<String, Error> {
    if let Some(value) = properties.get("SecretString").and_then(Yaml::as_str) {
        return Ok(value.to_owned());
    }
    let Some(generate) = properties.get("GenerateSecretString") else {
        return Ok(String::new());
    };
    let length = generate.get("PasswordLength").and_then(Yaml::as_u64).unwrap_or(32) as usize;
    let mut rng = fastrand::Rng::new();
    let random: String = (0..length).map(|_| rng.alphanumeric()).collect();
    match (
        generate.get("SecretStringTemplate").and_then(Yaml::as_str),
        generate.get("GenerateStringKey").and_then(Yaml::as_str),
    ) {
        (Some(template), Some(key)) => {
            let mut object: serde_json::Map<String, Value> =
                serde_json::from_str(template).map_err(setup("SecretStringTemplate"))?;
            object.insert(key.to_owned(), Value::String(format!("sk_test_{random}")));
            Ok(Value::Object(object).to_string())
        }
        _ => Ok(random),
    }
}

/// The API key in the provider secret, which the simulator will accept.
pub async fn provider_key(sdk: &SdkConfig, resolver: &Resolver) -> Result<String, Error> {
    let Ok(Physical::Secret { arn }) = resolver.physical(PROVIDER_SECRET) else {
        return Ok("sk_test_local".into());
    };
    let key = payments::adapters::stripe::ApiKey::from_secrets_manager(&aws_sdk_secretsmanager::Client::new(sdk), arn)
        .await
        .map_err(setup("provider secret"))?;
    Ok(key.expose().to_owned())
}
