//! What devices send, after decoding and authentication by the fronts.
use crate::gps::Fix;
use crate::ids::{DeviceKey, UnixMillis};
use serde::{Deserialize, Serialize};

/// Priority 0 (lowest) to 9 (highest), as in SCAIP `pri`.
pub const MAX_PRIORITY: u8 = 9;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EventKind {
    /// A person or a sensor asks for help.
    Alarm(AlarmInfo),
    /// A technical condition (battery low, mains lost, …); `restoral` ends one.
    Technical {
        code: String,
        restoral: bool,
    },
    Heartbeat,
    /// A position report; the fix itself travels in [`Event::fix`].
    Position,
    /// Sensor readings, opaque to the engine.
    Telemetry {
        name: String,
        value: f64,
    },
    /// The device cancels its own alarm that carried this reference (SCAIP `mty=RE`).
    Reset {
        reference: String,
    },
    /// Made by the engine, not the device: the device was silent past its interval plus grace.
    Silent,
    /// Made by the engine from the device's fixes: a confirmed exit from the fence `fence`
    /// (`exit`), or the confirmed re-entry that restores it.
    Geofence {
        fence: String,
        exit: bool,
    },
    /// Made by the engine from the device's sensor events and time: an activity rule fired
    /// (`fired`) or its condition ended. `code` is `rule:<kind>:<id>`; `text` says what happened
    /// and which events caused it.
    Rule {
        code: String,
        fired: bool,
        text: String,
    },
}

/// An alarm code starting with this is the device's own periodic test call (a DC-09 test
/// report, a vaka/1 device's test alarm): a test alarm, like those of a device on test.
pub const TEST_CALL_PREFIX: &str = "test:";

impl EventKind {
    /// The device's own periodic test call: an alarm whose code says so.
    pub fn is_test_call(&self) -> bool {
        matches!(self, EventKind::Alarm(a) if a.code.starts_with(TEST_CALL_PREFIX))
    }

    /// Made by the engine rather than sent by the device: not proof the device is alive, and its
    /// fix (if any) was already filtered when the device sent it.
    pub fn is_engine_made(&self) -> bool {
        matches!(
            self,
            EventKind::Silent | EventKind::Geofence { .. } | EventKind::Rule { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmInfo {
    /// Status code (SCAIP `stc`), e.g. "0010" manual alarm.
    pub code: String,
    pub priority: u8,
    /// Free text from the device (SCAIP `dte`/`stt`).
    pub text: Option<String>,
    /// Numbers a centre may call back (SCAIP `crd`).
    pub callback: Vec<String>,
}

/// Which lane an event travels in (invariant 9: alarms before telemetry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    Alarm,
    Telemetry,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub device: DeviceKey,
    /// The sender's idempotency key: SCAIP `ref`, or the QUIC event key.
    pub key: String,
    /// When the engine received it.
    pub received_ms: UnixMillis,
    pub kind: EventKind,
    pub fix: Option<Fix>,
    /// The message as it came off the wire, kept for audit.
    pub raw: Vec<u8>,
    /// When it happened by the device's own clock (vaka/1 `occurred_ms`), if the device said;
    /// [`Event::at`] is the time the engine goes by. The last field on purpose: an event stored
    /// before storage format 3 ends before it and is read with `None`.
    pub occurred_ms: Option<UnixMillis>,
}

impl Event {
    /// When it happened: the device's time if it gave one, never later than its arrival (a
    /// device clock running ahead cannot put an event in the future).
    pub fn at(&self) -> UnixMillis {
        self.occurred_ms
            .map_or(self.received_ms, |t| t.min(self.received_ms))
    }

    pub fn lane(&self) -> Lane {
        match self.kind {
            EventKind::Alarm(_)
            | EventKind::Technical { .. }
            | EventKind::Reset { .. }
            | EventKind::Silent
            | EventKind::Geofence { .. }
            | EventKind::Rule { .. } => Lane::Alarm,
            EventKind::Heartbeat | EventKind::Position | EventKind::Telemetry { .. } => {
                Lane::Telemetry
            }
        }
    }
}
