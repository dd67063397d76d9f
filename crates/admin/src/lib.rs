//! Vaka's control plane: the one writer of the live, durable directory ([`Control`]), API tokens
//! and the admin audit log, and the admin REST API over them.
pub mod archive;
pub mod control;
pub mod data;
pub mod http;
pub mod replicated;
mod token_table;
pub mod tokens;

pub use control::{bootstrap, Applied, Control, ControlError, Outcome, Request};
pub use tokens::{NewToken, BOOTSTRAP_ID};
