//! How orders are named outside the domain: one stream per order, `order-<uuid>`. Writers and
//! readers of the log share this convention, so it lives with the order itself.

use crate::ids::OrderId;

/// Every order's stream is named with this prefix; subscribers filter on it.
pub const ORDER_STREAM_PREFIX: &str = "order-";

pub fn order_stream_name(order: OrderId) -> String {
    // Written straight into a buffer: `format!` through `Display` was ~2% of a command's CPU.
    let mut name = String::with_capacity(ORDER_STREAM_PREFIX.len() + uuid::fmt::Hyphenated::LENGTH);
    name.push_str(ORDER_STREAM_PREFIX);
    name.push_str(
        order
            .0
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
    name
}

/// Whether a stream is named like an order's: the ledger's own. The others are another
/// application's (appended through the EventStoreDB protocol), which the views pass by.
pub fn is_order_stream(stream: &str) -> bool {
    stream.starts_with(ORDER_STREAM_PREFIX)
}

pub fn order_of_stream(stream: &str) -> Option<OrderId> {
    let id = stream.strip_prefix(ORDER_STREAM_PREFIX)?;
    uuid::Uuid::parse_str(id).ok().map(OrderId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Stream names are in the log and in subscribers' filters: the form must not change.
        #[test]
        fn an_orders_stream_is_named_by_its_hyphenated_id(id in any::<u128>()) {
            let order = OrderId(uuid::Uuid::from_u128(id));
            let name = order_stream_name(order);
            prop_assert_eq!(&name, &format!("order-{}", order.0.hyphenated()));
            prop_assert_eq!(order_of_stream(&name), Some(order));
        }
    }
}
