//! Local wall-clock times and windows in a tenant's time zone, daylight saving included
//! (jiff with its bundled tz database: no file is read).
use crate::ids::UnixMillis;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A time of day, minutes after local midnight ("22:30" -> 1350).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeOfDay(pub u16);

impl TimeOfDay {
    /// "HH:MM", 00:00..=23:59.
    pub fn parse(s: &str) -> Option<TimeOfDay> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        // Checked before the product: "2027:0" must be refused, not overflow.
        (h < 24 && m < 60 && s.trim().len() == 5).then(|| TimeOfDay(h * 60 + m))
    }
}

/// A daily window "22:00-07:00": from `start` up to `end`; past midnight when `end` <= `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: TimeOfDay,
    pub end: TimeOfDay,
}

impl Window {
    /// "HH:MM-HH:MM" with different ends.
    pub fn parse(s: &str) -> Option<Window> {
        let (a, b) = s.split_once('-')?;
        let w = Window {
            start: TimeOfDay::parse(a)?,
            end: TimeOfDay::parse(b)?,
        };
        (w.start != w.end).then_some(w)
    }

    fn contains_minute(&self, m: u16) -> bool {
        let (s, e) = (self.start.0, self.end.0);
        if s < e {
            (s..e).contains(&m)
        } else {
            m >= s || m < e
        }
    }

    /// Whether `at` falls in the window, local time in `tz`.
    pub fn contains(&self, at: UnixMillis, tz: &TimeZone) -> bool {
        self.contains_minute(minute_of_day(at, tz))
    }

    /// The window occurrence that contains `at`, or the next one: (start, end) instants.
    pub fn around_or_next(&self, at: UnixMillis, tz: &TimeZone) -> (UnixMillis, UnixMillis) {
        let today = local_date(at, tz);
        // The occurrence that began yesterday (past-midnight windows), today, or tomorrow.
        for day in [yesterday(today), Some(today), tomorrow(today)]
            .into_iter()
            .flatten()
        {
            let start = instant(day, self.start, tz);
            let end_day = if self.end.0 <= self.start.0 {
                tomorrow(day).unwrap_or(day)
            } else {
                day
            };
            let end = instant(end_day, self.end, tz);
            if at < end {
                return (start, end);
            }
        }
        let day = tomorrow(today).and_then(tomorrow).unwrap_or(today);
        (instant(day, self.start, tz), instant(day, self.end, tz))
    }
}

fn local(at: UnixMillis, tz: &TimeZone) -> jiff::ZonedDateTime {
    Timestamp::from_millisecond(at)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(tz.clone())
}

fn local_date(at: UnixMillis, tz: &TimeZone) -> Date {
    local(at, tz).date()
}

fn yesterday(d: Date) -> Option<Date> {
    d.yesterday().ok()
}

fn tomorrow(d: Date) -> Option<Date> {
    d.tomorrow().ok()
}

/// Minutes after local midnight of `at` in `tz`.
pub fn minute_of_day(at: UnixMillis, tz: &TimeZone) -> u16 {
    let t = local(at, tz).time();
    t.hour() as u16 * 60 + t.minute() as u16
}

/// The instant of local time `t` on `day` in `tz`. A time skipped by a spring-forward gap is
/// moved forward by the gap (02:30 on the spring night is 03:30); a time repeated in autumn is
/// its first occurrence.
pub fn instant(day: Date, t: TimeOfDay, tz: &TimeZone) -> UnixMillis {
    let dt = day.at((t.0 / 60) as i8, (t.0 % 60) as i8, 0, 0);
    dt.to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(0)
}

/// The first instant at or after `after` when local time in `tz` is `t`.
pub fn next_at(after: UnixMillis, t: TimeOfDay, tz: &TimeZone) -> UnixMillis {
    let mut day = local_date(after, tz);
    for _ in 0..3 {
        let at = instant(day, t, tz);
        if at >= after {
            return at;
        }
        match tomorrow(day) {
            Some(d) => day = d,
            None => break,
        }
    }
    after
}

/// A time zone by IANA name ("Europe/Stockholm"), from the bundled database.
pub fn zone(name: &str) -> Option<TimeZone> {
    TimeZone::get(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> UnixMillis {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn parse_times_and_windows() {
        assert_eq!(TimeOfDay::parse("22:30"), Some(TimeOfDay(1350)));
        assert_eq!(TimeOfDay::parse("24:00"), None);
        assert_eq!(TimeOfDay::parse("7:00"), None);
        let w = Window::parse("22:00-07:00").unwrap();
        assert!(w.contains_minute(23 * 60) && w.contains_minute(60) && !w.contains_minute(12 * 60));
        assert!(Window::parse("08:00-08:00").is_none());
        // Found by the admin_bodies fuzz target: the hour was multiplied before it was checked
        // (a u16 overflow, a panic in a debug build, on a rule's window put through the API).
        assert_eq!(TimeOfDay::parse("2027:0"), None);
        assert!(Window::parse("2027:0-0:00").is_none());
    }

    #[test]
    fn windows_follow_local_time_across_daylight_saving() {
        let tz = zone("Europe/Stockholm").unwrap();
        let w = Window::parse("22:00-07:00").unwrap();
        // 2026-03-29: clocks go 02:00 -> 03:00 CET -> CEST. The night from the 28th to the
        // 29th is an hour shorter: 22:00 CET (21:00 UTC) to 07:00 CEST (05:00 UTC).
        let (s, e) = w.around_or_next(ms("2026-03-28T23:30:00Z"), &tz);
        assert_eq!(
            (s, e),
            (ms("2026-03-28T21:00:00Z"), ms("2026-03-29T05:00:00Z"))
        );
        // 2026-10-25: 03:00 CEST -> 02:00 CET, an hour longer.
        let (s, e) = w.around_or_next(ms("2026-10-24T12:00:00Z"), &tz);
        assert_eq!(
            (s, e),
            (ms("2026-10-24T20:00:00Z"), ms("2026-10-25T06:00:00Z"))
        );
        assert!(w.contains(ms("2026-10-25T05:59:00Z"), &tz));
        assert!(!w.contains(ms("2026-10-25T06:00:00Z"), &tz));
        // 02:30 does not exist on the spring night: it is 03:30 CEST.
        let day = "2026-03-29".parse::<Date>().unwrap();
        assert_eq!(
            instant(day, TimeOfDay(150), &tz),
            ms("2026-03-29T01:30:00Z")
        );
        // 23:00 local: 22:00Z on the 28th (CET), 21:00Z on the 29th (CEST).
        let at = TimeOfDay(23 * 60);
        assert_eq!(
            next_at(ms("2026-03-28T22:00:00Z"), at, &tz),
            ms("2026-03-28T22:00:00Z")
        );
        assert_eq!(
            next_at(ms("2026-03-28T22:00:01Z"), at, &tz),
            ms("2026-03-29T21:00:00Z")
        );
    }
}
