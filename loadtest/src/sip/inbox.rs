//! What a device task is handed, by the dispatcher (jobs, the end) and by the wire (messages, a
//! closed connection), in one queue so that a device has one place to wait.
use std::net::SocketAddr;

use vaka_scaip::sip::SipMessage;

use crate::queues::Queued;
use crate::quic::Job;

/// What a device task is handed: boxed, so that a device's queue stays small.
pub enum Input {
    Job(Box<Job>),
    /// A message for this device, from `SocketAddr` (UDP) or its connection.
    Sip(Box<(SipMessage, SocketAddr)>),
    /// The TCP connection of this generation ended.
    Closed(u32),
    /// Nothing more will be queued: finish what is pending.
    End,
}

impl Queued for Input {
    fn from_job(job: Job) -> Self {
        Input::Job(Box::new(job))
    }

    fn into_job(self) -> Option<Job> {
        match self {
            Input::Job(job) => Some(*job),
            _ => None,
        }
    }

    /// A TCP device holds a sender to its own queue (for its connection's reader), and the UDP
    /// readers hold one to every queue: the queues never close while the devices run.
    fn end() -> Option<Self> {
        Some(Input::End)
    }
}
