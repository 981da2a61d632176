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

/// The catalogue's examples, in order: the text between "```json" and "```".
fn catalogue_examples() -> Vec<&'static str> {
    let catalogue = include_str!("../../docs/events.md");
    catalogue
        .split("```json\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .collect()
}

#[test]
fn every_example_in_the_event_catalogue_is_an_event_as_the_domain_writes_it() {
    let examples = catalogue_examples();
    assert_eq!(examples.len(), EVENT_TYPES.len(), "one example per type");
    for (example, event_type) in examples.into_iter().zip(EVENT_TYPES) {
        let event: ledger_domain::Event = serde_json::from_str(example)
            .unwrap_or_else(|e| panic!("the {event_type} example is no event: {e}\n{example}"));
        assert_eq!(
            event.event_type(),
            event_type,
            "examples in lifecycle order"
        );
        let written = serde_json::to_string_pretty(&event).expect("an event writes");
        assert_eq!(
            written.trim(),
            example.trim(),
            "the domain writes {event_type} otherwise"
        );
    }
}
