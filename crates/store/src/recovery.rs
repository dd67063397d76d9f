//! What opening a store finds: open alarms, idempotency entries within their window, the next id.
use crate::backend::{Backend, Cf, StoreError, WriteSet};
use crate::format;
use crate::keys::{self, IdemRecord};
use std::time::{Duration, Instant};
use vaka_core::idempotency::IdemKey;
use vaka_core::{Alarm, UnixMillis};

#[derive(Clone, Debug)]
pub struct RecoverOptions {
    pub now_ms: UnixMillis,
    /// Idempotency entries older than this are dropped (and deleted) at open.
    pub idem_window_ms: i64,
}

#[derive(Debug, Default)]
pub struct Recovered {
    /// Every alarm not yet closed or cancelled, with the next free audit sequence number.
    pub open_alarms: Vec<(Alarm, u32)>,
    pub idem: Vec<(IdemKey, IdemRecord)>,
    pub idem_expired: usize,
    pub next_event_id: u64,
    /// When each supervised device was last heard.
    pub seen: Vec<(vaka_core::DeviceKey, UnixMillis)>,
    /// Each device's activity rule states, by rule id.
    pub rule_states: Vec<(vaka_core::DeviceKey, String, vaka_core::rules::RuleState)>,
    /// The last outbox sequence given out.
    pub outbox_seq: u64,
    pub took: Duration,
}

pub(crate) fn recover(
    backend: &dyn Backend,
    opts: &RecoverOptions,
) -> Result<Recovered, StoreError> {
    let started = Instant::now();
    // Before anything is decoded: a store in a format this build does not know is never misread.
    format::check_format(backend)?;
    let mut out = Recovered::default();

    let last = |cf| -> Result<u64, StoreError> {
        Ok(backend
            .last_key(cf)?
            .and_then(|k| keys::decode_id(&k))
            .map_or(0, |id| id + 1))
    };
    // Alarm ids are event ids, so both column families bound the next id.
    // Retention may have deleted the newest events: ids never go below where its sweep got to.
    let mut swept = 0;
    for mark in [keys::META_EVENTS_SWEPT, keys::META_ALARM_EVENTS_SWEPT] {
        let at = backend
            .get(Cf::Meta, mark)?
            .and_then(|v| keys::decode_id(&v));
        swept = swept.max(at.unwrap_or(0));
    }
    // And never below the lasting id reservation: ids above what was recovered may have been
    // given before a crash or a salvage (invariant 12).
    // A cluster node also holds alarms it took over from another node, under that node's ids
    // (another range): its own ids go on from the largest below its range's end.
    let range = crate::inputs::id_range_of(backend)?;
    let last_alarm = match range {
        0 => last(Cf::Alarms)?,
        r => backend
            .last_key_below(
                Cf::Alarms,
                &keys::id_key((r + 1) << vaka_core::ids::ID_RANGE_BITS),
            )?
            .and_then(|k| keys::decode_id(&k))
            .map_or(0, |id| id + 1),
    };
    out.next_event_id = last(Cf::Events)?
        .max(last_alarm)
        .max(swept)
        .max(backend.reserved_ids())
        .max(1);

    out.outbox_seq = backend
        .get(Cf::Meta, keys::META_OUTBOX_SEQ)?
        .and_then(|v| keys::decode_id(&v))
        .unwrap_or(0);

    let mut open_ids = Vec::new();
    backend.scan(Cf::Open, &[], &mut |k, _| {
        open_ids.extend(keys::decode_id(k));
        true
    })?;
    for id in open_ids {
        let key = keys::id_key(id);
        let Some(bytes) = backend.get(Cf::Alarms, &key)? else {
            return Err(StoreError::Corrupt {
                cf: Cf::Open.name(),
                key: id.to_string(),
                reason: "indexed as open but no alarm record".into(),
            });
        };
        let alarm: Alarm = keys::decode(Cf::Alarms, &key, &bytes)?;
        let next_seq = keys::next_audit_seq(backend, alarm.id)?;
        out.open_alarms.push((alarm, next_seq));
    }

    backend.scan(Cf::Seen, &[], &mut |k, v| {
        if let (Some(device), Some(at)) = (keys::decode_device_prefix(k), keys::decode_id(v)) {
            out.seen.push((device, at as UnixMillis));
        }
        true
    })?;

    backend.scan(Cf::Rules, &[], &mut |k, v| {
        // A state that no longer reads starts afresh (armed) rather than stopping recovery.
        match (keys::decode_rule_key(k), serde_json::from_slice(v)) {
            (Some((device, rule)), Ok(state)) => out.rule_states.push((device, rule, state)),
            _ => tracing::warn!("unreadable activity rule state skipped"),
        }
        true
    })?;

    let mut expired = WriteSet::new();
    let mut err = None;
    backend.scan(Cf::Idem, &[], &mut |k, v| {
        let rec: IdemRecord = match keys::decode(Cf::Idem, k, v) {
            Ok(r) => r,
            Err(e) => {
                err = Some(e);
                return false;
            }
        };
        match keys::decode_idem_key(k) {
            Some(key) if opts.now_ms - rec.at_ms < opts.idem_window_ms => out.idem.push((key, rec)),
            _ => expired.delete(Cf::Idem, k.to_vec()),
        }
        true
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    out.idem_expired = expired.len();
    if !expired.is_empty() {
        backend.write_synced(std::slice::from_ref(&expired))?;
    }
    out.took = started.elapsed();
    Ok(out)
}
