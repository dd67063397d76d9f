//! When a device resends its MESSAGE and when it stops waiting for a final response, without
//! I/O. The schedule is `vaka_scaip`'s client transaction (RFC 3261 §17.1.2.2, the one the
//! engine uses for its own `<mrs>`): over UDP resend after T1, doubling up to T2 (every T2 once
//! a provisional response came), and give up at Timer F (64*T1, 32 s); over TCP never resend,
//! only time out. On top of it a load run may give up earlier: `SipOptions::timeout`
//! (`--sip-timeout-ms`), so that a short run counts its losses as `timeout` before it ends.
use std::time::Duration;

use tokio::time::Instant;
use vaka_scaip::transaction::{ClientRetransmit, RetransmitAction};

/// What is due for a request without a final response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Nothing before `until`.
    Wait { until: Instant },
    /// Send the same bytes again now.
    Resend,
    /// No final response in time: the event is a `timeout`.
    GiveUp,
}

/// The timers of one MESSAGE transaction, from its first sending.
#[derive(Clone, Debug)]
pub struct Retransmission {
    /// When the request was first sent: the timer counts milliseconds from here.
    start: Instant,
    timer: ClientRetransmit,
    /// The load run's own give-up (`SipOptions::timeout`); Timer F still applies if it is
    /// shorter.
    give_up: Instant,
}

impl Retransmission {
    /// The request was first sent at `now`; `reliable` is TCP (no resending).
    pub fn new(now: Instant, reliable: bool, timeout: Duration) -> Retransmission {
        Retransmission {
            start: now,
            timer: ClientRetransmit::new(0, reliable),
            give_up: now + timeout,
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        (self.start + Duration::from_millis(ms)).min(self.give_up)
    }

    /// A provisional (1xx) response arrived: resend every T2 from now on.
    pub fn on_provisional(&mut self, now: Instant) {
        self.timer.on_provisional(self.ms(now));
    }

    /// When [`Self::poll`] next has something to do.
    pub fn deadline(&self) -> Instant {
        self.at(self.timer.deadline())
    }

    /// What is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Due {
        if now >= self.give_up {
            return Due::GiveUp;
        }
        match self.timer.poll(self.ms(now)) {
            RetransmitAction::Wait { until_ms } => Due::Wait {
                until: self.at(until_ms),
            },
            RetransmitAction::Retransmit => Due::Resend,
            RetransmitAction::GiveUp => Due::GiveUp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `r` at each of its deadlines as the device task does: the resends (ms after the
    /// start) and when it gave up.
    fn schedule(mut r: Retransmission, provisional_ms: Option<u64>) -> (Vec<u64>, u64) {
        let start = r.start;
        let ms = |t: Instant| (t - start).as_millis() as u64;
        let mut provisional = provisional_ms.map(|p| start + Duration::from_millis(p));
        let mut resent = Vec::new();
        loop {
            let mut t = r.deadline();
            if let Some(p) = provisional.filter(|p| *p <= t) {
                r.on_provisional(p);
                provisional = None;
                t = r.deadline();
            }
            match r.poll(t) {
                Due::Resend => resent.push(ms(t)),
                Due::GiveUp => return (resent, ms(t)),
                Due::Wait { until } => {
                    panic!("polled at its deadline, told to wait until {until:?}")
                }
            }
        }
    }

    #[test]
    fn udp_resends_at_t1_doubling_to_t2_and_gives_up_at_timer_f() {
        let r = Retransmission::new(Instant::now(), false, Duration::from_secs(32));
        let (resent, gave_up) = schedule(r, None);
        assert_eq!(
            resent,
            [500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
        );
        assert_eq!(gave_up, 32_000);
    }

    #[test]
    fn a_provisional_response_slows_resends_to_t2() {
        let r = Retransmission::new(Instant::now(), false, Duration::from_secs(32));
        let (resent, gave_up) = schedule(r, Some(1_000));
        assert_eq!(
            resent,
            [500, 5_000, 9_000, 13_000, 17_000, 21_000, 25_000, 29_000]
        );
        assert_eq!(gave_up, 32_000);
    }

    #[test]
    fn tcp_never_resends_and_only_times_out() {
        let r = Retransmission::new(Instant::now(), true, Duration::from_secs(32));
        assert_eq!(schedule(r, Some(100)), (vec![], 32_000));
    }

    /// The load run's `--sip-timeout-ms`: shorter gives up sooner; longer cannot outlast
    /// Timer F.
    #[test]
    fn the_runs_timeout_gives_up_before_timer_f_never_after() {
        let short = Retransmission::new(Instant::now(), false, Duration::from_millis(1_800));
        assert_eq!(schedule(short, None), (vec![500, 1_500], 1_800));
        let tcp = Retransmission::new(Instant::now(), true, Duration::from_millis(1_800));
        assert_eq!(schedule(tcp, None), (vec![], 1_800));
        let long = Retransmission::new(Instant::now(), false, Duration::from_secs(60));
        assert_eq!(schedule(long, None).1, 32_000);
    }

    #[test]
    fn a_late_poll_resends_once_and_waits_a_full_interval() {
        let t0 = Instant::now();
        let mut r = Retransmission::new(t0, false, Duration::from_secs(32));
        let ms = |m| t0 + Duration::from_millis(m);
        assert_eq!(r.poll(ms(499)), Due::Wait { until: ms(500) });
        assert_eq!(r.poll(ms(5_000)), Due::Resend);
        assert_eq!(r.poll(ms(5_001)), Due::Wait { until: ms(6_000) });
    }
}
