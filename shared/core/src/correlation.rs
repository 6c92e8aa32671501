//! Correlation ids: one id follows a customer's request through every function, event and
//! saga step, so one search in the logs shows the whole story.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The HTTP header that carries the correlation id in and out.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

const MAX_LEN: usize = 128;

/// A correlation id: 1 to 128 visible ASCII characters. Anything else from a client is replaced
/// by a fresh id rather than trusted into our logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CorrelationId(String);

impl CorrelationId {
    pub fn generate() -> Self {
        Self(Uuid::now_v7().to_string())
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty() && raw.len() <= MAX_LEN && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(raw.to_owned()))
    }

    /// The client's id when it is acceptable, otherwise a new one.
    pub fn from_header_or_new(raw: Option<&str>) -> Self {
        raw.and_then(Self::parse).unwrap_or_else(Self::generate)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CorrelationId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| format!("invalid correlation id `{value}`"))
    }
}

impl From<CorrelationId> for String {
    fn from(value: CorrelationId) -> Self {
        value.0
    }
}

/// 1 to 128 visible ASCII characters, as [`CorrelationId::parse`] accepts.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for CorrelationId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CorrelationId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Follows a customer's request through every function, event and saga step.",
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_LEN,
            "pattern": "^[!-~]+$",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_sane_client_id_and_replaces_a_hostile_one() {
        assert_eq!(CorrelationId::from_header_or_new(Some("abc-123")).as_str(), "abc-123");
        for bad in ["", "has space", "new\nline", &"x".repeat(129)] {
            let id = CorrelationId::from_header_or_new(Some(bad));
            assert_ne!(id.as_str(), bad);
            assert!(Uuid::parse_str(id.as_str()).is_ok());
        }
    }
}
