//! The domain: what a message is, how it is read, written and checked, and how it is
//! queued and processed, with the accounting it needs (the memory budget, histograms).
//! Nothing here knows a role, the hop or a server: these modules import only each other.

pub(crate) mod answer;
pub mod budget;
pub mod codec;
pub(crate) mod histogram;
pub(crate) mod http_error;
pub(crate) mod ids;
pub mod message;
pub mod proto;
pub mod queue;
pub(crate) mod redact;
pub(crate) mod secret;
pub mod validate;
pub mod wire;
pub mod worker;
