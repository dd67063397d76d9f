//! The shard's supervision of its devices: a silence deadline per supervised device (its
//! heartbeat interval, announced or configured, plus the grace), moved whenever the device is
//! heard and persisted as last-seen; when one passes, an engine-made "device silent" event;
//! the next message from the device restores that alarm.
use std::collections::HashMap;

use super::{Batch, LaneState, Shard, Waiter};
use crate::api::{CentreTx, InputError};
use vaka_core::alarm::AlarmInput;
use vaka_core::supervision::Silence;
use vaka_core::{AlarmId, AlarmKind, DeviceKey, Event, EventKind, UnixMillis};

impl Shard {
    /// At start-up: every supervised device of this shard gets its silence deadline from when
    /// it was last seen (persisted), or from now if never.
    pub(super) fn supervise_from_start(&mut self, seen: &HashMap<DeviceKey, UnixMillis>) {
        let started = self.clock.now_ms();
        let dir = self.dir.load();
        let supervised: Vec<(DeviceKey, Silence)> = dir
            .devices
            .values()
            .filter(|d| d.key.shard(self.shards) == self.id)
            .filter_map(|d| self.silence_of(&d.key).map(|s| (d.key.clone(), s)))
            .collect();
        for (device, silence) in supervised {
            let last = seen.get(&device).copied();
            let at = silence.silent_at_after_restart(last, started);
            self.arm_silence(device, at);
        }
    }

    /// How long the device may be silent (its category, else its interval, announced or
    /// configured, plus the grace); `None`: unsupervised.
    pub(super) fn silence_of(&self, device: &DeviceKey) -> Option<Silence> {
        let announced = self.intervals.get(device).copied();
        self.dir
            .load()
            .silence(device, announced, self.cfg.supervision_grace_ms)
    }

    /// The directory changed for `devices`: supervise those of this shard that now are, from
    /// now (as after a restart with no record of them), and stop supervising removed, disabled or
    /// no longer supervised ones. Other changes (chains, deadlines, fences) are read per event.
    pub(super) fn directory_changed(&mut self, devices: &[DeviceKey], now: UnixMillis) {
        let (shards, id) = (self.shards, self.id);
        for device in devices.iter().filter(|d| d.shard(shards) == id) {
            match self.silence_of(device) {
                Some(silence) => {
                    if !self.silent_at.contains_key(device) {
                        let at = silence.silent_at_after_restart(None, now);
                        self.arm_silence(device.clone(), at);
                    }
                }
                None => {
                    if let Some(at) = self.silent_at.remove(device) {
                        self.silence.remove(&(at, device.clone()));
                    }
                    if self.dir.load().device(device).is_none() {
                        self.intervals.remove(device);
                    }
                }
            }
        }
    }

    /// A device announced its heartbeat interval: kept durably, and the device counts as heard.
    pub(super) fn set_interval(
        &mut self,
        device: DeviceKey,
        secs: u32,
        reply: CentreTx,
        b: &mut Batch,
    ) {
        if self.dir.load().device(&device).is_none() {
            let _ = reply.send(Err(InputError::Invalid(format!("unknown device {device}"))));
            return;
        }
        if secs == 0 {
            let _ = reply.send(Err(InputError::Invalid(
                "a heartbeat interval must be at least 1 s".into(),
            )));
            return;
        }
        b.set.put_heartbeat_interval(&device, secs);
        self.intervals.insert(device.clone(), secs);
        self.heard(&device, b);
        b.inflight.waiters.push(Waiter::Centre(reply));
    }

    pub(super) fn arm_silence(&mut self, device: DeviceKey, at: UnixMillis) {
        if let Some(old) = self.silent_at.insert(device.clone(), at) {
            self.silence.remove(&(old, device.clone()));
        }
        self.silence.insert((at, device));
    }

    /// A supervised device was heard: push its silence deadline out, note it durably, and end a
    /// "device silent" alarm it may have.
    pub(super) fn heard(&mut self, device: &DeviceKey, b: &mut Batch) {
        let Some(silence) = self.silence_of(device) else {
            return;
        };
        let at = silence.silent_at(b.now);
        if self.silent_at.get(device) != Some(&at) {
            self.arm_silence(device.clone(), at);
        }
        b.set.put_seen(device, b.now);
        let silent: Vec<AlarmId> = self
            .by_device
            .get(device)
            .into_iter()
            .flatten()
            .filter_map(|id| self.alarms.get(id))
            .filter(|o| o.alarm.kind == AlarmKind::Silent)
            .filter(|o| !self.restored.contains(&o.alarm.id))
            .map(|o| o.alarm.id)
            .collect();
        let input = AlarmInput::Restored {
            reason: "device heard again".into(),
        };
        for id in silent {
            self.restored.insert(id);
            if let Err(e) = self.transition(id, &input, b) {
                tracing::warn!(alarm = %id, error = %e, "restoral not applied");
            }
        }
    }

    /// Devices whose silence deadline has passed get one "device silent" alarm each.
    pub(super) fn fire_silence(&mut self, b: &mut Batch, lane: &mut LaneState) {
        while let Some((at, device)) = self.silence.first().cloned() {
            if at > b.now {
                break;
            }
            self.silence.remove(&(at, device.clone()));
            self.silent_at.remove(&device);
            metrics::counter!("vaka_devices_silent_total").increment(1);
            tracing::warn!(device = %device, "device silent past its heartbeat interval");
            let event = Event {
                device: device.clone(),
                key: format!("silent-{at}"),
                received_ms: b.now,
                kind: EventKind::Silent,
                fix: None,
                raw: b"supervision".to_vec(),
                occurred_ms: None,
            };
            self.handle(lane, event, None, b);
            // Its silence alarm is live again: the next message restores it again.
            for id in self.by_device.get(&device).into_iter().flatten() {
                self.restored.remove(id);
            }
        }
    }
}
