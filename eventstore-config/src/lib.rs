//! The event store: one trait over EventStoreDB-style streams, its embedded SQLite backend and its configuration. Filled in by the store issue; it depends on nothing of ours.
