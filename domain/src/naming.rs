//! How orders are named outside the domain: one stream per order, `order-<uuid>`. Writers and
//! readers of the log share this convention, so it lives with the order itself.

use crate::ids::OrderId;

/// Every order's stream is named with this prefix; subscribers filter on it.
pub const ORDER_STREAM_PREFIX: &str = "order-";

pub fn order_stream_name(order: OrderId) -> String {
    format!("{ORDER_STREAM_PREFIX}{}", order.0)
}

pub fn order_of_stream(stream: &str) -> Option<OrderId> {
    let id = stream.strip_prefix(ORDER_STREAM_PREFIX)?;
    uuid::Uuid::parse_str(id).ok().map(OrderId)
}
