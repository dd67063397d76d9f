//! A store outage while a deadline is due (found by the deterministic simulation, seed 306):
//! the deadline's transition fails, the alarm is reloaded as it was (its deadline due again),
//! and the shard must not fire it again at once in a loop: that spun for the whole outage and,
//! the timer being polled before the alarm lane, left alarms arriving meanwhile unanswered.
mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use support::*;
use vaka_core::alarm::Notice;
use vaka_core::{AlarmState, CentreId};
use vaka_router::{Clock, Reply, RouterConfig, SubmitError};
use vaka_store::{read_outbox, Backend, MemBackend, StoreState};

const T0: i64 = 1_700_000_000_000;

/// Polls `f` (yielding to the shards in between) until it is ready or `secs` of real time pass.
async fn within_real<F: std::future::Future>(secs: u64, f: F) -> Option<F::Output> {
    let until = Instant::now() + Duration::from_secs(secs);
    let mut f = std::pin::pin!(f);
    while Instant::now() < until {
        if let Poll::Ready(v) = futures::poll!(f.as_mut()) {
            return Some(v);
        }
        tokio::task::yield_now().await;
    }
    None
}

#[tokio::test(start_paused = true)]
async fn a_due_deadline_during_a_store_outage_neither_spins_nor_starves_the_alarm_lane() {
    let mut dir = directory(2);
    let t = dir.tenants.get_mut(&vaka_core::TenantId::new("t")).unwrap();
    t.chain = vec![CentreId::new("c1"), CentreId::new("c2")];
    let mem = Arc::new(MemBackend::new());
    let disk = Faulty::new(mem.clone());
    // One batch in flight per lane: the deadline's failing batch is all the lane may have.
    let rc = RouterConfig {
        shards: 1,
        max_inflight: 1,
        reconnect_grace_ms: 0,
        ..RouterConfig::default()
    };
    let (store, router) = start_router(disk.clone(), dir, rc, Clock::starting_at(T0));
    router.centre_up(&CentreId::new("c1")).await;
    router.centre_up(&CentreId::new("c2")).await;
    let first = match router.submit(alarm("d0", "r1")).await.unwrap() {
        Reply::Accepted { alarm: Some(a), .. } => a,
        other => panic!("{other:?}"),
    };

    // The disk fails; c1's receipt deadline passes: its escalation to c2 cannot be written.
    disk.fail.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_millis(10_001)).await;
    // An alarm from another device arrives meanwhile: it is answered (refused, nothing can be
    // written), not left waiting behind the deadline for as long as the outage lasts.
    let second = within_real(5, router.submit(alarm("d1", "r2")))
        .await
        .expect("an alarm during a store outage is answered");
    assert!(matches!(second, Err(SubmitError::Store(_))), "{second:?}");

    // The disk is back; the store recovers (it retries after 1 s) and, once the pause after the
    // failure is over, the deadline fires again: the alarm is escalated to c2.
    disk.fail.store(false, Ordering::SeqCst);
    let mut state = store.state();
    within_real(10, state.wait_for(|s| *s == StoreState::Serving))
        .await
        .expect("the store recovers")
        .unwrap();
    tokio::time::advance(Duration::from_millis(1_000)).await;
    let escalated = within_real(5, async {
        loop {
            let c2 =
                read_outbox(mem.as_ref() as &dyn Backend, &CentreId::new("c2"), 0, 10).unwrap();
            if let Some((_, n)) = c2
                .into_iter()
                .find(|(_, n)| matches!(n, Notice::Offer { .. }))
            {
                return n;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the deadline fires once the store is back");
    assert_eq!(escalated.alarm().id, first);
    assert_eq!(
        escalated.alarm().state,
        AlarmState::Offered {
            centre: CentreId::new("c2")
        }
    );
}
