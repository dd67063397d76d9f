//! The shard's activity rules (`vaka_core::rules`): each device's rule states, kept durably in
//! the store's `rules` column family in the same write set as the event that moved them, their
//! timers, and the engine-made `EventKind::Rule` events that open and restore their alarms
//! (handled like any alarm event, through the device's chain for the rule's kind).
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::{Batch, LaneState, Shard};
use vaka_core::directory::Directory;
use vaka_core::rules::{Outcome, Rule, RuleState};
use vaka_core::{DeviceKey, Event, EventId, EventKind, UnixMillis};

/// Rule states and timers of the shard's devices.
#[derive(Default)]
pub(super) struct Rules {
    states: HashMap<(DeviceKey, String), RuleState>,
    timers: BTreeSet<(UnixMillis, DeviceKey, String)>,
    /// Timers that came due for devices another node owns: held back, fired should this node
    /// take their partition over.
    parked: BTreeSet<(UnixMillis, DeviceKey, String)>,
}

impl Rules {
    pub(super) fn next_due(&self) -> Option<UnixMillis> {
        self.timers.first().map(|t| t.0)
    }

    /// Keeps `state` and its timer.
    fn keep(&mut self, device: &DeviceKey, rule: &str, state: RuleState) {
        let key = (device.clone(), rule.to_owned());
        if let Some(old) = self.states.get(&key).and_then(|s| s.due) {
            self.timers.remove(&(old, device.clone(), rule.to_owned()));
            self.parked.remove(&(old, device.clone(), rule.to_owned()));
        }
        if let Some(due) = state.due {
            self.timers.insert((due, device.clone(), rule.to_owned()));
        }
        self.states.insert(key, state);
    }

    fn forget(&mut self, device: &DeviceKey, rule: &str) {
        let key = (device.clone(), rule.to_owned());
        if let Some(due) = self.states.remove(&key).and_then(|s| s.due) {
            self.timers.remove(&(due, device.clone(), rule.to_owned()));
            self.parked.remove(&(due, device.clone(), rule.to_owned()));
        }
    }

    /// The state of each rule of `device` (for status pages and tests).
    pub(super) fn of(&self, device: &DeviceKey) -> Vec<(String, RuleState)> {
        let mut out: Vec<_> = self
            .states
            .iter()
            .filter(|((d, _), _)| d == device)
            .map(|((_, r), s)| (r.clone(), s.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

fn rules_of(dir: &Directory, device: &DeviceKey) -> Vec<Rule> {
    dir.device(device)
        .map(|d| d.rules.clone())
        .unwrap_or_default()
}

impl Shard {
    /// At start-up: the recovered states of this shard's devices whose rules still exist (a
    /// timer that came due while the engine was down fires at once); rules without a state
    /// start from now.
    pub(super) fn rules_from_start(&mut self, recovered: Vec<(DeviceKey, String, RuleState)>) {
        let now = self.clock.now_ms();
        let dir: Arc<Directory> = self.dir.snapshot();
        for (device, rule, state) in recovered {
            if rules_of(&dir, &device).iter().any(|r| r.id == rule) {
                self.rules.keep(&device, &rule, state);
            }
        }
        let mine: Vec<DeviceKey> = dir
            .devices
            .values()
            .filter(|d| d.key.shard(self.shards) == self.id && !d.rules.is_empty())
            .map(|d| d.key.clone())
            .collect();
        for device in mine {
            self.start_rules(&dir, &device, now, None);
        }
    }

    /// Rules of `device` without a state get a fresh one (written to `b` when given).
    fn start_rules(
        &mut self,
        dir: &Directory,
        device: &DeviceKey,
        now: UnixMillis,
        mut b: Option<&mut Batch>,
    ) {
        let tz = dir.time_zone(&device.tenant).clone();
        for rule in rules_of(dir, device) {
            if self
                .rules
                .states
                .contains_key(&(device.clone(), rule.id.clone()))
            {
                continue;
            }
            let mut state = RuleState::default();
            rule.start(&mut state, now, &tz);
            match b.as_deref_mut() {
                Some(b) => self.set_rule_state(device, &rule.id, state, b),
                None => self.rules.keep(device, &rule.id, state),
            }
        }
    }

    /// The directory changed for `devices`: states of rules gone are dropped, new rules start.
    pub(super) fn rules_changed(&mut self, devices: &[DeviceKey], b: &mut Batch) {
        let dir: Arc<Directory> = self.dir.snapshot();
        let (shards, id) = (self.shards, self.id);
        for device in devices.iter().filter(|d| d.shard(shards) == id) {
            let now_rules = rules_of(&dir, device);
            for (rule, _) in self.rules.of(device) {
                if !now_rules.iter().any(|r| r.id == rule) {
                    self.rules.forget(device, &rule);
                    b.set.delete_rule_state(device, &rule);
                }
            }
            self.start_rules(&dir, device, b.now, Some(b));
        }
    }

    /// A device event (stored as `id`): every rule of the device it is input to steps; what
    /// fires or restores becomes an engine-made event in this same batch. An event another
    /// cluster node took (`taken_here` false) steps the states alike, but what it fires is
    /// that node's alarm to make, as the alarms of the events it takes are.
    pub(super) fn rules_on_event(
        &mut self,
        lane: &mut LaneState,
        ev: &Event,
        id: EventId,
        taken_here: bool,
        b: &mut Batch,
    ) {
        // Every device event passes here: a device without rules costs one lock-free load,
        // not the snapshot's reference count.
        let has_rules = |d: &Directory| d.device(&ev.device).is_some_and(|d| !d.rules.is_empty());
        if !has_rules(&self.dir.load()) {
            return;
        }
        let dir: Arc<Directory> = self.dir.snapshot();
        let Some(device) = dir.device(&ev.device) else {
            return;
        };
        if device.rules.is_empty() {
            return;
        }
        let tz = dir.time_zone(&ev.device.tenant);
        // The device's time when it gave one (never after its arrival), else the batch's.
        let at = ev.occurred_ms.map_or(b.now, |_| ev.at().min(b.now));
        for rule in &device.rules {
            let Some(input) = rule.input(ev) else {
                continue;
            };
            let key = (ev.device.clone(), rule.id.clone());
            let mut state = self.rules.states.get(&key).cloned().unwrap_or_default();
            let Ok(outcomes) = rule.step(&mut state, input, id, at, b.now, tz) else {
                metrics::counter!("vaka_rule_inputs_too_late_total", "kind" => rule.kind_name())
                    .increment(1);
                tracing::warn!(device = %ev.device, rule = %rule.id, event = id.0,
                    at, "reading older than the rule's reorder span: not taken");
                continue;
            };
            self.set_rule_state(&ev.device, &rule.id, state, b);
            for (i, out) in outcomes.into_iter().enumerate() {
                // The state fired on every node alike; the alarm is made by the node that took
                // the event.
                if !taken_here && matches!(out, Outcome::Fire { .. }) {
                    continue;
                }
                self.rule_event(lane, &ev.device, rule, out, i, b);
            }
        }
    }

    /// Rule timers due by the batch's time.
    pub(super) fn fire_rules(&mut self, b: &mut Batch, lane: &mut LaneState) {
        let dir: Arc<Directory> = self.dir.snapshot();
        while let Some((at, device, rule_id)) = self.rules.timers.first().cloned() {
            if at > b.now {
                break;
            }
            self.rules
                .timers
                .remove(&(at, device.clone(), rule_id.clone()));
            // Another node owns the device's partition and fires its rules.
            if !self.cfg.owners.owns(&device) {
                self.rules.parked.insert((at, device, rule_id));
                continue;
            }
            let Some(rule) = rules_of(&dir, &device)
                .into_iter()
                .find(|r| r.id == rule_id)
            else {
                self.rules.states.remove(&(device.clone(), rule_id));
                continue;
            };
            let key = (device.clone(), rule_id.clone());
            let mut state = self.rules.states.get(&key).cloned().unwrap_or_default();
            // The timer's own time: a restart after the due time fires as of then.
            let out = rule.on_due(&mut state, at.max(0), dir.time_zone(&device.tenant));
            self.set_rule_state(&device, &rule_id, state, b);
            if let Some(out) = out {
                self.rule_event(lane, &device, &rule, out, 0, b);
            }
        }
    }

    /// Another node made a rule's alarm when the rule's timer came due there (its owner: the
    /// rule event, followed). This node's timer for that rule, held back or about to be, runs
    /// its course without an alarm, so taking the partition over makes no second one.
    pub(super) fn rule_fired_elsewhere(&mut self, device: &DeviceKey, code: &str, b: &mut Batch) {
        let dir: Arc<Directory> = self.dir.snapshot();
        let Some(rule) = rules_of(&dir, device)
            .into_iter()
            .find(|r| r.code() == code)
        else {
            return;
        };
        let key = (device.clone(), rule.id.clone());
        let Some(mut state) = self.rules.states.get(&key).cloned() else {
            return;
        };
        // Not due here: the states went apart (an event one node had and the other not yet).
        let Some(due) = state.due.filter(|d| *d <= b.now) else {
            return;
        };
        let _made_there = rule.on_due(&mut state, due, dir.time_zone(&device.tenant));
        self.set_rule_state(device, &rule.id, state, b);
    }

    /// A rule's new state: written with the batch, and kept here.
    fn set_rule_state(&mut self, device: &DeviceKey, rule: &str, state: RuleState, b: &mut Batch) {
        b.set.put_rule_state(device, rule, &state);
        b.inflight.rules.push(device.clone());
        self.rules.keep(device, rule, state);
    }

    /// Partitions were gained: the rule timers held back for their devices are due again.
    pub(super) fn unpark_rules(&mut self) {
        let owned: Vec<_> = self
            .rules
            .parked
            .iter()
            .filter(|(_, d, _)| self.cfg.owners.owns(d))
            .cloned()
            .collect();
        for t in owned {
            self.rules.parked.remove(&t);
            self.rules.timers.insert(t);
        }
    }

    /// A commit that wrote `device`'s rule states failed: memory goes back to what the store
    /// holds (a rule that fired in the lost batch fires again; its alarm was lost with it).
    pub(super) fn reload_rules(&mut self, device: &DeviceKey) {
        for (rule, _) in self.rules.of(device) {
            self.rules.forget(device, &rule);
        }
        match self.store.rule_states(device) {
            Ok(states) => {
                for (rule, state) in states {
                    self.rules.keep(device, &rule, state);
                }
            }
            Err(e) => tracing::error!(device = %device, error = %e, "rule states unreadable"),
        }
        let dir = self.dir.snapshot();
        self.start_rules(&dir, device, self.clock.now_ms(), None);
    }

    fn rule_event(
        &mut self,
        lane: &mut LaneState,
        device: &DeviceKey,
        rule: &Rule,
        out: Outcome,
        nth: usize,
        b: &mut Batch,
    ) {
        let code = rule.code();
        let (fired, text) = match out {
            Outcome::Fire { text, causes } => {
                let ids: Vec<String> = causes.iter().map(|c| c.0.to_string()).collect();
                metrics::counter!("vaka_rules_fired_total", "kind" => rule.kind_name())
                    .increment(1);
                tracing::info!(device = %device, rule = %rule.id, %text, "activity rule fired");
                let text = if ids.is_empty() {
                    text
                } else {
                    format!("{text} (events {})", ids.join(", "))
                };
                (true, text)
            }
            Outcome::Restore { text } => (false, text),
        };
        let event = Event {
            device: device.clone(),
            // One step may fire and end more than once (late readings replayed): `nth` keeps
            // the keys apart.
            key: match (if fired { "fired" } else { "ended" }, nth) {
                (what, 0) => format!("{code}/{what}/{}", b.now),
                (what, n) => format!("{code}/{what}/{}/{n}", b.now),
            },
            received_ms: b.now,
            kind: EventKind::Rule { code, fired, text },
            fix: None,
            raw: b"activity rule".to_vec(),
            occurred_ms: None,
        };
        self.handle(lane, event, None, b);
    }
}
