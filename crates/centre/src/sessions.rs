//! One live stream per centre. A new connection of a centre replaces the one it has (typically a
//! half-open connection the centre has already given up on): the old stream is told to end with
//! ABORTED. Presence counts both for a moment, so the hand-over never looks like a disconnect.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use vaka_core::CentreId;

#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    live: Mutex<HashMap<CentreId, (u64, oneshot::Sender<()>)>>,
    next: AtomicU64,
}

/// A stream's registration; `replaced` resolves when a newer stream of the same centre takes over.
pub struct Registration {
    pub id: u64,
    pub replaced: oneshot::Receiver<()>,
}

impl Sessions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a new stream of `centre`, telling the previous one (if any) to end.
    pub fn open(&self, centre: &CentreId) -> Registration {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let old = self
            .inner
            .live
            .lock()
            .expect("sessions lock")
            .insert(centre.clone(), (id, tx));
        if let Some((_, kick)) = old {
            let _ = kick.send(());
        }
        Registration { id, replaced: rx }
    }

    /// Forgets stream `id` of `centre`, unless a newer one already took its place.
    pub fn close(&self, centre: &CentreId, id: u64) {
        let mut live = self.inner.live.lock().expect("sessions lock");
        if live.get(centre).is_some_and(|(cur, _)| *cur == id) {
            live.remove(centre);
        }
    }

    /// Centres with a live stream.
    pub fn connected(&self) -> usize {
        self.inner.live.lock().expect("sessions lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_stream_replaces_the_old_one() {
        let s = Sessions::new();
        let c = CentreId::new("c");
        let mut first = s.open(&c);
        assert!(first.replaced.try_recv().is_err());
        let mut second = s.open(&c);
        assert!(first.replaced.try_recv().is_ok(), "old stream told to end");
        // The old stream's late close leaves the new one registered.
        s.close(&c, first.id);
        assert_eq!(s.connected(), 1);
        assert!(second.replaced.try_recv().is_err());
        s.close(&c, second.id);
        assert_eq!(s.connected(), 0);
    }
}
