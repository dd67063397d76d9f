//! A cluster node's part in moving an alarm from one node to another (issue 23; ARCHITECTURE.md,
//! "Alarm handover"): taking over the open alarms of a node that is gone, for the devices whose
//! partitions this node owns, settling which node holds an alarm when two did (a node that
//! comes back, or wakes, to find its alarm taken over), and answering a device's resend to
//! this node (its second receiver) as the node that took the message answered it.
//!
//! Which of two records of one alarm wins is decided alike on every node: the higher version
//! (audit records), then the higher holder range. A taker adds an audit record, so its record
//! is above the gone holder's last; two nodes that changed the alarm at once have different
//! ranges, so exactly one of them keeps it.
use super::{Batch, Shard};
use vaka_core::alarm::{AlarmInput, AlarmState, AuditRecord};
use vaka_core::idempotency::{Answer, GivenAnswer, IdemKey};
use vaka_core::Effect;
use vaka_store::Replica;

impl Shard {
    /// Takes over `replica`'s alarm: open, its holder gone (the caller knows), and its device
    /// in a partition this node owns. It keeps its id and its deadline as it stood (one that
    /// passed while nobody held it fires now), is offered again to the centre that had it (a
    /// centre that had the offer from the gone node deduplicates it by id) or to the chain if
    /// unhandled, waits for a centre if pending, and is appended as this node's, so every
    /// other node's replica names this node from then on.
    pub(super) fn adopt(&mut self, replica: Replica, b: &mut Batch) {
        let id = replica.alarm.id;
        if !replica.alarm.is_open() || !self.cfg.owners.owns(&replica.alarm.device) {
            return;
        }
        // Held here already, or ended here (taken over before, or this node's own).
        if self.alarms.contains_key(&id) || !matches!(self.store.alarm(id), Ok(None)) {
            return;
        }
        let Replica {
            holder,
            version,
            mut alarm,
            ..
        } = replica;
        tracing::warn!(alarm = %id, device = %alarm.device, holder = %holder, state = alarm.state.name(),
            "cluster: taking over an open alarm of a node that is gone");
        metrics::counter!("vaka_cluster_alarms_taken_over_total").increment(1);
        let mut effects = vec![Effect::Audit(AuditRecord {
            alarm: id,
            at_ms: b.now,
            actor: "engine".into(),
            action: "taken_over".into(),
            reason: format!("its holder, cluster node {holder}, is gone"),
        })];
        match &alarm.state {
            AlarmState::Offered { centre }
            | AlarmState::Receipted { centre }
            | AlarmState::Accepted { centre, .. } => effects.push(Effect::Offer {
                centre: centre.clone(),
                unhandled: false,
            }),
            AlarmState::Unhandled => {
                let dir = self.dir.load();
                effects.extend(dir.alarm_chain(&alarm).iter().map(|c| Effect::Offer {
                    centre: c.clone(),
                    unhandled: true,
                }));
            }
            _ => {}
        }
        let pending = matches!(alarm.state, AlarmState::Pending);
        // Known before `apply` so that it counts on from the holder's audit records.
        self.keep_alarm(alarm.clone(), version);
        alarm.updated_ms = b.now;
        self.apply(alarm, &effects, b);
        if pending {
            if let Err(e) = self.transition(id, &AlarmInput::Dispatch, b) {
                tracing::warn!(alarm = %id, error = %e, "dispatch of a taken-over alarm failed");
            }
        }
    }

    /// Another node's record of an alarm this node holds (or held): the later one wins. The
    /// other's: this node lets the alarm go (its deadline, its record; the audit trail stays)
    /// and keeps the replica, so the alarm is offered and escalated by one node from then on.
    /// This node's: nothing changes (the listings show its own record; the follower, the
    /// replicas' one writer, forgets the replica when it reads this node's next record).
    pub(super) fn replicated(&mut self, replica: Replica, b: &mut Batch) {
        let id = replica.alarm.id;
        let own_version = match self.alarms.get(&id) {
            Some(own) => own.next_audit,
            // Not open here (ended here, or let go before): its record, if any, against the
            // replica, its version read from its trail.
            None => match (self.store.alarm(id), self.store.next_audit_seq(id)) {
                (Ok(Some(_)), Ok(next)) => next,
                _ => return,
            },
        };
        if !replica.later_than(own_version, self.cfg.id_range) {
            return;
        }
        if self.alarms.contains_key(&id) {
            tracing::warn!(alarm = %id, holder = %replica.holder,
                "cluster: an alarm this node held was taken over by another node; letting it go");
            metrics::counter!("vaka_cluster_alarms_let_go_total").increment(1);
            self.let_go(id);
        }
        b.set.drop_alarm(id);
    }

    /// Another node's answer to a device's alarm-lane message, its input stamped `at`: kept
    /// as if this node had given it (and stored, so a restart keeps it), so the device's resend
    /// here is answered with that node's event and alarm, and opens no second alarm. Past the
    /// window, or for a device this node no longer has, it is not kept. This node's own answer
    /// to the same message (the device sent it to both at once, and each opened an alarm
    /// before the stream told them apart) stays: two alarms, counted and logged, never one lost.
    /// While that answer is not yet durable, the other's waits: it is kept if this node's
    /// batch fails (the append refuses a message the stream kept another copy of).
    pub(super) fn answered_elsewhere(&mut self, given: GivenAnswer, at: i64, b: &mut Batch) {
        if b.now - at >= self.idem.window_ms()
            || self.dir.load().device(&given.key.device).is_none()
        {
            return;
        }
        match self.idem.get(&given.key, b.now) {
            Some(here) if here == given.answer => {}
            Some(_) if self.pending.contains_key(&given.key) => {
                self.answered_elsewhere_in_flight
                    .insert(given.key, (given.answer, at));
            }
            Some(_) => self.answered_twice(&given.key, given.answer, b.now),
            None => {
                b.set.put_idem(&given.key, given.answer, at);
                self.follow_answer(given.key, given.answer, at);
            }
        }
    }

    /// Keeps another node's answer to `key` in the idempotency window.
    pub(super) fn follow_answer(&mut self, key: IdemKey, answer: Answer, at: i64) {
        self.idem.record(key, answer, at);
        metrics::counter!("vaka_cluster_answers_followed_total").increment(1);
    }

    /// `key` was answered here and, with another alarm, `elsewhere`.
    pub(super) fn answered_twice(&self, key: &IdemKey, elsewhere: Answer, now: i64) {
        let here = self.idem.get(key, now).and_then(|a| a.alarm);
        tracing::error!(device = %key.device, key = %key.key, here = ?here, elsewhere = ?elsewhere.alarm,
            "cluster: one message of a device answered by two nodes, each with an alarm of its own");
        metrics::counter!("vaka_cluster_answered_twice_total").increment(1);
    }
}
