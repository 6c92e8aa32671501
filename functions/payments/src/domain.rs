//! The payments domain: one payment per order and the only moves it may make. No I/O.
//!
//! ```text
//! PENDING ──> CAPTURED ──> REFUNDED
//!    │
//!    ├──> DECLINED
//!    └──> VOIDED    (cancelled with no money moved: before any charge request could reach the
//!                    provider, or after the provider said its payment was never charged)
//! ```
//!
//! A refund of an order that has no payment yet leaves a tombstone: a `VOIDED` payment with no
//! amount, so that a charge command delivered after its compensation charges nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared_core::money::{Money, check_currency};
use shared_core::validation::check_identifier;
use shared_core::{InvalidParam, OrderId};

/// Charges up to one million major units, far above any real basket.
pub const MAX_AMOUNT_MINOR: u64 = 100_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Created; a charge may be under way.
    Pending,
    /// The provider took the money.
    Captured,
    /// The provider refused the payment method. Final.
    Declined,
    /// Compensated before the provider was ever asked to charge. Final; nothing moved.
    Voided,
    /// The captured amount went back to the customer. Final.
    Refunded,
}

impl PaymentStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending | Self::Captured)
    }
}

/// Why the provider refused, in its words (`insufficient_funds`, `expired_card`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decline {
    pub reason: String,
    pub message: String,
}

/// What a customer is told of a decline: one of four generic reasons, never the provider's exact
/// code. `stolen_card`, `lost_card`, `incorrect_cvc` and their like would make the public API an
/// oracle for testing stolen cards; the exact [`Decline`] stays in the payments table, the events
/// and the logs, for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicDeclineReason {
    /// Refused by the card's issuer or the provider, for any reason that is not one below.
    CardDeclined,
    InsufficientFunds,
    /// The customer must authenticate the payment (3-D Secure).
    AuthenticationRequired,
    /// A passing problem at the issuer or the provider: the same card may work later.
    TryAgain,
}

/// A decline as the public API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicDecline {
    pub reason: PublicDeclineReason,
    pub message: String,
}

impl PublicDeclineReason {
    /// Stripe's decline and error codes (<https://docs.stripe.com/declines/codes>) folded into
    /// the four public reasons; an unknown code is a plain `card_declined`.
    pub fn of(provider_code: &str) -> Self {
        match provider_code {
            "insufficient_funds" | "withdrawal_count_limit_exceeded" | "card_velocity_exceeded" => {
                Self::InsufficientFunds
            }
            "authentication_required"
            | "authentication_not_handled"
            | "payment_intent_authentication_failure"
            | "approve_with_id" => Self::AuthenticationRequired,
            "try_again_later" | "processing_error" | "issuer_not_available" | "reenter_transaction" => Self::TryAgain,
            _ => Self::CardDeclined,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::CardDeclined => "The card was declined. Use another payment method.",
            Self::InsufficientFunds => "The card has insufficient funds. Use another payment method.",
            Self::AuthenticationRequired => "The payment needs the card holder to authenticate it.",
            Self::TryAgain => "The payment could not be processed just now. Try again later.",
        }
    }
}

impl Decline {
    /// What the customer may be told of this decline.
    pub fn public(&self) -> PublicDecline {
        let reason = PublicDeclineReason::of(&self.reason);
        PublicDecline { reason, message: reason.message().to_owned() }
    }
}

/// Who is talking to the provider about a payment right now, and until when. Keeps concurrent
/// duplicates of a command from calling the provider at the same time; a crashed holder's lease
/// simply expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub until_ms: i64,
}

/// The payment of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub order_id: OrderId,
    pub status: PaymentStatus,
    pub amount: Money,
    pub payment_method: String,
    /// The provider's payment (a Stripe PaymentIntent id) once it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_payment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline: Option<Decline>,
    /// True once a charge (confirm) request may have reached the provider; set, with
    /// `provider_payment_id`, before that request leaves. A pending payment that never got that
    /// far can be voided without asking the provider; one that did must be settled with it.
    #[serde(default)]
    pub provider_contacted: bool,
    /// A tombstone: the order was compensated before it had a payment (see the module docs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tombstone: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    pub updated_at: DateTime<Utc>,
}

/// Asking to charge an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    pub order_id: OrderId,
    pub amount: Money,
    /// A provider payment method id (`pm_...`); never a card number.
    pub payment_method: String,
}

impl ChargeRequest {
    pub fn validate(&self) -> Result<(), Vec<InvalidParam>> {
        let mut violations = Vec::new();
        if !(1..=MAX_AMOUNT_MINOR).contains(&self.amount.amount_minor) {
            violations.push(InvalidParam::new("amount.amount_minor", format!("must be 1 to {MAX_AMOUNT_MINOR}")));
        }
        check_currency("amount.currency", &self.amount.currency, &mut violations);
        check_identifier("payment_method", &self.payment_method, &mut violations);
        if !self.payment_method.starts_with("pm_") {
            violations.push(InvalidParam::new("payment_method", "must be a payment method id such as pm_card_visa"));
        }
        if violations.is_empty() { Ok(()) } else { Err(violations) }
    }
}

/// A transition the state machine above does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment of order {order_id} cannot go from {from:?} to {to:?}")]
pub struct IllegalTransition {
    pub order_id: OrderId,
    pub from: PaymentStatus,
    pub to: PaymentStatus,
}

impl Payment {
    /// A new pending payment, leased by the caller who is about to ask the provider.
    pub fn pending(request: &ChargeRequest, lease: Lease, now: DateTime<Utc>) -> Self {
        Self {
            order_id: request.order_id,
            status: PaymentStatus::Pending,
            amount: request.amount.clone(),
            payment_method: request.payment_method.clone(),
            provider_payment_id: None,
            refund_id: None,
            decline: None,
            provider_contacted: false,
            tombstone: false,
            lease: Some(lease),
            created_at: now,
            updated_at: now,
        }
    }

    /// What a refund leaves for an order that has no payment: voided, with no amount (`0 XXX`,
    /// ISO 4217's "no currency"), so that a later charge command finds it and charges nothing.
    pub fn tombstone(order_id: OrderId, now: DateTime<Utc>) -> Self {
        Self {
            order_id,
            status: PaymentStatus::Voided,
            amount: Money::new(0, "XXX"),
            payment_method: String::new(),
            provider_payment_id: None,
            refund_id: None,
            decline: None,
            provider_contacted: false,
            tombstone: true,
            lease: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// True for a payment that was compensated (voided or refunded): it must never be charged.
    pub fn is_compensated(&self) -> bool {
        matches!(self.status, PaymentStatus::Voided | PaymentStatus::Refunded)
    }

    /// True when nobody holds the payment at `now`.
    pub fn is_free(&self, now_ms: i64) -> bool {
        self.lease.as_ref().is_none_or(|lease| lease.until_ms <= now_ms)
    }

    fn moved(&self, to: PaymentStatus, now: DateTime<Utc>) -> Result<Self, IllegalTransition> {
        let allowed = matches!(
            (self.status, to),
            (PaymentStatus::Pending, PaymentStatus::Captured | PaymentStatus::Declined | PaymentStatus::Voided)
                | (PaymentStatus::Captured, PaymentStatus::Refunded)
        );
        if !allowed {
            return Err(IllegalTransition { order_id: self.order_id, from: self.status, to });
        }
        Ok(Self { status: to, lease: None, updated_at: now, ..self.clone() })
    }

    pub fn captured(&self, provider_payment_id: String, now: DateTime<Utc>) -> Result<Self, IllegalTransition> {
        let mut next = self.moved(PaymentStatus::Captured, now)?;
        next.provider_payment_id = Some(provider_payment_id);
        Ok(next)
    }

    pub fn declined(
        &self,
        provider_payment_id: Option<String>,
        decline: Decline,
        now: DateTime<Utc>,
    ) -> Result<Self, IllegalTransition> {
        let mut next = self.moved(PaymentStatus::Declined, now)?;
        next.provider_payment_id = provider_payment_id;
        next.decline = Some(decline);
        Ok(next)
    }

    /// Only a payment that never reached the provider can be voided: nothing can have moved.
    pub fn voided(&self, now: DateTime<Utc>) -> Result<Self, IllegalTransition> {
        if self.provider_contacted {
            return Err(IllegalTransition { order_id: self.order_id, from: self.status, to: PaymentStatus::Voided });
        }
        self.moved(PaymentStatus::Voided, now)
    }

    /// The provider says its payment was never charged (never confirmed, or canceled): nothing
    /// moved, so it is voided although a charge request may have reached the provider.
    pub fn not_charged(&self, now: DateTime<Utc>) -> Result<Self, IllegalTransition> {
        self.moved(PaymentStatus::Voided, now)
    }

    pub fn refunded(&self, refund_id: String, now: DateTime<Utc>) -> Result<Self, IllegalTransition> {
        let mut next = self.moved(PaymentStatus::Refunded, now)?;
        next.refund_id = Some(refund_id);
        Ok(next)
    }
}

/// The idempotency key of a provider call: one per order and step (`create`, `confirm`,
/// `refund`), so a retried or duplicated step can never charge or refund twice.
pub fn provider_idempotency_key(order_id: OrderId, step: &str) -> String {
    format!("order-{order_id}-{step}")
}
