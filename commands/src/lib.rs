//! The command pipeline: load an order's stream, `decide`, append with optimistic concurrency, idempotency by command id. Filled in by the store issue.
