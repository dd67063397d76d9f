//! Identifiers and time. Time is always passed in as unix milliseconds; core never reads a clock.
use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since the unix epoch, as handed to core by its caller.
pub type UnixMillis = i64;

/// A cluster node gives its event and alarm ids from a range of its own: range `n` is
/// `[n << ID_RANGE_BITS, (n + 1) << ID_RANGE_BITS)` (2^43 ids, about 28 years at 10,000 events
/// a second); range 0 is the single node's. Claimed by `vaka_cluster::id_range`.
pub const ID_RANGE_BITS: u32 = 43;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A principal (municipality, region) that owns devices and their data.
    TenantId
);
string_id!(
    /// A device within its tenant: SCAIP controller id (cid) or certificate name.
    DeviceId
);
string_id!(
    /// An alarm centre (or on-call team).
    CentreId
);

/// Store-wide event id, allocated by the store, monotonic within one process run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub u64);

/// An alarm's id is the id of the event that opened it, so it is stable across restarts and resends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlarmId(pub u64);

impl From<EventId> for AlarmId {
    fn from(e: EventId) -> Self {
        AlarmId(e.0)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for AlarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A device is named by its tenant and its id; this pair decides its router shard.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceKey {
    pub tenant: TenantId,
    pub device: DeviceId,
}

impl DeviceKey {
    pub fn new(tenant: impl Into<String>, device: impl Into<String>) -> Self {
        Self {
            tenant: TenantId(tenant.into()),
            device: DeviceId(device.into()),
        }
    }

    /// Stable shard choice (FNV-1a; independent of Rust's randomised hasher, so a device keeps its
    /// shard across restarts for a given shard count).
    pub fn shard(&self, shards: usize) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self
            .tenant
            .0
            .bytes()
            .chain(std::iter::once(0))
            .chain(self.device.0.bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % shards.max(1) as u64) as usize
    }
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.device)
    }
}
