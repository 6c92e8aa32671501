//! What a conditional write did, the one answer every store port gives to it.
//!
//! The convention of the three services: a write whose condition no longer held (a version moved
//! on, a status changed, the item exists already) wrote nothing and answers `Ok`, with an outcome
//! the caller acts on (read again, or stop); an `Err` is the store failing, never a lost race.
//! A write with a single way to lose answers [`Conditional`]; one with several names them in an
//! enum of its own (inventory's `WriteOutcome`), and one that returns what it replaced answers
//! `Option` (payments' `take_lease`: `None`, nothing taken).

/// The outcome of a write with a condition: applied, or lost with nothing written.
#[must_use = "a lost write changed nothing: read again or stop"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditional {
    Applied,
    /// The condition no longer held: nothing was written.
    Lost,
}

impl Conditional {
    pub fn is_applied(self) -> bool {
        self == Self::Applied
    }
}
