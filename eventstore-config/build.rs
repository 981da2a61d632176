//! Generates the server side of the EventStoreDB client protocol from the `.proto` files that
//! ship with the `eventstore` crate (copied into `proto/`), with a compiler written in Rust so
//! that no `protoc` has to be installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/streams.proto",
        "proto/serverfeatures.proto",
        "proto/gossip.proto",
    ];
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_build::configure()
        // The client side serves the protocol tests, which send what official clients never do.
        .build_client(true)
        .build_server(true)
        .bytes([
            ".event_store.client.StreamIdentifier.stream_name",
            ".event_store.client.streams.AppendReq.ProposedMessage.data",
            ".event_store.client.streams.AppendReq.ProposedMessage.custom_metadata",
            ".event_store.client.streams.BatchAppendReq.ProposedMessage.data",
            ".event_store.client.streams.BatchAppendReq.ProposedMessage.custom_metadata",
            ".event_store.client.streams.ReadResp.ReadEvent.RecordedEvent.data",
            ".event_store.client.streams.ReadResp.ReadEvent.RecordedEvent.custom_metadata",
        ])
        .compile_fds(descriptors)?;
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}
