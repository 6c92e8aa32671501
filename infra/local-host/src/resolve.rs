//! What the template's intrinsic functions mean locally: `!Ref` and `!GetAtt` of the resources
//! the host created in moto, and of the parameters (their defaults, or local overrides).

use std::collections::BTreeMap;

use serde_norway::Value;

use crate::Error;

pub(crate) const REGION: &str = "us-east-1";
pub(crate) const ACCOUNT: &str = "123456789012";

/// A resource the host created, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Physical {
    Table {
        name: String,
        stream_arn: Option<String>,
    },
    Bus {
        name: String,
    },
    Queue {
        url: String,
        arn: String,
        name: String,
    },
    Secret {
        arn: String,
    },
    StateMachine {
        arn: String,
        name: String,
    },
    /// An HTTP API: locally, the host's own port serves every API's routes.
    HttpApi {
        id: String,
        endpoint: String,
    },
}

impl Physical {
    fn reference(&self) -> String {
        match self {
            Physical::Table { name, .. } | Physical::Bus { name } => name.clone(),
            Physical::Queue { url, .. } => url.clone(),
            Physical::Secret { arn } | Physical::StateMachine { arn, .. } => arn.clone(),
            Physical::HttpApi { id, .. } => id.clone(),
        }
    }

    fn attribute(&self, attribute: &str) -> Option<String> {
        Some(match (self, attribute) {
            (Physical::Table { name, .. }, "Arn") => format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"),
            (Physical::Table { stream_arn, .. }, "StreamArn") => stream_arn.clone()?,
            (Physical::Bus { name }, "Arn") => format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}"),
            (Physical::Bus { name }, "Name") => name.clone(),
            (Physical::Queue { arn, .. }, "Arn") => arn.clone(),
            (Physical::Queue { name, .. }, "QueueName") => name.clone(),
            (Physical::Queue { url, .. }, "QueueUrl") => url.clone(),
            (Physical::StateMachine { arn, .. }, "Arn") => arn.clone(),
            (Physical::StateMachine { name, .. }, "Name") => name.clone(),
            (Physical::HttpApi { endpoint, .. }, "ApiEndpoint") => endpoint.clone(),
            _ => return None,
        })
    }
}

/// Parameters and created resources by logical id.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    /// The stack's name (`AWS::StackName`), the prefix of every physical name.
    pub stack: String,
    pub parameters: BTreeMap<String, String>,
    pub resources: BTreeMap<String, Physical>,
}

impl Resolver {
    pub fn physical(&self, logical_id: &str) -> Result<&Physical, Error> {
        self.resources
            .get(logical_id)
            .ok_or_else(|| Error::Setup(format!("`{logical_id}` is not a resource the local host creates")))
    }

    fn reference(&self, logical_id: &str) -> Result<String, Error> {
        if let Some(value) = self.parameters.get(logical_id) {
            return Ok(value.clone());
        }
        match logical_id {
            "AWS::Region" => Ok(REGION.into()),
            "AWS::AccountId" => Ok(ACCOUNT.into()),
            "AWS::Partition" => Ok("aws".into()),
            "AWS::StackName" => Ok(self.stack.clone()),
            "AWS::URLSuffix" => Ok("amazonaws.com".into()),
            _ => Ok(self.physical(logical_id)?.reference()),
        }
    }

    fn get_att(&self, logical_id: &str, attribute: &str) -> Result<String, Error> {
        self.physical(logical_id)?
            .attribute(attribute)
            .ok_or_else(|| Error::Setup(format!("`{logical_id}.{attribute}` has no local value")))
    }

    /// The local value of a template value: a scalar, `!Ref`, `!GetAtt` or `!Sub`.
    pub fn resolve(&self, value: &Value) -> Result<String, Error> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                match (tag.trim_start_matches('!'), &tagged.value) {
                    ("Ref", Value::String(id)) => self.reference(id),
                    ("GetAtt", Value::String(path)) => {
                        let (id, attribute) = path
                            .split_once('.')
                            .ok_or_else(|| Error::Setup(format!("!GetAtt {path} names no attribute")))?;
                        self.get_att(id, attribute)
                    }
                    ("GetAtt", Value::Sequence(parts)) if parts.len() == 2 => {
                        self.get_att(parts[0].as_str().unwrap_or_default(), parts[1].as_str().unwrap_or_default())
                    }
                    ("Sub", Value::String(text)) => self.substitute(text),
                    _ => Err(Error::Setup(format!("{tag} is not supported locally"))),
                }
            }
            Value::Mapping(map) => {
                if let Some(id) = map.get("Ref").and_then(Value::as_str) {
                    return self.reference(id);
                }
                if let Some(Value::Sequence(parts)) = map.get("Fn::GetAtt") {
                    return self.get_att(
                        parts.first().and_then(Value::as_str).unwrap_or_default(),
                        parts.get(1).and_then(Value::as_str).unwrap_or_default(),
                    );
                }
                Err(Error::Setup(format!("{value:?} is not supported locally")))
            }
            other => Err(Error::Setup(format!("{other:?} is not supported locally"))),
        }
    }

    /// `!Sub` with `${Name}` and `${Name.Attr}` placeholders.
    fn substitute(&self, text: &str) -> Result<String, Error> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').ok_or_else(|| Error::Setup(format!("unclosed ${{ in {text}")))?;
            let name = &rest[start + 2..start + end];
            out.push_str(&match name.split_once('.') {
                Some((id, attribute)) => self.get_att(id, attribute)?,
                None => self.reference(name)?,
            });
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_norway::from_str(text).unwrap()
    }

    #[test]
    fn refs_getatts_and_subs_resolve_to_local_names_and_parameters() {
        let mut resolver = Resolver::default();
        resolver.parameters.insert("Stage".into(), "local".into());
        resolver.resources.insert("T".into(), Physical::Table { name: "t-1".into(), stream_arn: Some("s".into()) });
        resolver.resources.insert("Q".into(), Physical::Queue { url: "u".into(), arn: "a".into(), name: "q".into() });
        assert_eq!(resolver.resolve(&yaml("!Ref T")).unwrap(), "t-1");
        assert_eq!(resolver.resolve(&yaml("!GetAtt T.StreamArn")).unwrap(), "s");
        assert_eq!(resolver.resolve(&yaml("!GetAtt Q.Arn")).unwrap(), "a");
        assert_eq!(resolver.resolve(&yaml("{Ref: Stage}")).unwrap(), "local");
        assert_eq!(
            resolver.resolve(&yaml("!Sub shop-${Stage}-${T.Arn}")).unwrap(),
            "shop-local-arn:aws:dynamodb:us-east-1:123456789012:table/t-1"
        );
        assert_eq!(resolver.resolve(&yaml("\"8000\"")).unwrap(), "8000");
        assert!(resolver.resolve(&yaml("!Ref Nope")).unwrap_err().to_string().contains("Nope"));
        assert!(resolver.resolve(&yaml("!GetAtt Q.Colour")).is_err());
    }
}
