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
