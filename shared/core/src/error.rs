//! The error every check reports: one invalid field, as RFC 9457's `invalid-params` lists them.
//! The HTTP layer (`shared::http::problem`) turns a list of them into a problem document.
//!
//! And what a failure of something behind a port keeps: the error itself ([`Cause`]), rendered
//! with its sources ([`chain`]) wherever it is reported.

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

/// The error a backing service (a table, a stream, a provider) failed with, kept whole: a store
/// error's `#[source]`. A message alone converts too (`"no item came back".into()`).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `err` and each of its sources, `outer: inner: innermost`, leaving out a source whose text
/// the message before already shows. The SDK's errors say little at the top (`service error`)
/// and the useful part (`ValidationException: ...`) down the chain; Lambda reports a handler's
/// error by its message alone, so the store errors show their cause's chain in their message.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn a_chain_shows_every_source_once() {
        let innermost = Layer("ValidationException: no such table", None);
        let err = Layer("service error", Some(Box::new(Layer("unhandled error", Some(Box::new(innermost))))));
        assert_eq!(chain(&err), "service error: unhandled error: ValidationException: no such table");
        let repeats = Layer("dispatch failure: io: refused", Some(Box::new(Layer("io: refused", None))));
        assert_eq!(chain(&repeats), "dispatch failure: io: refused", "a source already in the message");
        let cause: Cause = "no item came back".into();
        assert_eq!(chain(cause.as_ref()), "no item came back");
    }
}
