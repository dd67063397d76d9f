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
                    self.parked_silence.remove(device);
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
        self.parked_silence.remove(&device);
        self.silence.insert((at, device));
    }

    /// A supervised device was heard: push its silence deadline out, note it durably, and end a
    /// "device silent" alarm it may have.
    pub(super) fn heard(&mut self, device: &DeviceKey, b: &mut Batch) {
        self.heard_at(device, b.now, false, b);
    }

    /// [`Self::heard`] at `heard_ms`, by another node: a cluster node hears of a device that
    /// another node took an event from when its follower stores that event, a moment later.
    /// News older than what the deadline already counts from changes nothing.
    pub(super) fn heard_elsewhere(
        &mut self,
        device: &DeviceKey,
        heard_ms: UnixMillis,
        b: &mut Batch,
    ) {
        self.heard_at(device, heard_ms, true, b);
    }

    fn heard_at(
        &mut self,
        device: &DeviceKey,
        heard_ms: UnixMillis,
        later_only: bool,
        b: &mut Batch,
    ) {
        let Some(silence) = self.silence_of(device) else {
            return;
        };
        let at = silence.silent_at(heard_ms);
        // News so old that the device would be silent by it already says nothing new.
        if later_only && at <= b.now {
            return;
        }
        match self.silent_at.get(device) {
            Some(due) if later_only && *due > at => return,
            Some(due) if *due == at => {}
            _ => self.arm_silence(device.clone(), at),
        }
        b.set.put_seen(device, heard_ms);
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

    /// Another cluster node (its partition's owner) called the device silent: this node holds
    /// no deadline of its own for it until the device is heard again, so taking the partition
    /// over makes no second alarm.
    pub(super) fn silent_elsewhere(&mut self, device: &DeviceKey) {
        if let Some(at) = self.silent_at.remove(device) {
            self.silence.remove(&(at, device.clone()));
        }
        self.parked_silence.remove(device);
    }

    /// Whether another cluster node holds an open "device silent" alarm of `device` (this node
    /// let it go, or took the partition over from a node that called it): the device is
    /// called silent already, and a second alarm would only repeat it.
    fn silent_alarm_held_elsewhere(&self, device: &DeviceKey) -> bool {
        if self.cfg.intake.is_none() {
            return false;
        }
        match self.store.open_listed_of(device) {
            Ok(open) => open
                .iter()
                .any(|l| l.holder.is_some() && l.alarm.kind == AlarmKind::Silent),
            Err(e) => {
                tracing::warn!(device = %device, error = %e, "reading the device's open alarms failed; calling it silent");
                false
            }
        }
    }

    /// Partitions were gained: the deadlines held back for their devices are due again (those
    /// past fire at once: if the old owner called the device silent too, a duplicate; never a
    /// device nobody calls silent).
    pub(super) fn unpark_silence(&mut self) {
        let owned: Vec<(DeviceKey, UnixMillis)> = self
            .parked_silence
            .iter()
            .filter(|(d, _)| self.cfg.owners.owns(d))
            .map(|(d, at)| (d.clone(), *at))
            .collect();
        for (device, at) in owned {
            self.parked_silence.remove(&device);
            self.silence.insert((at, device));
        }
    }

    /// Devices whose silence deadline has passed get one "device silent" alarm each.
    pub(super) fn fire_silence(&mut self, b: &mut Batch, lane: &mut LaneState) {
        while let Some((at, device)) = self.silence.first().cloned() {
            if at > b.now {
                break;
            }
            self.silence.remove(&(at, device.clone()));
            // Another node owns the device's partition and calls it silent; this node holds
            // the deadline back and fires it should it take the partition over.
            if !self.cfg.owners.owns(&device) {
                self.parked_silence.insert(device, at);
                continue;
            }
            self.silent_at.remove(&device);
            if self.silent_alarm_held_elsewhere(&device) {
                continue;
            }
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
