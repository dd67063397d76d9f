//! Inputs in the order they happened, not the order they arrived. A sensor's reading may come
//! late (its radio link was down, a gateway resent it) and after a newer one. Each rule keeps
//! the inputs of the last [`REORDER_MS`] of device time and the state before the first of them;
//! a late input is put in its place and the rule is replayed from that state, timers included,
//! so the outcome is the one the rule would have reached had the inputs come in order. What was
//! already told to the outside (a fired alarm) cannot be taken back, so the replay is reconciled
//! with it: a condition the late input ends is restored, one it reveals is fired (and restored
//! at once if it is already over). An input older than the kept inputs is too late: not taken.
use super::eval::{Input, Kept, Outcome, Phase, Reorder, RuleState};
use super::Rule;
use crate::ids::{EventId, UnixMillis};
use jiff::tz::TimeZone;

/// How far back in device time a late input is still put in its place.
pub const REORDER_MS: i64 = 30 * 60_000;
/// At most this many inputs are kept per rule (a chatty sensor shortens the reach back).
pub const MAX_KEPT: usize = 64;
/// Timers run per replay step at most (a daily timer over the kept span needs a few).
const MAX_TIMER_RUNS: usize = 64;

/// The input is older than everything the rule keeps: it cannot be put in its place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLate;

impl Rule {
    /// An input from event `id` that happened at `at` (device time; taken as `now` if later),
    /// arriving at `now`. Timers due by `at` run first and those due by `now` after, so the
    /// rule is where it would be had every input arrived when it happened.
    pub fn step(
        &self,
        s: &mut RuleState,
        input: Input,
        id: EventId,
        at: UnixMillis,
        now: UnixMillis,
        tz: &TimeZone,
    ) -> Result<Vec<Outcome>, TooLate> {
        let kept = Kept {
            at: at.min(now),
            input,
            id,
        };
        if s.order.newest_at.is_some_and(|n| kept.at < n) {
            return self.late(s, kept, now, tz);
        }
        if s.order.recent.is_empty() {
            s.order.base = Some(Box::new(bare(s)));
            s.order.base_at = s.order.newest_at;
        }
        let mut out = Vec::new();
        self.run_timers(s, kept.at, tz, &mut out);
        out.extend(self.on_input(s, input, id, kept.at, tz));
        self.run_timers(s, now, tz, &mut out);
        s.order.recent.push(kept);
        s.order.newest_at = Some(kept.at);
        self.trim(s, tz);
        Ok(out)
    }

    /// A late input: replayed in its place, then reconciled with what was already told.
    fn late(
        &self,
        s: &mut RuleState,
        kept: Kept,
        now: UnixMillis,
        tz: &TimeZone,
    ) -> Result<Vec<Outcome>, TooLate> {
        let order = &s.order;
        let newest = order.newest_at.unwrap_or(kept.at);
        let floor = order
            .base_at
            .map_or(newest - REORDER_MS, |b| b.max(newest - REORDER_MS));
        let Some(base) = order.base.as_deref().filter(|_| kept.at >= floor) else {
            return Err(TooLate);
        };
        let base = base.clone();
        let (_, before) = self.replay(&base, &order.recent, now, tz);
        let mut recent = order.recent.clone();
        let place = recent.partition_point(|k| k.at <= kept.at);
        recent.insert(place, kept);
        let (mut after, outcomes) = self.replay(&base, &recent, now, tz);
        let told = reconcile(
            s.phase == Phase::Fired,
            after.phase == Phase::Fired,
            &after.causes,
            &before,
            &outcomes,
        );
        after.order = Reorder {
            newest_at: order.newest_at,
            recent,
            base: Some(Box::new(base)),
            base_at: order.base_at,
        };
        *s = after;
        self.trim(s, tz);
        Ok(told)
    }

    /// `base` moved through `inputs` (in time order) and their timers, then timers up to `now`.
    fn replay(
        &self,
        base: &RuleState,
        inputs: &[Kept],
        now: UnixMillis,
        tz: &TimeZone,
    ) -> (RuleState, Vec<Outcome>) {
        let mut s = base.clone();
        let mut out = Vec::new();
        for k in inputs {
            self.run_timers(&mut s, k.at, tz, &mut out);
            out.extend(self.on_input(&mut s, k.input, k.id, k.at, tz));
        }
        self.run_timers(&mut s, now, tz, &mut out);
        (s, out)
    }

    /// Every timer due by `until`, each at its own time.
    fn run_timers(
        &self,
        s: &mut RuleState,
        until: UnixMillis,
        tz: &TimeZone,
        out: &mut Vec<Outcome>,
    ) {
        for _ in 0..MAX_TIMER_RUNS {
            let Some(due) = s.due.filter(|d| *d <= until) else {
                return;
            };
            out.extend(self.on_due(s, due, tz));
            if s.due == Some(due) {
                return;
            }
        }
    }

    /// Drops the kept inputs that fell out of reach, moving `base` past them.
    fn trim(&self, s: &mut RuleState, tz: &TimeZone) {
        let o = &mut s.order;
        let newest = o.newest_at.unwrap_or(UnixMillis::MIN);
        while o.recent.len() > 1
            && (o.recent.len() > MAX_KEPT || o.recent[0].at < newest - REORDER_MS)
        {
            let k = o.recent.remove(0);
            let mut base = o.base.take().map(|b| *b).unwrap_or_default();
            // Told to the outside when it happened; only the state matters here.
            let mut told = Vec::new();
            self.run_timers(&mut base, k.at, tz, &mut told);
            self.on_input(&mut base, k.input, k.id, k.at, tz);
            o.base = Some(Box::new(base));
            o.base_at = Some(k.at);
        }
    }
}

/// The state without its reordering part.
fn bare(s: &RuleState) -> RuleState {
    RuleState {
        order: Reorder::default(),
        ..s.clone()
    }
}

/// What to tell the outside after a replay: `was_fired` is what it knows, `before` the outcomes
/// without the late input (already told), `after` those with it.
fn reconcile(
    was_fired: bool,
    now_fired: bool,
    causes: &[EventId],
    before: &[Outcome],
    after: &[Outcome],
) -> Vec<Outcome> {
    let fires = |o: &[Outcome]| {
        o.iter()
            .filter(|o| matches!(o, Outcome::Fire { .. }))
            .count()
    };
    let mut told = Vec::new();
    if was_fired && !now_fired {
        told.push(Outcome::Restore {
            text: "ended: a late report shows the condition did not last".into(),
        });
    }
    if was_fired && now_fired {
        // Its alarm is open: a past episode the late input revealed adds nothing to it.
        return told;
    }
    let episodes = episodes(after);
    let opening = now_fired && !was_fired;
    let revealed = fires(after).saturating_sub(fires(before));
    let closed = revealed.saturating_sub(usize::from(opening));
    let open_at_end = usize::from(now_fired && episodes.last().is_some_and(|e| e.1.is_none()));
    let done = &episodes[..episodes.len() - open_at_end];
    for (fire, restore) in &done[done.len().saturating_sub(closed)..] {
        told.push((*fire).clone());
        told.push(restore.map_or_else(
            || Outcome::Restore {
                text: "ended".into(),
            },
            Outcome::clone,
        ));
    }
    if opening {
        told.push(match episodes.last() {
            Some((fire, None)) => (*fire).clone(),
            // Fired before the kept inputs and not ended after all.
            _ => Outcome::Fire {
                text: "the condition holds: a late report".into(),
                causes: causes.to_vec(),
            },
        });
    }
    told
}

/// The fire outcomes of a run, each with the restore that ended it (if it ended).
fn episodes(outcomes: &[Outcome]) -> Vec<(&Outcome, Option<&Outcome>)> {
    let mut out: Vec<(&Outcome, Option<&Outcome>)> = Vec::new();
    for o in outcomes {
        match o {
            Outcome::Fire { .. } => out.push((o, None)),
            Outcome::Restore { .. } => {
                if let Some(last) = out.last_mut().filter(|l| l.1.is_none()) {
                    last.1 = Some(o);
                }
            }
        }
    }
    out
}
