//! The public API's contract: what clients send and get back. The OpenAPI document is generated
//! from these types, and the gateway decodes every downstream answer into them before passing
//! it on (a tolerant reader: fields the services add stay internal until they are added here),
//! so what the document promises is what the code serialises.
//!
//! Request constraints repeat the services' rules as JSON Schema, so that a request matching the
//! document is accepted and one violating it is refused with 400; `documented_limits_are_the_
//! services_limits` in the tests keeps the numbers in step with `shared_core::validation`.

use serde::{Deserialize, Serialize};
use shared_core::validation::{MAX_ID_LEN, MAX_ORDER_LINES, MAX_QUANTITY};
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

pub use shared::http::problem::Problem;
pub use shared_core::InvalidParam;
pub use shared_core::money::Money;

pub use crate::saga::Progress as SagaProgress;

/// An identifier as `shared_core::validation::check_identifier` accepts it: not blank, at most
/// `MAX_ID_LEN` characters, no control characters.
fn identifier() -> Object {
    const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_ID_LEN))
        .pattern(Some(format!("^[^{CONTROL}]*[^\\s{CONTROL}][^{CONTROL}]*$")))
        .build()
}

/// Longest `payment_method` (orders' `MAX_PAYMENT_METHOD_LEN`; a test keeps them equal).
pub const MAX_PAYMENT_METHOD_LEN: usize = 255;

/// Bytes of the largest `POST /api/orders` body this document allows, written without
/// insignificant whitespace: every limit at its maximum, every character of an identifier a
/// non-BMP character written as an escaped surrogate pair (`\uD83D\uDE00`, 12 bytes), every
/// character of the (ASCII) payment method written as `\u0070` (6 bytes). About 80 KB.
pub const LARGEST_PLACE_ORDER_BYTES: usize = {
    const fn json_string(chars: usize, bytes_per_char: usize) -> usize {
        2 + chars * bytes_per_char
    }
    const fn digits(mut n: u32) -> usize {
        let mut digits = 1;
        while n >= 10 {
            n /= 10;
            digits += 1;
        }
        digits
    }
    let identifier = json_string(MAX_ID_LEN, 12);
    let line = r#"{"sku":,"quantity":}"#.len() + identifier + digits(MAX_QUANTITY);
    let envelope = r#"{"payment_method":,"items":[]}"#.len();
    envelope + json_string(MAX_PAYMENT_METHOD_LEN, 6) + MAX_ORDER_LINES * line + (MAX_ORDER_LINES - 1)
};

// Every order the document allows gets through the body limit of the gateway and of orders
// (both `StrictJson`), with a quarter to spare for formatting whitespace.
const _: () = assert!(LARGEST_PLACE_ORDER_BYTES + LARGEST_PLACE_ORDER_BYTES / 4 <= shared::http::MAX_BODY_BYTES);

/// A date-time as the services write it (RFC 3339, UTC, milliseconds), passed on as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = DateTime)]
pub struct Timestamp(pub String);

/// `POST /api/orders`. Prices and totals are not sent: they come from the catalogue. Nor is the
/// customer: it is the token's subject, and a body naming `customer_id` is refused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// A payment provider token such as `pm_card_visa`, never card data: 13 or more digits in a
    /// row are refused as a likely card number.
    #[schema(
        min_length = 4,
        max_length = 255,
        pattern = r"^pm_[A-Za-z_]*(?:[0-9]{1,12}[A-Za-z_]+)*[0-9]{0,12}$",
        example = "pm_card_visa"
    )]
    pub payment_method: String,
    /// One line per sku.
    #[schema(min_items = 1, max_items = 98)]
    pub items: Vec<OrderItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    #[schema(schema_with = identifier)]
    pub sku: String,
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "integer")]
    pub quantity: u32,
}

/// A JSON Schema `integer`: any number with no fractional part, so `2.0` is 2 as the document
/// promises (serde alone would refuse it).
fn integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    use serde::de::{Error, Unexpected};
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(n) = number.as_u64() {
        return u32::try_from(n).map_err(|_| D::Error::invalid_value(Unexpected::Unsigned(n), &"a u32"));
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => Ok(f as u32),
        Some(f) => Err(D::Error::invalid_value(Unexpected::Float(f), &"a whole number from 0 to 4294967295")),
        None => Err(D::Error::custom("not a number")),
    }
}

/// [`integer`] for a `u64`.
fn integer_u64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    use serde::de::{Error, Unexpected};
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(n) = number.as_u64() {
        return Ok(n);
    }
    match number.as_f64() {
        // Exactly representable: every whole f64 up to 2^53, far above any limit here.
        Some(f) if f.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&f) => Ok(f as u64),
        Some(f) => Err(D::Error::invalid_value(Unexpected::Float(f), &"a whole number from 0")),
        None => Err(D::Error::custom("not a number")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Cancelled,
    /// It will not be fulfilled, and undoing its reservation or payment failed: the shop retries
    /// until it is `CANCELLED` (nothing is left charged or reserved then).
    CompensationPending,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: u32,
}

/// An order. `PENDING` until the fulfilment saga confirms or cancels it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// Hyphenated, lower case.
    pub id: uuid::Uuid,
    pub customer_id: String,
    pub payment_method: String,
    pub lines: Vec<OrderLine>,
    pub status: OrderStatus,
    /// Why a `CANCELLED` order was cancelled (`OutOfStock`, `PaymentDeclined`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// A charge may be under way.
    Pending,
    /// The provider took the money.
    Captured,
    /// The provider refused the payment method.
    Declined,
    /// Cancelled before the provider was asked to charge; nothing moved.
    Voided,
    /// The captured amount went back to the customer.
    Refunded,
}

/// Why a payment was refused, as customers are told it: one of four generic reasons. The
/// provider's exact code (`stolen_card`, `incorrect_cvc`, ...) is for the shop's operators only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    CardDeclined,
    InsufficientFunds,
    AuthenticationRequired,
    TryAgain,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Decline {
    pub reason: DeclineReason,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    pub order_id: String,
    pub status: PaymentStatus,
    pub amount: Money,
    pub payment_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_payment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline: Option<Decline>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationStatus {
    /// Stock is held for the order.
    Reserved,
    /// The order was confirmed: the held stock is sold.
    Committed,
    /// The stock went back to the shelf.
    Released,
    /// Not enough stock: nothing was held.
    Rejected,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReservedLine {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_minor: u64,
}

/// A sku that could not be reserved.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Shortage {
    pub sku: String,
    pub requested: u32,
    /// What was available when the reservation was tried (0 for an unknown sku).
    pub available: u64,
    pub unknown: bool,
}

/// The stock held (or refused) for an order, at catalogue prices.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Reservation {
    pub order_id: String,
    pub status: ReservationStatus,
    pub lines: Vec<ReservedLine>,
    /// Empty when rejected.
    pub currency: String,
    pub total_minor: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shortages: Vec<Shortage>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A part of the order view that could not be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Payment,
    Reservation,
    Saga,
}

/// An order with its payment, its reservation and its saga's progress, fetched in parallel.
/// A part is `null` when it does not exist yet, or when its service failed: then `degraded`
/// names it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub order: Order,
    pub payment: Option<Payment>,
    pub reservation: Option<Reservation>,
    pub saga: Option<SagaProgress>,
    pub degraded: Vec<Part>,
}

/// A page of the caller's orders, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderList {
    pub orders: Vec<Order>,
    /// Pass it as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What API Gateway itself answers when it refuses a request (401 from the JWT authorizer).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GatewayMessage {
    /// `Unauthorized`
    pub message: String,
}

/// Longest product name (inventory's `MAX_NAME_LEN`; a test keeps them equal).
pub const MAX_NAME_LEN: usize = 200;
/// Highest price in minor units (inventory's `MAX_PRICE_MINOR`).
pub const MAX_PRICE_MINOR: u64 = 10_000_000_000;
/// Most units one restock adds, and highest low-stock threshold (inventory's `MAX_RESTOCK`).
pub const MAX_RESTOCK: u32 = 1_000_000;

/// A product name: 1 to `MAX_NAME_LEN` characters, not only whitespace.
fn product_name() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_LEN))
        .pattern(Some(r"\S"))
        .build()
}

/// An ISO 4217 currency code, as `shared_core::money::Currency` knows them.
fn currency() -> Object {
    let codes: Vec<&str> = shared_core::money::Currency::all().map(|c| c.code).collect();
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(codes)).build()
}

/// A price: integer minor units of an ISO 4217 currency (`1250` EUR is 12.50 EUR).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[schema(minimum = 0, maximum = 10_000_000_000_u64)]
    #[serde(deserialize_with = "integer_u64")]
    pub amount_minor: u64,
    #[schema(schema_with = currency, example = "EUR")]
    pub currency: String,
}

/// `PUT /api/products/{sku}`: a product's name, price and low-stock threshold.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    #[schema(schema_with = product_name, example = "Red mug")]
    pub name: String,
    pub price: Price,
    /// `StockLow` is published when the available stock drops below it; 0 when not sent.
    #[serde(default, deserialize_with = "integer_u64")]
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub low_stock_threshold: u64,
}

/// `POST /api/products/{sku}/restock`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Restock {
    /// Yours to choose, unique per restock: repeating a restock with its id adds nothing.
    #[schema(schema_with = identifier)]
    pub restock_id: String,
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(deserialize_with = "integer")]
    pub quantity: u32,
}

/// A product of the catalogue with the stock that can still be ordered.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub price: Money,
    pub available: u64,
    pub low_stock_threshold: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantity(raw: &str) -> Result<u32, String> {
        serde_json::from_str::<OrderItem>(&format!(r#"{{"sku":"A","quantity":{raw}}}"#))
            .map(|item| item.quantity)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_quantity_is_any_whole_json_number() {
        assert_eq!(quantity("2"), Ok(2));
        assert_eq!(quantity("2.0"), Ok(2));
        assert_eq!(quantity("1e3"), Ok(1000));
        for refused in ["2.5", "-1", "4294967296", "\"2\"", "null"] {
            assert!(quantity(refused).is_err(), "{refused} was accepted");
        }
    }
}
