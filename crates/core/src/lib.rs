//! Vaka's pure domain. No tokio, no I/O, no clock reads: every function takes the time it needs,
//! and the same inputs always give the same outputs (invariant 10).
pub mod access;
pub mod admission;
pub mod alarm;
pub mod alarm_action;
pub mod checks;
pub mod directory;
pub mod event;
pub mod gps;
pub mod idempotency;
pub mod ids;
pub mod intake;
pub mod retention;
pub mod rules;
pub mod stats;
pub mod supervision;
pub mod timeline;

pub use alarm::{Alarm, AlarmInput, AlarmKind, AlarmState, Deadlines, Effect};
pub use event::{AlarmInfo, Event, EventKind, Lane};
pub use ids::{AlarmId, CentreId, DeviceId, DeviceKey, EventId, TenantId, UnixMillis};
