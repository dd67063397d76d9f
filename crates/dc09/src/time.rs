//! The DC-09 timestamp `_HH:MM:SS,MM-DD-YYYY` (UTC) and the replay window of encrypted
//! messages. Pure: callers pass `now_ms` (Unix milliseconds); nothing here reads a clock.

use std::fmt;

/// A DC-09 timestamp, UTC, second resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Unix seconds.
    secs: i64,
}

/// Length of the timestamp text after its `_`: `HH:MM:SS,MM-DD-YYYY`.
pub(crate) const TIMESTAMP_LEN: usize = 19;

impl Timestamp {
    /// The timestamp at Unix second `secs`. Years outside 0000..=9999 cannot be written in four
    /// digits, so they are refused.
    pub fn from_unix_secs(secs: i64) -> Option<Timestamp> {
        let (y, _, _) = civil_from_days(secs.div_euclid(86_400));
        (0..=9999).contains(&y).then_some(Timestamp { secs })
    }

    /// The timestamp at Unix millisecond `ms`, truncated to the second.
    pub fn from_unix_ms(ms: u64) -> Timestamp {
        // u64 ms / 1000 is < 2^54 s, far past year 9999; clamp instead of failing.
        let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX).min(MAX_SECS);
        Timestamp { secs }
    }

    /// Unix seconds.
    pub fn unix_secs(self) -> i64 {
        self.secs
    }

    /// Parse `HH:MM:SS,MM-DD-YYYY` (without the leading `_`). Every field is checked, so a
    /// decrypted plaintext with a wrong key does not pass as a time.
    pub fn parse(text: &[u8]) -> Option<Timestamp> {
        if text.len() != TIMESTAMP_LEN {
            return None;
        }
        let sep = |i: usize, c: u8| text[i] == c;
        if !(sep(2, b':') && sep(5, b':') && sep(8, b',') && sep(11, b'-') && sep(14, b'-')) {
            return None;
        }
        let num = |from: usize, to: usize| -> Option<i64> {
            text[from..to].iter().try_fold(0i64, |acc, b| {
                b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
            })
        };
        let (hh, mi, ss) = (num(0, 2)?, num(3, 5)?, num(6, 8)?);
        let (mo, dd, yy) = (num(9, 11)?, num(12, 14)?, num(15, 19)?);
        if hh > 23 || mi > 59 || ss > 59 || !(1..=12).contains(&mo) {
            return None;
        }
        if dd < 1 || dd > days_in_month(yy, mo) {
            return None;
        }
        let days = days_from_civil(yy, mo, dd);
        Some(Timestamp {
            secs: days * 86_400 + hh * 3600 + mi * 60 + ss,
        })
    }
}

/// 9999-12-31T23:59:59Z, the last second four year digits can write.
const MAX_SECS: i64 = 253_402_300_799;

impl fmt::Display for Timestamp {
    /// `HH:MM:SS,MM-DD-YYYY`, without the leading `_`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{:02}:{:02}:{:02},{:02}-{:02}-{:04}",
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            m,
            d,
            y
        )
    }
}

/// How far a message's timestamp may be from the receiver's clock. DC-09 leaves the numbers
/// to the receiver; -40 s .. +20 s is what `pysiaalarm` (`allowed_timeband=(40, 20)`) and the
/// Java `sia-dc-09-library` use, so panels are tuned to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Seconds a timestamp may lie in the past.
    pub past_secs: u32,
    /// Seconds a timestamp may lie in the future.
    pub future_secs: u32,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            past_secs: 40,
            future_secs: 20,
        }
    }
}

impl Window {
    /// `Ok` when `ts` lies within the window around `now_ms`; otherwise the skew in seconds
    /// (timestamp minus now: negative = stale, positive = from the future).
    pub fn check(&self, ts: Timestamp, now_ms: u64) -> Result<(), i64> {
        // Compare in milliseconds so a timestamp of this very second is never "future".
        let now = i128::from(now_ms);
        let at = i128::from(ts.secs) * 1000;
        let past = i128::from(self.past_secs) * 1000;
        let future = i128::from(self.future_secs) * 1000;
        if at < now - past || at > now + future {
            let skew = at.div_euclid(1000) - now.div_euclid(1000);
            Err(i64::try_from(skew).unwrap_or(i64::MAX))
        } else {
            Ok(())
        }
    }
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let ts = Timestamp::parse(b"16:20:01,09-24-2025").unwrap();
        assert_eq!(ts.unix_secs(), 1_758_730_801);
        assert_eq!(ts.to_string(), "16:20:01,09-24-2025");
        assert_eq!(Timestamp::from_unix_ms(1_758_730_801_999), ts);
        let leap = Timestamp::parse(b"00:00:00,02-29-2024").unwrap();
        assert_eq!(leap.to_string(), "00:00:00,02-29-2024");
    }

    #[test]
    fn refuses_impossible_fields() {
        for bad in [
            &b"24:00:00,01-01-2025"[..],
            b"12:60:00,01-01-2025",
            b"12:00:60,01-01-2025",
            b"12:00:00,13-01-2025",
            b"12:00:00,02-29-2025",
            b"12:00:00,04-31-2025",
            b"12:00:00,00-10-2025",
            b"12:00:00 01-01-2025",
            b"12:00:0a,01-01-2025",
            b"12:00:00,01-01-202",
        ] {
            assert_eq!(
                Timestamp::parse(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn window_is_minus_40_plus_20_by_default() {
        let w = Window::default();
        let ts = Timestamp::parse(b"12:00:00,01-01-2026").unwrap();
        let at = |secs: i64| u64::try_from(ts.unix_secs() + secs).unwrap() * 1000;
        assert_eq!(w.check(ts, at(0)), Ok(()));
        assert_eq!(w.check(ts, at(40)), Ok(()));
        assert_eq!(w.check(ts, at(41)), Err(-41));
        assert_eq!(w.check(ts, at(-20)), Ok(()));
        assert_eq!(w.check(ts, at(-21)), Err(21));
        // Within the same second the message is never from the future.
        assert_eq!(w.check(ts, at(0) + 999), Ok(()));
        let strict = Window {
            past_secs: 5,
            future_secs: 0,
        };
        assert_eq!(strict.check(ts, at(6)), Err(-6));
        assert_eq!(strict.check(ts, at(-1)), Err(1));
    }

    #[test]
    fn unix_edges() {
        assert_eq!(
            Timestamp::from_unix_secs(0).unwrap().to_string(),
            "00:00:00,01-01-1970"
        );
        assert_eq!(
            Timestamp::from_unix_secs(MAX_SECS).unwrap().to_string(),
            "23:59:59,12-31-9999"
        );
        assert_eq!(Timestamp::from_unix_secs(MAX_SECS + 1), None);
        assert_eq!(Timestamp::from_unix_ms(u64::MAX).unix_secs(), MAX_SECS);
    }
}
