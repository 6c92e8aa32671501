//! Event patterns, as EventBridge rules and Lambda's event filtering read them, through
//! [`quamina`] (a port of the matcher EventBridge's pattern language comes from): exact values,
//! `prefix`, `suffix`, `wildcard`, `anything-but`, `numeric`, `exists`, `equals-ignore-case`, at
//! any depth; and `$or`, which quamina lacks, as the disjunction it is: a pattern with `$or` is
//! added as one pattern per alternative
//! (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html#eb-filtering-complex-example-or>).
//!
//! Lambda keeps a record when any of the trigger's `FilterCriteria.Filters` matches it, and
//! passes every record when there are none:
//! <https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html>.

use serde_json::Value;

/// A set of patterns; a JSON document matches when any of them does.
pub struct Filter {
    matcher: Option<quamina::Quamina<usize>>,
}

impl Filter {
    /// Compiles `patterns`; none means "everything matches". A pattern quamina refuses is an
    /// error naming it, at start-up, rather than a filter that silently matches nothing.
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a Value>) -> Result<Self, String> {
        let mut matcher = None;
        for (i, pattern) in patterns.into_iter().enumerate() {
            for alternative in alternatives(pattern) {
                let text = alternative.to_string();
                matcher
                    .get_or_insert_with(quamina::Quamina::new)
                    .add_pattern(i, &text)
                    .map_err(|e| format!("pattern {pattern}: {e}"))?;
            }
        }
        Ok(Self { matcher })
    }

    /// Whether `document` matches (a document quamina cannot read matches nothing).
    pub fn matches(&self, document: &Value) -> bool {
        match &self.matcher {
            None => true,
            Some(matcher) => matcher.has_matches(document.to_string().as_bytes()).unwrap_or(false),
        }
    }
}

/// The patterns without `$or` that together match what `pattern` matches: each `$or` (at any
/// level) is replaced by each of its alternatives in turn.
fn alternatives(pattern: &Value) -> Vec<Value> {
    let Value::Object(fields) = pattern else { return vec![pattern.clone()] };
    let mut out = vec![serde_json::Map::new()];
    for (key, value) in fields {
        let choices: Vec<(Option<String>, Value)> = match (key.as_str(), value) {
            // Each alternative's fields join the rest of this level.
            ("$or", Value::Array(options)) => options.iter().flat_map(alternatives).map(|v| (None, v)).collect(),
            (_, Value::Object(_)) => alternatives(value).into_iter().map(|v| (Some(key.clone()), v)).collect(),
            _ => vec![(Some(key.clone()), value.clone())],
        };
        out = out
            .into_iter()
            .flat_map(|partial| {
                choices.iter().map(move |(key, value)| {
                    let mut next = partial.clone();
                    match (key, value) {
                        (Some(key), value) => {
                            next.insert(key.clone(), value.clone());
                        }
                        (None, Value::Object(more)) => next.extend(more.clone()),
                        (None, _) => {}
                    }
                    next
                })
            })
            .collect();
    }
    out.into_iter().map(Value::Object).collect()
}

/// Whether `document` matches one pattern.
pub fn matches(pattern: &Value, document: &Value) -> bool {
    Filter::new([pattern]).is_ok_and(|f| f.matches(document))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(event_name: &str, entity: &str, available: i64) -> Value {
        json!({"eventName": event_name, "dynamodb": {"NewImage": {
            "entity": {"S": entity}, "available": {"N": available.to_string()}, "pk": {"S": "SKU#TEA-1"}}}})
    }

    #[test]
    fn exact_values_at_every_level_as_the_template_filters_use_them() {
        let outbox = json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"entity": {"S": ["OUTBOX"]}}}});
        let product = json!({"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"entity": {"S": ["PRODUCT"]}}}});
        assert!(matches(&outbox, &record("INSERT", "OUTBOX", 0)));
        assert!(!matches(&product, &record("INSERT", "OUTBOX", 0)));
        assert!(!matches(&json!({"missing": ["x"]}), &record("INSERT", "OUTBOX", 0)));
    }

    #[test]
    fn the_rest_of_the_pattern_language() {
        let doc = record("MODIFY", "PRODUCT", 3);
        let cases = [
            (json!({"dynamodb": {"NewImage": {"pk": {"S": [{"prefix": "SKU#"}]}}}}), true),
            (json!({"dynamodb": {"NewImage": {"pk": {"S": [{"suffix": "-1"}]}}}}), true),
            (json!({"dynamodb": {"NewImage": {"pk": {"S": [{"wildcard": "SKU#*-2"}]}}}}), false),
            (json!({"eventName": [{"anything-but": ["REMOVE"]}]}), true),
            (json!({"eventName": [{"anything-but": ["MODIFY"]}]}), false),
            // `exists` applies to leaves, as in EventBridge.
            (json!({"dynamodb": {"OldImage": {"entity": {"S": [{"exists": false}]}}}}), true),
            (json!({"dynamodb": {"NewImage": {"entity": {"S": [{"exists": true}]}}}}), true),
            (json!({"dynamodb": {"NewImage": {"entity": {"S": [{"exists": false}]}}}}), false),
            (json!({"eventName": [{"equals-ignore-case": "modify"}]}), true),
            (
                json!({"$or": [{"eventName": ["INSERT"]}, {"dynamodb": {"NewImage": {"entity": {"S": ["PRODUCT"]}}}}]}),
                true,
            ),
        ];
        for (pattern, expected) in cases {
            assert_eq!(matches(&pattern, &doc), expected, "{pattern}");
        }
    }

    #[test]
    fn or_alternatives_at_any_level() {
        let pattern = json!({"source": ["shop.saga"], "$or": [{"detail-type": ["A"]}, {"account": ["1"]}],
                             "detail": {"$or": [{"x": ["1"]}, {"y": ["2"]}]}});
        assert_eq!(alternatives(&pattern).len(), 4);
        let event = |dt: &str, detail: Value| json!({"source": "shop.saga", "detail-type": dt, "detail": detail});
        assert!(matches(&pattern, &event("A", json!({"y": "2"}))));
        assert!(!matches(&pattern, &event("B", json!({"y": "2"}))));
        assert!(!matches(&pattern, &event("A", json!({"z": "3"}))));
    }

    #[test]
    fn no_patterns_pass_everything_and_a_broken_pattern_is_refused() {
        assert!(Filter::new([]).unwrap().matches(&json!({"anything": 1})));
        assert!(Filter::new([&json!({"eventName": "INSERT"})]).is_err(), "values must be arrays");
    }

    /// Every pattern of template.yaml (functions' `EventBridgeRule` events, `AWS::Events::Rule`s
    /// and the archive's), through the matcher the host routes the bus with, against an event of
    /// each detail-type the shop puts on the bus: each matches exactly what it should.
    #[test]
    fn the_templates_rule_patterns_match_what_they_should_and_nothing_else() {
        let template = local_aws::template::Template::load_project().expect("template.yaml parses");
        let mut patterns: std::collections::BTreeMap<String, Value> = template
            .event_rules()
            .expect("the template's rules parse")
            .into_iter()
            .map(|r| (format!("{}.{}", r.function, r.event), r.pattern))
            .collect();
        for kind in ["AWS::Events::Rule", "AWS::Events::Archive"] {
            for (id, resource) in template.resources_of_type(kind) {
                let pattern = resource.properties.get("EventPattern").expect("a pattern");
                patterns.insert(id.to_owned(), serde_json::to_value(pattern).unwrap());
            }
        }
        let samples = [
            ("shop.orders", "OrderCreated"),
            ("shop.orders", "OrderConfirmed"),
            ("shop.orders", "OrderCancelled"),
            ("shop.inventory", "StockLow"),
            ("shop.saga", "ConfirmOrder"),
            ("shop.saga", "CancelOrder"),
            ("shop.saga", "ParkOrder"),
            ("shop.saga", "ReserveInventory"),
            ("shop.saga", "ReleaseInventory"),
            ("shop.saga", "ProcessPayment"),
            ("shop.saga", "RefundPayment"),
            ("shop.saga", "SagaCompensationFailed"),
            // A command's name from the wrong source is not a command.
            ("shop.orders", "ConfirmOrder"),
        ];
        let domain = ["shop.orders/OrderCreated", "shop.orders/OrderConfirmed", "shop.orders/OrderCancelled"];
        let expected: [(&str, Vec<&str>); 7] = [
            ("OrdersSagaStarterFunction.OrderCreated", vec!["shop.orders/OrderCreated"]),
            (
                "OrdersSagaWorkerFunction.Commands",
                vec!["shop.saga/ConfirmOrder", "shop.saga/CancelOrder", "shop.saga/ParkOrder"],
            ),
            ("InventorySagaWorkerFunction.Commands", vec!["shop.saga/ReserveInventory", "shop.saga/ReleaseInventory"]),
            (
                "InventoryOrderEventsFunction.OrderOutcomes",
                vec!["shop.orders/OrderConfirmed", "shop.orders/OrderCancelled"],
            ),
            ("PaymentsSagaWorkerFunction.Commands", vec!["shop.saga/ProcessPayment", "shop.saga/RefundPayment"]),
            ("SagaCompensationFailedRule", vec!["shop.saga/SagaCompensationFailed"]),
            // anything-but: every event but the saga's commands.
            ("ShopEventArchive", [&domain[..], &["shop.inventory/StockLow", "shop.orders/ConfirmOrder"]].concat()),
        ];
        assert_eq!(
            patterns.keys().collect::<Vec<_>>(),
            {
                let mut names: Vec<_> = expected.iter().map(|(n, _)| n.to_string()).collect();
                names.sort();
                names
            }
            .iter()
            .collect::<Vec<_>>(),
            "every pattern of the template is checked"
        );
        for (name, matching) in &expected {
            let filter = Filter::new([&patterns[*name]]).expect("quamina reads the template's pattern");
            for (source, detail_type) in samples {
                let event = json!({"version": "0", "id": "e-1", "detail-type": detail_type, "source": source,
                    "account": "123456789012", "time": "2026-11-27T10:00:00Z", "region": "us-east-1",
                    "resources": [], "detail": {"order_id": "o-1", "correlation_id": "c-1"}});
                let key = format!("{source}/{detail_type}");
                assert_eq!(filter.matches(&event), matching.contains(&key.as_str()), "{name} against {key}");
            }
        }
    }
}
