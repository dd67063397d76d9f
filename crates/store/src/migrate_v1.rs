//! Format 1 -> 2: alarms gained their stage times (`Alarm::stages`) and the test mark
//! (`Alarm::test`), and a test alarm can be `Expired`. Every stored alarm (CF
//! `alarms`) and every outbox notice (CF `outbox`, which carries the alarm as it was) is rewritten
//! with empty stages and as a real alarm (format 1 had no tests), in one synced write set that also records version 2, so a crash leaves the
//! store wholly in one format or the other.
//!
//! The version-1 shapes are kept here, frozen: they must decode exactly what format 1 wrote.
use crate::backend::{Backend, Cf, StoreError, WriteSet};
use crate::keys;
use serde::Deserialize;
use vaka_core::alarm::{AlarmKind, AlarmState, Deadline, Notice, UpdateKind};
use vaka_core::{Alarm, AlarmId, DeviceKey, UnixMillis};

#[derive(Deserialize)]
struct AlarmV1 {
    id: AlarmId,
    device: DeviceKey,
    reference: String,
    kind: AlarmKind,
    code: String,
    priority: u8,
    text: Option<String>,
    callback: Vec<String>,
    state: AlarmState,
    step: u32,
    deadline: Option<Deadline>,
    repeats: u32,
    created_ms: UnixMillis,
    updated_ms: UnixMillis,
}

#[derive(Deserialize)]
enum NoticeV1 {
    Offer { alarm: AlarmV1, unhandled: bool },
    Update { alarm: AlarmV1, update: UpdateKind },
}

impl From<AlarmV1> for Alarm {
    fn from(a: AlarmV1) -> Self {
        Alarm {
            id: a.id,
            device: a.device,
            reference: a.reference,
            kind: a.kind,
            code: a.code,
            priority: a.priority,
            text: a.text,
            callback: a.callback,
            state: a.state,
            step: a.step,
            deadline: a.deadline,
            repeats: a.repeats,
            created_ms: a.created_ms,
            updated_ms: a.updated_ms,
            stages: Default::default(),
            test: false,
        }
    }
}

impl From<NoticeV1> for Notice {
    fn from(n: NoticeV1) -> Self {
        match n {
            NoticeV1::Offer { alarm, unhandled } => Notice::Offer {
                alarm: alarm.into(),
                unhandled,
            },
            NoticeV1::Update { alarm, update } => Notice::Update {
                alarm: alarm.into(),
                update,
            },
        }
    }
}

/// Rewrites what format 1 stored as format 2, adding the version to the same write set; returns
/// how many records were rewritten. Nothing is written when a record does not decode.
pub(crate) fn to_v2(backend: &dyn Backend, mut set: WriteSet) -> Result<usize, StoreError> {
    let mut rewritten = 0;
    let mut failed = None;
    for cf in [Cf::Alarms, Cf::Outbox] {
        backend.scan(cf, &[], &mut |k, v| {
            let value = if cf == Cf::Alarms {
                keys::decode::<AlarmV1>(cf, k, v).map(|a| postcard_of(&Alarm::from(a)))
            } else {
                keys::decode::<NoticeV1>(cf, k, v).map(|n| postcard_of(&Notice::from(n)))
            };
            match value {
                Ok(value) => {
                    set.put_raw(cf, k.to_vec(), value);
                    rewritten += 1;
                    true
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = failed.take() {
            return Err(e);
        }
    }
    backend.write_synced(std::slice::from_ref(&set))?;
    Ok(rewritten)
}

fn postcard_of<T: serde::Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).expect("serialising to a Vec cannot fail")
}
