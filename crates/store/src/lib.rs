//! Vaka's durable boundary.
//!
//! [`Backend`] is the small trait every storage engine implements: apply a set of writes atomically
//! and synced, read a key, scan a prefix. [`RocksBackend`] is the production engine, [`MemBackend`]
//! serves tests. [`Store`] sits on top of any backend and adds group commit (many producers, one
//! WriteBatch, one WAL sync, then every producer is completed; alarms first) and recovery.
//!
//! # Column families and key layout
//! All integers in keys are big-endian so that byte order is numeric order. Values are postcard.
//!
//! | CF       | key                                   | value                         |
//! |----------|---------------------------------------|-------------------------------|
//! | `events` | event id (u64)                        | [`StoredEvent`]: id + event   |
//! | `alarms` | alarm id (u64)                        | `Alarm` (every alarm, ever)   |
//! | `open`   | alarm id (u64)                        | empty: index of open alarms   |
//! | `idem`   | tenant 0x00 device 0x00 key           | [`IdemRecord`]                |
//! | `audit`  | alarm id (u64) + audit seq (u32)      | `AuditRecord`                 |
//! | `meta`   | utf-8 name                            | per name (see below)          |
//! | `outbox` | centre 0x00 outbox seq (u64)          | `Notice` for that centre      |
//! | `seen`   | tenant 0x00 device 0x00               | u64 ms the device was last heard (supervised devices) |
//! | `gps`    | tenant 0x00 device 0x00               | [`GpsRecord`]: latest position, filter and fence state |
//! | `hbi`    | tenant 0x00 device 0x00               | u32 heartbeat interval (s) the device announced |
//! | `positions` | tenant 0x00 device 0x00 fix time (i64, sign bit flipped) | [`StoredPosition`]: accepted fix and its event |
//! | `directory`, `tokens`, `admin_audit` | see [`directory`] | JSON records of the control plane |
//! | `rules`  | tenant 0x00 device 0x00 rule id        | JSON `RuleState`: an activity rule's state on the device |
//! | `replicas` | `a`/`o` alarm id (u64)              | in a cluster: other nodes' alarms ([`Replica`]) and the open ones' index (`replicas.rs`) |
//!
//! `meta` keys:
//!
//! | key                     | value                                                        |
//! |-------------------------|--------------------------------------------------------------|
//! | `format_version`        | u32, the storage format ([`FORMAT_VERSION`]); see below      |
//! | `outbox_seq`            | u64, last outbox sequence given                              |
//! | `cursor/<centre>`       | u64, the last outbox sequence the centre acknowledged        |
//! | `retention/events_from` | u64, the first event id the retention sweep has not settled  |
//! | `retention/alarm_events_from` | u64, the same for alarm-lane events                    |
//! | `directory_revision`    | u64, the directory's revision (see [`directory`])             |
//! | `directory_log_sequence` | u64, in a cluster: the last `VAKA_DIR` batch applied          |
//! | `directory_log_digest`  | in a cluster: that batch's SHA-256                            |
//! | `input/…`, `input_read`, `input_checked`, `id_range` | in a cluster: its record of the input log, and the id range it gives ids from (`inputs.rs`) |
//! | `move/<tenant>` 0x00 `<device>` | JSON [`moves::MoveOffer`]: a device offered to another tenant |
//! | `pending/<revision>`    | admin actions on stored data a directory change asked for, not yet run ([`pending`]) |
//! | `gone/<tenant>` 0x00 `<device>` 0x00 | JSON [`gone::Gone`]: the device's history erased or moved, and when |
//!
//! # Format version
//! Values are postcard, which is positional: reordering an enum variant or a field changes what
//! existing bytes mean. `format_version` is checked when [`Store::open`] recovers, before anything
//! is decoded: a newer version is refused with [`StoreError::Format`] naming both versions; a
//! store without the key holds version 1 (the format versioning began with); an older version is
//! migrated at open, in one synced write (1 -> 2: alarms gained stage times and the test mark, `migrate_v1`; 2 -> 3: events gained the device's time, only the version is written and older events read without it). `tests/format.rs` pins the bytes of every
//! persisted type (golden bytes) and opens a store committed as a fixture
//! (`tests/fixtures/v1/`), so an encoding change fails a test until the version is bumped and a
//! migration written.
//!
//! # Files beside RocksDB's (invariant 12, damage is loud)
//! In the database directory: `vaka-ids` (the id reservation, synced: every id handed out is below
//! it), `vaka-durable` (RocksDB's sequence number and the highest event id after the last synced
//! write, rewritten in place per commit), `vaka-wal-at-open/` (hard links to the log files while an
//! open is being checked; left in place when the open is refused). Format and reasoning: `marks`.
//! [`RocksBackend::open`] refuses a damaged store with [`StoreError::Damaged`]; [`salvage`] is the
//! explicit way past it.
//!
//! An event and everything it causes (alarm, open index, idempotency entry, audit) go in one
//! [`WriteSet`], so after a crash either all of it is there or none of it.
mod around;
mod backend;
#[cfg(feature = "rocksdb")]
mod damage;
mod delivery;
pub use delivery::put_receiver_link_key;
pub mod directory;
mod erasure;
mod export;
mod failure;
mod format;
pub mod gone;
mod group;
mod import;
mod inputs;
pub use inputs::{InputRecord, InputRecords};
pub mod keys;
// Its files are written by the RocksDB backend; without it only the reading is used.
#[cfg_attr(not(feature = "rocksdb"), allow(dead_code))]
mod marks;
mod mem;
mod migrate_v1;
pub mod moves;
pub mod pending;
mod positions;
pub mod query;
mod recovery;
mod replicas;
mod retention;
#[cfg(feature = "rocksdb")]
mod rocks;
#[cfg(feature = "rocksdb")]
mod salvage;
#[cfg(feature = "test-util")]
pub mod testing;

pub use around::EventsAround;
pub use backend::{Backend, Cf, Op, StoreError, WriteSet};
pub use erasure::{erase_device, Erased};
pub use export::Page;
pub use failure::StoreState;
pub use format::{FORMAT_VERSION, META_FORMAT_VERSION};
pub use group::{CommitError, GroupConfig, Store, StoreStats, ID_BLOCK};
pub use import::{Existing, Found, Imported};
pub use keys::{
    load_alarm, load_audit, load_cursor, load_event, outbox_keys_through, read_outbox, IdemRecord,
    StoredEvent,
};
pub use marks::{read_marks, Marks};
pub use mem::MemBackend;
pub use positions::{
    latest_position, load_gps, load_heartbeat_intervals, position_history, prune_positions,
    GpsRecord, PositionsPruned, StoredPosition,
};
pub use recovery::{RecoverOptions, Recovered};
pub use replicas::{Listed, ListedPage, Replica};
pub use retention::{
    prune_admin_audit, prune_alarm_events, prune_alarms, prune_telemetry_events, AlarmsPruned,
    EventsPruned,
};
#[cfg(feature = "rocksdb")]
pub use rocks::{RocksBackend, RocksConfig};
#[cfg(feature = "rocksdb")]
pub use salvage::{salvage, SalvageReport};
