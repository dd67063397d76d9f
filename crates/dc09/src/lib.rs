//! SIA DC-09 (ANSI/SIA DC-09) codec without I/O: bytes in, values out, like `vaka_scaip`.
//!
//! It opens no socket, reads no clock (callers pass `now_ms`, Unix milliseconds) and draws no
//! random numbers (callers pass the pad entropy of encrypted answers), so every function is
//! deterministic.
//!
//! A receiver's round, for one datagram or one frame cut by [`stream::next_frame`]:
//! 1. [`Frame::parse`]: CRC, length and header (token, sequence, receiver, line, account).
//! 2. Look the account up; [`Frame::open`] with its key: decrypt, check the timestamp window
//!    ([`Window`]), type the data ([`Payload`]: SIA-DCS events, an ADM-CID event, NULL).
//! 3. [`reply_for`] says ACK, NAK or DUH; [`ack`], [`nak`] and [`duh`] write it.
//!
//! Modules: [`frame`] (outer frame and its leniencies), [`header`], `content` (data, xdata,
//! timestamp, encryption), [`sia`], [`cid`], [`time`], [`crypto`] (keys, AES-CBC), [`answer`],
//! [`stream`].
//!
//! ```
//! use vaka_dc09::{ack, decode, reply_for, Payload, Reply, Timestamp, Window};
//!
//! let bytes = b"\nF4D20029\"SIA-DCS\"0001RF3L77#1234[#1234|NRR|Atest]\r";
//! let now_ms = 1_758_730_801_000;
//! let result = decode(bytes, |_| None, now_ms, &Window::default());
//! assert_eq!(reply_for(&result), Reply::Ack);
//! let msg = result.unwrap();
//! let Payload::Sia(sia) = &msg.payload else { panic!() };
//! assert_eq!(sia.events[0].code, "RR");
//! let answer = ack(&msg.header, None, Timestamp::from_unix_ms(now_ms), &[0; 16]).unwrap();
//! assert_eq!(answer, b"\n61DB0016\"ACK\"0001RF3L77#1234[]\r");
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod answer;
pub mod cid;
mod content;
pub mod crc;
pub mod crypto;
pub mod error;
pub mod frame;
pub mod header;
pub mod message;
pub mod sia;
pub mod stream;
pub mod time;

pub use answer::{ack, duh, nak, reply_for, Reply};
pub use cid::{CidData, Qualifier};
pub use content::XData;
pub use crypto::{Key, KeyError};
pub use error::DecodeError;
pub use header::{Account, Header, HexId, Seq, Token};
pub use message::{decode, EncodeError, Frame, Message, Payload};
pub use sia::{SiaData, SiaEvent};
pub use time::{Timestamp, Window};
