//! vaka/1, the device protocol over QUIC (`proto/device.proto`, package `vaka.device.v1`).
//!
//! - [`pb`]: the generated protobuf types.
//! - Framing: every frame is one protobuf message preceded by its length as a protobuf varint
//!   (prost's `encode_length_delimited`). [`encode_frame`] writes one, [`split_frame`] takes the next
//!   complete one off a receive buffer and refuses a length over the limit before its body arrives.
//! - [`parse_client_frame`]: a fast parser of a `ClientFrame` that hands back each event's exact wire
//!   bytes (kept as the event's raw message for audit, unknown fields included) without decoding
//!   the frame twice, counts events against the limit while it goes, and lets one undecodable
//!   event be answered on its own instead of failing its whole frame.
//!
//! Sans-I/O: bytes in, values out; nothing here panics on any input.
mod frame;
mod parse;

/// Types generated from `proto/device.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/vaka.device.v1.rs"));
}

pub use frame::{
    encode_events_frame, encode_frame, event_entry_len, events_frame_len, split_frame,
    FramingError, MAX_LENGTH_PREFIX,
};
pub use parse::{parse_client_frame, ClientFrameRef, ParseError};

/// The ALPN protocol id of vaka/1.
pub const ALPN: &[u8] = b"vaka/1";

pub use bytes;
pub use prost::Message;

/// Application error codes of vaka/1, sent in QUIC's CONNECTION_CLOSE (application space).
///
/// | code | name              | meaning; what the device should do                                   |
/// |------|-------------------|------------------------------------------------------------------------|
/// | 0x0  | `NO_ERROR`        | normal end (the device finished its stream or closed)                 |
/// | 0x1  | `SHUTDOWN`        | the server is shutting down; reconnect (another node) and resend      |
/// | 0x2  | `PROTOCOL`        | protocol violation: no Hello in time, Hello twice, broken length prefix, stream finished mid-frame; fix the client |
/// | 0x3  | `FRAME_TOO_LARGE` | a frame's length prefix exceeds `Welcome.max_frame_bytes`; send smaller frames |
/// | 0x4  | `TOO_MANY_EVENTS` | a frame carries more than `Welcome.max_events_per_frame` events      |
/// | 0x5  | `IDENTITY`        | the certificate's identity is not (or no longer) valid: after the handshake, or when the device is removed or disabled in the directory while connected |
/// | 0x6  | `INTERNAL`        | the server failed; reconnect and resend                               |
///
/// A frame that is well delimited but cannot be decoded is not a close: it is answered with
/// `ServerFrame.error` and the connection goes on. An unknown or wrong-tenant certificate never
/// gets this far: the TLS handshake fails (a QUIC crypto error carrying the TLS alert).
pub mod codes {
    pub const NO_ERROR: u32 = 0x0;
    pub const SHUTDOWN: u32 = 0x1;
    pub const PROTOCOL: u32 = 0x2;
    pub const FRAME_TOO_LARGE: u32 = 0x3;
    pub const TOO_MANY_EVENTS: u32 = 0x4;
    pub const IDENTITY: u32 = 0x5;
    pub const INTERNAL: u32 = 0x6;

    /// The code's name, for logs.
    pub fn name(code: u64) -> &'static str {
        match code {
            0x0 => "no_error",
            0x1 => "shutdown",
            0x2 => "protocol",
            0x3 => "frame_too_large",
            0x4 => "too_many_events",
            0x5 => "identity",
            0x6 => "internal",
            _ => "unknown",
        }
    }
}
