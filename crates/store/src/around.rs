//! A device's events within a time window (an alarm's timeline). `events` is keyed by id, not by
//! device or time; ids grow with arrival, so the first event of the window is found by a binary
//! search over ids (a few seeks), then the window is read forward, at most `budget` events of
//! any device (a busy engine's window may hold many), and the device's kept.
use crate::backend::{Backend, Cf, StoreError};
use crate::keys::{decode_event, decode_id, id_key, StoredEvent};
use crate::Store;
use vaka_core::{DeviceKey, UnixMillis};

/// Arrival order and id order differ by at most about this much (ids are given as events are
/// taken, times stamped at the fronts): the search starts this much early, the read ends this
/// much late.
const SLACK_MS: i64 = 60_000;

/// What [`Store::device_events_around`] found.
#[derive(Debug, Default)]
pub struct EventsAround {
    pub events: Vec<StoredEvent>,
    /// The budget ran out (or `limit` events were found) before the window's end.
    pub truncated: bool,
}

/// The first event at or after id `from`: its id and arrival time.
fn first_from(backend: &dyn Backend, from: u64) -> Result<Option<(u64, UnixMillis)>, StoreError> {
    let mut found = None;
    let mut err = None;
    backend.scan_from(Cf::Events, &[], &id_key(from), &mut |k, v| {
        match (decode_id(k), decode_event(k, v)) {
            (Some(id), Ok(e)) => found = Some((id, e.event.received_ms)),
            (_, Err(e)) => err = Some(e),
            (None, _) => return true,
        }
        false
    })?;
    err.map_or(Ok(found), Err)
}

impl Store {
    /// `device`'s events received within `[from_ms, to_ms]`, oldest first, at most `limit`,
    /// reading at most `budget` events; `hint`: an id near the window (the alarm's).
    pub fn device_events_around(
        &self,
        device: &DeviceKey,
        from_ms: UnixMillis,
        to_ms: UnixMillis,
        hint: u64,
        limit: usize,
        budget: usize,
    ) -> Result<EventsAround, StoreError> {
        let b = self.backend().as_ref();
        // The smallest id whose next event arrived at or after the window's start (less slack).
        let (mut lo, mut hi) = (0u64, hint.saturating_add(1));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match first_from(b, mid)? {
                Some((_, at)) if at >= from_ms - SLACK_MS => hi = mid,
                Some((id, _)) => lo = id.max(mid) + 1,
                None => hi = mid,
            }
        }
        let mut out = EventsAround::default();
        let (mut read, mut err) = (0usize, None);
        b.scan_from(Cf::Events, &[], &id_key(lo), &mut |k, v| {
            let e = match decode_event(k, v) {
                Ok(e) => e,
                Err(e) => {
                    err = Some(e);
                    return false;
                }
            };
            if e.event.received_ms > to_ms + SLACK_MS {
                return false;
            }
            read += 1;
            let inside = (from_ms..=to_ms).contains(&e.event.received_ms);
            if inside && &e.event.device == device {
                out.events.push(e);
            }
            if read >= budget || out.events.len() >= limit {
                out.truncated = true;
                return false;
            }
            true
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        out.events.sort_by_key(|e| (e.event.received_ms, e.id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GroupConfig, MemBackend, RecoverOptions, WriteSet};
    use std::sync::Arc;
    use vaka_core::{Event, EventId, EventKind};

    fn ev(device: &str, received_ms: i64) -> Event {
        Event {
            device: DeviceKey::new("t", device),
            key: format!("k{received_ms}"),
            received_ms,
            kind: EventKind::Heartbeat,
            fix: None,
            raw: Vec::new(),
            occurred_ms: None,
        }
    }

    #[test]
    fn finds_the_devices_events_in_the_window_among_many() {
        let backend = Arc::new(MemBackend::default());
        let mut set = WriteSet::new();
        // 10,000 events a second apart, every tenth of device "a"; some ids skipped.
        for i in 0..10_000u64 {
            if i % 7 == 3 {
                continue;
            }
            let device = if i % 10 == 0 { "a" } else { "b" };
            set.put_event(EventId(i + 1), &ev(device, 1_000_000 + i as i64 * 1_000));
        }
        backend.write_synced(&[set]).unwrap();
        let (store, _) = Store::open(
            backend,
            GroupConfig::default(),
            RecoverOptions {
                now_ms: 0,
                idem_window_ms: 1,
            },
        )
        .unwrap();
        let a = DeviceKey::new("t", "a");
        let (from, to) = (1_000_000 + 5_000_000, 1_000_000 + 5_100_000);
        let got = store
            .device_events_around(&a, from, to, 5_050, 1_000, 100_000)
            .unwrap();
        let times: Vec<i64> = got.events.iter().map(|e| e.event.received_ms).collect();
        let want: Vec<i64> = (5_000..=5_100u64)
            .filter(|i| i % 10 == 0 && i % 7 != 3)
            .map(|i| 1_000_000 + i as i64 * 1_000)
            .collect();
        assert_eq!(times, want);
        assert!(!got.truncated);
        // A small budget says it stopped short.
        let short = store
            .device_events_around(&a, from, to, 5_050, 1_000, 10)
            .unwrap();
        assert!(short.truncated && short.events.len() < want.len());
        store.close().unwrap();
    }
}
