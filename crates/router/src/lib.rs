//! Vaka's router: N shards, each a task that owns the state of the devices hashed to it, so the hot
//! path takes no lock. A shard takes events from two bounded lanes (alarms first, invariant 9), asks
//! the pure core what they mean, hands the resulting writes to the store's group commit, and answers
//! the caller only once those writes are durable (invariant 1). A full lane answers `Busy` at once.
mod admission;
mod api;
mod clock;
mod live;
mod owners;
mod positions;
mod presence;
pub mod retention;
mod router;
mod shard;

pub use api::{ChangedAlarm, InputError, Intake, IntakeLog, Reply, RouterConfig, SubmitError};
pub use clock::Clock;
pub use live::LiveDirectory;
pub use owners::Owners;
pub use presence::Presence;
pub use retention::RetentionConfig;
pub use router::Router;
