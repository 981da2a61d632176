//! The generated messages, services and clients of the EventStoreDB client protocol, from
//! the `.proto` files of the `eventstore` crate.
#![allow(
    dead_code,
    clippy::all,
    clippy::pedantic,
    missing_docs,
    unreachable_pub,
    // The .proto files' comments link in protobuf's syntax, which rustdoc cannot resolve.
    rustdoc::broken_intra_doc_links
)]

pub mod event_store {
    pub mod client {
        tonic::include_proto!("event_store.client");
        pub mod streams {
            tonic::include_proto!("event_store.client.streams");
        }
        pub mod server_features {
            tonic::include_proto!("event_store.client.server_features");
        }
        pub mod gossip {
            tonic::include_proto!("event_store.client.gossip");
        }
    }
}

pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}
