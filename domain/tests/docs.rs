//! The event catalogue is part of the product: it must name every event type there is.

use ledger_domain::EVENT_TYPES;

#[test]
fn the_event_catalogue_documents_every_event_type() {
    let catalogue = include_str!("../../docs/events.md");
    for event_type in EVENT_TYPES {
        assert!(
            catalogue.contains(&format!("## {event_type}\n")),
            "docs/events.md has no section for {event_type}"
        );
        assert!(
            catalogue.contains(&format!("\"type\": \"{event_type}\"")),
            "docs/events.md has no example of {event_type}"
        );
    }
}
