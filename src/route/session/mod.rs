//! The state of one session-era client: its channel to each target (opened on first use), the id maps for
//! its calls and for the targets' requests to it, the streams it reads, and the pumps that carry what its
//! targets send on their own GET streams.

mod client;
mod encoded;
mod found;
mod get_stream;
mod listens;
mod server_requests;
mod streams;

pub use client::ClientSession;
pub use encoded::EncodedMessage;
pub use get_stream::ListsChanged;
pub use listens::{MAX_WATCHED, Watch};
pub use server_requests::{PendingServerRequest, TooManyPending, refuse_server_request};
pub use streams::ClientStreams;
