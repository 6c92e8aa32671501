//! Ids every service reads in the same form.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An order id: a UUID (v7 for new orders, so ids sort by creation time).
///
/// Read in its canonical hyphenated spelling only, wherever it is read (an HTTP path, the data of
/// a command or an event, a stored item): every service accepts the same ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderId(Uuid);

impl OrderId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the canonical hyphenated form only, so an id has exactly one spelling (hex digits
    /// in either case). Of the forms `uuid` reads, the hyphenated one alone is 36 characters long
    /// (simple 32, braced 38, URN 45), and `uuid` checks where its hyphens are.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() != 36 {
            return None;
        }
        Uuid::try_parse(raw).ok().map(Self)
    }
}

impl<'de> Deserialize<'de> for OrderId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw)
            .ok_or_else(|| de::Error::invalid_value(Unexpected::Str(&raw), &"an order id (a UUID, hyphenated)"))
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_id_has_one_spelling() {
        let id = OrderId::new();
        let text = id.to_string();
        assert_eq!(OrderId::parse(&text), Some(id));
        assert_eq!(OrderId::parse(&text.to_ascii_uppercase()), Some(id), "hex digits in either case");
        assert_eq!(OrderId::parse(&text.replace('-', "")), None, "the simple form is another spelling");
        assert_eq!(OrderId::parse(&format!("{{{text}}}")), None, "so is the braced one");
        assert_eq!(OrderId::parse(&format!("urn:uuid:{text}")), None, "and the URN");
        assert_eq!(OrderId::parse("order-1"), None);
        let moved = format!("{}-{}", &text[..7], text[7..].replacen('-', "", 1));
        assert_eq!((moved.len(), OrderId::parse(&moved)), (36, None), "a hyphen out of place: {moved}");
        let thirty_six = format!("{}-abc", text.replace('-', ""));
        assert_eq!((thirty_six.len(), OrderId::parse(&thirty_six)), (36, None), "36 characters, one hyphen");
    }

    #[test]
    fn an_order_id_reads_from_json_as_it_parses() {
        let id = OrderId::new();
        let read: OrderId = serde_json::from_value(serde_json::json!(id.to_string())).unwrap();
        assert_eq!(read, id);
        assert_eq!(serde_json::to_value(id).unwrap(), serde_json::json!(id.to_string()));
        for other in [id.to_string().replace('-', ""), format!("{{{id}}}"), "o-1".to_owned(), String::new()] {
            let err = serde_json::from_value::<OrderId>(serde_json::json!(other)).unwrap_err();
            assert!(err.to_string().contains("an order id"), "{other:?}: {err}");
        }
        assert!(serde_json::from_value::<OrderId>(serde_json::json!(7)).is_err());
    }

    #[test]
    fn new_order_ids_are_v7_and_sort_by_creation_time() {
        let (a, b) = (OrderId::new(), OrderId::new());
        assert_eq!(a.0.get_version_num(), 7);
        assert!(a < b);
    }
}
