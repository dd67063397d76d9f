//! Supervision: a device silent for longer than its heartbeat interval plus a grace period raises
//! one "device silent" alarm; its next message raises the restoral. A device may instead be
//! supervised by an EN 50136-1 reporting-time category ([`Category`]): then the category's
//! reporting time is the whole silence allowed, with no grace on top (the category is the promise).
use crate::ids::UnixMillis;
use std::fmt;
use std::str::FromStr;

/// How long a device may stay silent before it is called silent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Silence {
    /// The expected interval between messages.
    pub interval_ms: i64,
    /// Tolerated beyond the interval while the engine runs.
    pub grace_ms: i64,
    /// After a restart, a device whose deadline passed while the engine was down (when nobody
    /// could hear it) gets this long from the restart.
    pub restart_grace_ms: i64,
}

impl Silence {
    /// Heartbeat supervision: `interval_ms` plus `grace_ms`, and `grace_ms` after a restart.
    pub fn heartbeat(interval_ms: i64, grace_ms: i64) -> Silence {
        Silence {
            interval_ms,
            grace_ms,
            restart_grace_ms: grace_ms,
        }
    }

    /// Category supervision: silent once the reporting time has passed since the last message;
    /// after a restart a whole reporting time from the restart (a poll sent while the engine
    /// was down is lost, and the category has no grace to absorb it).
    pub fn category(c: Category) -> Silence {
        let t = i64::from(c.reporting_secs()) * 1000;
        Silence {
            interval_ms: t,
            grace_ms: 0,
            restart_grace_ms: t,
        }
    }

    /// When a device last heard at `last_seen` is to be called silent.
    pub fn silent_at(&self, last_seen: UnixMillis) -> UnixMillis {
        last_seen + self.interval_ms + self.grace_ms
    }

    /// The silence deadline after a restart at `started`. A deadline still ahead is kept; one
    /// that passed while the engine was down gets the restart grace from the restart, so a
    /// restart neither makes every device look silent nor forgets a silent one. A device never
    /// heard gets a full interval.
    pub fn silent_at_after_restart(
        &self,
        last_seen: Option<UnixMillis>,
        started: UnixMillis,
    ) -> UnixMillis {
        match last_seen {
            Some(seen) => self.silent_at(seen).max(started + self.restart_grace_ms),
            None => self.silent_at(started),
        }
    }
}

/// EN 50136-1 alarm transmission categories by reporting time: the longest time before the
/// loss of a path must be detected and reported. SP: single path; DP: dual path (the second
/// path's reporting time applies while the first works). Figures: `../shared/reference/domain.md`
/// (SP1, SP2, SP5, SP6 and DP3 there are marked second-hand).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    Sp1,
    Sp2,
    Sp3,
    Sp4,
    Sp5,
    Sp6,
    Dp1,
    Dp2,
    Dp3,
    Dp4,
}

const HOUR: u32 = 3600;

impl Category {
    pub const ALL: [Category; 10] = [
        Category::Sp1,
        Category::Sp2,
        Category::Sp3,
        Category::Sp4,
        Category::Sp5,
        Category::Sp6,
        Category::Dp1,
        Category::Dp2,
        Category::Dp3,
        Category::Dp4,
    ];

    /// The primary path's reporting time, seconds: the silence after which the device is
    /// called silent.
    pub fn reporting_secs(self) -> u32 {
        match self {
            Category::Sp1 => 32 * 24 * HOUR,
            Category::Sp2 | Category::Dp1 => 25 * HOUR,
            Category::Sp3 | Category::Dp2 => 30 * 60,
            Category::Sp4 | Category::Dp3 => 3 * 60,
            Category::Sp5 | Category::Dp4 => 90,
            Category::Sp6 => 20,
        }
    }

    /// The second path's reporting time (dual-path categories), seconds.
    pub fn second_path_secs(self) -> Option<u32> {
        match self {
            Category::Dp1 => Some(50 * HOUR),
            Category::Dp2 | Category::Dp3 => Some(25 * HOUR),
            Category::Dp4 => Some(5 * HOUR),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Sp1 => "SP1",
            Category::Sp2 => "SP2",
            Category::Sp3 => "SP3",
            Category::Sp4 => "SP4",
            Category::Sp5 => "SP5",
            Category::Sp6 => "SP6",
            Category::Dp1 => "DP1",
            Category::Dp2 => "DP2",
            Category::Dp3 => "DP3",
            Category::Dp4 => "DP4",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of SP1-SP6, DP1-DP4.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown supervision category \"{0}\" (SP1-SP6, DP1-DP4)")]
pub struct UnknownCategory(pub String);

impl FromStr for Category {
    type Err = UnknownCategory;

    /// Case-insensitive: "DP4", "dp4".
    fn from_str(s: &str) -> Result<Category, UnknownCategory> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownCategory(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_ahead_is_kept_across_restart() {
        // Heard at 0, interval 60 s, grace 30 s: silent at 90 s whether or not we restarted at 50 s.
        let s = Silence::heartbeat(60_000, 30_000);
        assert_eq!(s.silent_at(0), 90_000);
        assert_eq!(s.silent_at_after_restart(Some(0), 50_000), 90_000);
    }

    #[test]
    fn deadline_passed_during_downtime_gets_grace_from_restart() {
        let s = Silence::heartbeat(60_000, 30_000);
        assert_eq!(s.silent_at_after_restart(Some(0), 600_000), 630_000);
    }

    #[test]
    fn never_heard_gets_a_full_interval() {
        let s = Silence::heartbeat(60_000, 30_000);
        assert_eq!(s.silent_at_after_restart(None, 1_000), 91_000);
    }

    #[test]
    fn a_category_allows_its_reporting_time_and_no_more() {
        let s = Silence::category(Category::Dp4);
        assert_eq!(s.silent_at(1_000), 91_000);
        // Down past the deadline: a whole reporting time from the restart, not silent at once.
        assert_eq!(s.silent_at_after_restart(Some(0), 600_000), 690_000);
        // Any restart: a poll may have been lost while the engine was down, so the device gets
        // a whole reporting time from the restart (detection is late by at most the downtime).
        assert_eq!(s.silent_at_after_restart(Some(0), 10_000), 100_000);
    }

    #[test]
    fn categories_parse_and_carry_their_reporting_times() {
        assert_eq!("dp4".parse::<Category>(), Ok(Category::Dp4));
        assert_eq!("SP3".parse::<Category>().unwrap().reporting_secs(), 1800);
        assert_eq!(Category::Dp2.second_path_secs(), Some(25 * 3600));
        assert_eq!(Category::Sp4.second_path_secs(), None);
        assert!("DP5".parse::<Category>().is_err());
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>(), Ok(c));
        }
    }
}
