pub mod client;
#[allow(clippy::all)]
pub mod generated;
