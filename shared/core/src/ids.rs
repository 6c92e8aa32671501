//! Ids every service reads in the same form.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An order id: a UUID (v7 for new orders, so ids sort by creation time).
///
/// Read in its hyphenated form only, wherever it is read (an HTTP path, the data of a command or
/// an event, a stored item): every service accepts the same ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderId(Uuid);

impl OrderId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the hyphenated form only (8-4-4-4-12 hex digits, in either case; it is written back
    /// in lower case), so an id has one spelling once read. Of the forms `uuid` reads, the hyphenated one alone is 36 characters long
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
        deserializer.deserialize_str(OrderIdVisitor)
    }
}

/// Reads an id from borrowed, transient or owned text alike, without copying it.
struct OrderIdVisitor;

impl de::Visitor<'_> for OrderIdVisitor {
    type Value = OrderId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an order id (a UUID, hyphenated)")
    }

    fn visit_str<E: de::Error>(self, raw: &str) -> Result<OrderId, E> {
        // The refused text goes into error messages (a task's cause, a DLQ entry): 64
        // characters of it say enough.
        let shown = raw.char_indices().nth(64).map_or(raw, |(end, _)| &raw[..end]);
        OrderId::parse(raw).ok_or_else(|| E::invalid_value(Unexpected::Str(shown), &self))
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
        let borrowed: OrderId = serde_json::from_str(&format!("\"{id}\"")).unwrap();
        assert_eq!(borrowed, id, "from text it can borrow");
        let long = "x".repeat(10_000);
        let err = serde_json::from_value::<OrderId>(serde_json::json!(long)).unwrap_err().to_string();
        assert!(err.len() < 200, "a refused id is shown cut short: {err}");
    }

    #[test]
    fn new_order_ids_are_v7_and_sort_by_creation_time() {
        let (a, b) = (OrderId::new(), OrderId::new());
        assert_eq!(a.0.get_version_num(), 7);
        assert!(a < b);
    }
}
