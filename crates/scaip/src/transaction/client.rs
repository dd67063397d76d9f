//! Retransmission schedule of a non-INVITE client transaction (RFC 3261 §17.1.2.2), for the
//! MESSAGE that carries our `<mrs>`: over UDP resend after T1, doubling up to T2, and give
//! up at Timer F; over TCP/TLS never resend, only time out.

use super::{T1_MS, T2_MS, TIMER_F_MS};

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetransmitAction {
    /// Nothing until `until_ms`; call [`ClientRetransmit::poll`] again then.
    Wait {
        /// Next deadline.
        until_ms: u64,
    },
    /// Send the request again now.
    Retransmit,
    /// Timer F fired: the transaction failed (treat as 408).
    GiveUp,
}

/// Timer E / Timer F state for one outgoing request. Drop it when a final response arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRetransmit {
    give_up_at: u64,
    next_at: Option<u64>,
    interval: u64,
}

impl ClientRetransmit {
    /// Start when the request is first sent at `now_ms`.
    pub fn new(now_ms: u64, reliable: bool) -> ClientRetransmit {
        ClientRetransmit {
            give_up_at: now_ms + TIMER_F_MS,
            next_at: (!reliable).then_some(now_ms + T1_MS),
            interval: T1_MS,
        }
    }

    /// A provisional response arrived: keep resending, but every T2 (Proceeding state).
    pub fn on_provisional(&mut self, now_ms: u64) {
        if self.next_at.is_some() {
            self.interval = T2_MS;
            self.next_at = Some(now_ms + T2_MS);
        }
    }

    /// The next time `poll` has something to say.
    pub fn deadline(&self) -> u64 {
        self.next_at
            .map_or(self.give_up_at, |n| n.min(self.give_up_at))
    }

    /// Advance to `now_ms`.
    pub fn poll(&mut self, now_ms: u64) -> RetransmitAction {
        if now_ms >= self.give_up_at {
            self.next_at = None;
            return RetransmitAction::GiveUp;
        }
        match self.next_at {
            Some(at) if now_ms >= at => {
                self.interval = (self.interval * 2).min(T2_MS);
                // From the scheduled time, unless we were polled so late that it is past.
                let next = at + self.interval;
                self.next_at = Some(if next > now_ms {
                    next
                } else {
                    now_ms + self.interval
                });
                RetransmitAction::Retransmit
            }
            _ => RetransmitAction::Wait {
                until_ms: self.deadline(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive the schedule by always polling at the deadline; collect retransmit times.
    fn run(mut c: ClientRetransmit, provisional_at: Option<u64>) -> (Vec<u64>, u64) {
        let mut sent = Vec::new();
        let mut provisional = provisional_at;
        loop {
            let mut t = c.deadline();
            if let Some(p) = provisional.filter(|p| *p <= t) {
                c.on_provisional(p);
                provisional = None;
                t = c.deadline();
            }
            match c.poll(t) {
                RetransmitAction::Retransmit => sent.push(t),
                RetransmitAction::GiveUp => return (sent, t),
                RetransmitAction::Wait { .. } => panic!("polled at the deadline"),
            }
        }
    }

    #[test]
    fn udp_schedule() {
        let (sent, gave_up) = run(ClientRetransmit::new(0, false), None);
        assert_eq!(
            sent,
            [500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
        );
        assert_eq!(gave_up, 32_000);
    }

    #[test]
    fn proceeding_uses_t2() {
        let (sent, _) = run(ClientRetransmit::new(1_000, false), Some(2_000));
        assert_eq!(
            sent,
            [1_500, 6_000, 10_000, 14_000, 18_000, 22_000, 26_000, 30_000]
        );
    }

    #[test]
    fn reliable_only_times_out() {
        let mut c = ClientRetransmit::new(0, true);
        assert_eq!(c.poll(10), RetransmitAction::Wait { until_ms: 32_000 });
        c.on_provisional(100);
        assert_eq!(c.deadline(), 32_000);
        assert_eq!(c.poll(32_000), RetransmitAction::GiveUp);
    }

    #[test]
    fn late_poll_does_not_burst() {
        let mut c = ClientRetransmit::new(0, false);
        assert_eq!(c.poll(499), RetransmitAction::Wait { until_ms: 500 });
        assert_eq!(c.poll(5_000), RetransmitAction::Retransmit);
        assert_eq!(c.poll(5_001), RetransmitAction::Wait { until_ms: 6_000 });
    }
}
