//! Field checks used by more than one service, reported as RFC 9457 invalid params.

use crate::InvalidParam;

/// Longest identifier (sku, customer id, ...) any service accepts.
pub const MAX_ID_LEN: usize = 64;

/// An identifier: non-empty, at most [`MAX_ID_LEN`] characters, no control characters.
pub fn check_identifier(name: &str, value: &str, violations: &mut Vec<InvalidParam>) {
    if value.trim().is_empty() {
        violations.push(InvalidParam::new(name, "must not be empty"));
    } else if value.chars().count() > MAX_ID_LEN {
        violations.push(InvalidParam::new(name, format!("must be at most {MAX_ID_LEN} characters")));
    } else if value.chars().any(char::is_control) {
        violations.push(InvalidParam::new(name, "must not contain control characters"));
    }
}

/// Most lines in one order. An order is reserved in one DynamoDB transaction (at most 100 items,
/// `shared::aws::dynamo::MAX_TRANSACTION_ITEMS`, which checks this bound): one stock update per line,
/// plus the reservation and its outbox event.
pub const MAX_ORDER_LINES: usize = 98;

/// Largest quantity of one sku in one order line.
pub const MAX_QUANTITY: u32 = 1000;

/// Checks order lines given as `(sku, quantity)`: 1 to `max_lines` lines, each sku an
/// identifier, each quantity 1 to [`MAX_QUANTITY`]. Fields are named `<field>`,
/// `<field>[i].sku` and `<field>[i].quantity`; `why_max` (may be empty) explains the line
/// limit. A sku on two lines is [`repeated_skus`]' business.
pub fn check_lines<'a>(
    field: &str,
    lines: impl ExactSizeIterator<Item = (&'a str, u32)>,
    max_lines: usize,
    why_max: &str,
    violations: &mut Vec<InvalidParam>,
) {
    if lines.len() == 0 || lines.len() > max_lines {
        violations.push(InvalidParam::new(field, format!("must hold 1 to {max_lines} lines{why_max}")));
    }
    for (i, (sku, quantity)) in lines.enumerate() {
        check_identifier(&format!("{field}[{i}].sku"), sku, violations);
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            violations.push(InvalidParam::new(
                format!("{field}[{i}].quantity"),
                format!("must be between 1 and {MAX_QUANTITY}"),
            ));
        }
    }
}

/// Every line whose sku an earlier line already has, named `<field>[i].sku`. Kept apart from
/// [`check_lines`] because it is a rule across lines, which a schema cannot state (JSON Schema's
/// `uniqueItems` compares whole lines): the public API answers it with 422, not 400.
pub fn repeated_skus<'a>(field: &str, skus: impl Iterator<Item = &'a str>) -> Vec<InvalidParam> {
    let mut seen = std::collections::HashSet::new();
    skus.enumerate()
        .filter(|(_, sku)| !seen.insert(*sku))
        .map(|(i, sku)| {
            InvalidParam::new(format!("{field}[{i}].sku"), format!("duplicate sku `{sku}`; send one line per sku"))
        })
        .collect()
}
