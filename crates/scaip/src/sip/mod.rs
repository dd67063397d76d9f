//! SIP (RFC 3261) as far as SCAIP needs it: parse any request or response, frame messages on
//! streams, build responses and new MESSAGE requests.

mod build;
mod framing;
pub(crate) mod header;
mod message;

pub use build::NewRequest;
pub use framing::{find_message, Frame, FramingError};
pub use header::{uri_user, CSeq, NameAddr, Param, Via, BRANCH_MAGIC};
pub use message::{
    Header, HeaderName, Method, SipError, SipMessage, StartLine, MAX_HEADERS, SCAIP_CONTENT_TYPE,
};

#[cfg(test)]
mod tests;
