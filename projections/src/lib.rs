//! Read models folded from the event log (escrow, wallet credit, completion rate, review windows, journal, due timers) and the engine that keeps them current. Filled in by the projections issue.
