//! The error every check reports: one invalid field, as RFC 9457's `invalid-params` lists them.
//! The HTTP layer (`shared::http::problem`) turns a list of them into a problem document.

use serde::{Deserialize, Serialize};

/// One invalid field, named by its JSON path (`items[2].quantity`), as in RFC 9457's example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

impl InvalidParam {
    pub fn new(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { name: name.into(), reason: reason.into() }
    }
}
