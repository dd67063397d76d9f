//! The values inside `<lge>`: `geo` ("lat,lon"), `tim` (local time with UTC offset) and `gga`
//! (an NMEA GGA sentence). Each parser checks ranges so that a bad position never reaches the
//! geofence logic; the `<mrq>` parser then drops the value and keeps the message.

/// A WGS-84 position in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPos {
    /// Latitude, -90..=90.
    pub lat: f64,
    /// Longitude, -180..=180.
    pub lon: f64,
}

/// Which location value was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    /// `geo` is not "lat,lon" with both in range.
    #[error("malformed or out-of-range geo position")]
    Geo,
    /// `tim` is not a valid date-time with UTC offset.
    #[error("malformed time stamp")]
    Time,
    /// `gga` is not a GGA sentence with sane fields.
    #[error("malformed NMEA GGA sentence")]
    Gga,
    /// `gga` carries a checksum that does not match.
    #[error("NMEA checksum mismatch")]
    GgaChecksum,
}

/// A plain decimal number (`-12.5`, `7`, `+0.25`): no exponent, `inf` or `NaN`, which
/// `f64::from_str` would accept.
fn parse_decimal(s: &str) -> Option<f64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = !(int.is_empty() && frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && digits.len() <= 24;
    if !ok {
        return None;
    }
    s.parse().ok()
}

fn in_range(lat: f64, lon: f64) -> bool {
    (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
}

/// Parse `geo`: "lat,lon" in decimal degrees. An RFC 5870 `geo:` prefix, a third (altitude)
/// coordinate and `;` parameters are tolerated and ignored.
pub fn parse_geo(s: &str) -> Result<GeoPos, LocationError> {
    let s = s.trim();
    let s = match s.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("geo:") => &s[4..],
        _ => s,
    };
    let coords = s.split(';').next().unwrap_or("");
    let mut parts = coords.split(',').map(|p| parse_decimal(p.trim()));
    let (Some(Some(lat)), Some(Some(lon))) = (parts.next(), parts.next()) else {
        return Err(LocationError::Geo);
    };
    match (parts.next(), parts.next()) {
        (None, None) | (Some(Some(_)), None) => {}
        _ => return Err(LocationError::Geo),
    }
    if !in_range(lat, lon) {
        return Err(LocationError::Geo);
    }
    Ok(GeoPos { lat, lon })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (year >= 1): whole years times 365,
/// plus the leap days between, plus the days of the earlier months of that year.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Leap years among 1..=n (n >= 0) by the Gregorian rule.
    let leaps_through = |n: i64| n / 4 - n / 100 + n / 400;
    const MONTH_START: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let mut days = 365 * (year - 1970) + leaps_through(year - 1) - leaps_through(1969);
    days += MONTH_START[(month.clamp(1, 12) - 1) as usize];
    if month > 2 && is_leap(year) {
        days += 1;
    }
    days + i64::from(day) - 1
}

/// The inverse of [`days_from_civil`]: (year, month, day) of a day count from 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Estimate the year from the mean Gregorian year, then correct by whole years.
    let mut year = 1970 + (days as f64 / 365.2425).floor() as i64;
    while days_from_civil(year, 1, 1) > days {
        year -= 1;
    }
    while days_from_civil(year + 1, 1, 1) <= days {
        year += 1;
    }
    let mut rest = days - days_from_civil(year, 1, 1);
    for month in 1..=12 {
        let len = i64::from(days_in_month(year, month));
        if rest < len {
            return (year, month, rest as u32 + 1);
        }
        rest -= len;
    }
    (year, 12, 31) // unreachable: a year has at most 366 days
}

/// Format Unix milliseconds the way `tim` is written, in UTC: `YYYY-MM-DDThh:mm:ss+00`
/// (with `.mmm` only when there are milliseconds).
pub fn format_time(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
    if ms == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+00")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}+00")
    }
}

/// `n` ASCII digits at `b[at..]` as a number, if all are digits.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let slice = b.get(at..at + n)?;
    slice.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// Parse `tim`: `YYYY-MM-DDThh:mm:ss` with an offset `+hh`, `+hhmm`, `+hh:mm` or `Z`
/// (optional fraction of seconds) into Unix milliseconds.
pub fn parse_time(s: &str) -> Result<i64, LocationError> {
    let b = s.trim().as_bytes();
    let err = LocationError::Time;
    let sep_ok = b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && b.get(13) == Some(&b':')
        && b.get(16) == Some(&b':');
    if !sep_ok {
        return Err(err);
    }
    let year = i64::from(digits(b, 0, 4).ok_or(err)?);
    let month = digits(b, 5, 2).ok_or(err)?;
    let day = digits(b, 8, 2).ok_or(err)?;
    let (hour, minute, second) = (
        digits(b, 11, 2).ok_or(err)?,
        digits(b, 14, 2).ok_or(err)?,
        digits(b, 17, 2).ok_or(err)?,
    );
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(err);
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(err);
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return Err(err);
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_s = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest.len() {
                2 => (digits(rest, 0, 2), Some(0)),
                4 => (digits(rest, 0, 2), digits(rest, 2, 2)),
                5 if rest[2] == b':' => (digits(rest, 0, 2), digits(rest, 3, 2)),
                _ => (None, None),
            };
            let (h, m) = (h.ok_or(err)?, m.ok_or(err)?);
            if h > 23 || m > 59 {
                return Err(err);
            }
            let v = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return Err(err),
    };
    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second)
        - offset_s;
    // The offset may carry a time out of years 1-9999 in UTC, where `format_time` could not
    // write it in a form this function reads back.
    let utc_years = days_from_civil(1, 1, 1) * 86_400..days_from_civil(10_000, 1, 1) * 86_400;
    if !utc_years.contains(&secs) {
        return Err(err);
    }
    Ok(secs * 1000 + millis)
}

/// A GGA fix. Fix quality 0 means no valid position (lat/lon may then be absent).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gga {
    /// UTC time of day of the fix, in milliseconds since midnight.
    pub time_of_day_ms: Option<u32>,
    /// Latitude in decimal degrees.
    pub lat: Option<f64>,
    /// Longitude in decimal degrees.
    pub lon: Option<f64>,
    /// 0 invalid, 1 GPS, 2 DGPS, 4/5 RTK, 6 estimated, ...
    pub fix_quality: u8,
    /// Satellites in use.
    pub satellites: Option<u8>,
    /// Horizontal dilution of precision.
    pub hdop: Option<f64>,
    /// Altitude above mean sea level in metres.
    pub altitude_m: Option<f64>,
}

impl Gga {
    /// True when the sentence reports a fix and carries a position.
    pub fn is_valid(&self) -> bool {
        self.fix_quality != 0 && self.lat.is_some() && self.lon.is_some()
    }

    /// The position if the fix is valid.
    pub fn position(&self) -> Option<GeoPos> {
        match (self.is_valid(), self.lat, self.lon) {
            (true, Some(lat), Some(lon)) => Some(GeoPos { lat, lon }),
            _ => None,
        }
    }
}

/// `ddmm.mmmm` / `dddmm.mmmm` plus hemisphere into signed degrees.
fn nmea_coord(
    value: &str,
    hemi: &str,
    deg_digits: usize,
    pos: char,
    neg: char,
    max: f64,
) -> Result<Option<f64>, LocationError> {
    if value.is_empty() && hemi.is_empty() {
        return Ok(None);
    }
    let err = LocationError::Gga;
    let int_len = value.find('.').unwrap_or(value.len());
    if int_len < 3 || int_len > deg_digits + 2 || !value.is_ascii() {
        return Err(err);
    }
    let deg = parse_decimal(&value[..int_len - 2]).ok_or(err)?;
    let min = parse_decimal(&value[int_len - 2..]).ok_or(err)?;
    if value.starts_with(['+', '-']) || value[int_len - 2..].starts_with(['+', '-']) || min >= 60.0
    {
        return Err(err);
    }
    let v = deg + min / 60.0;
    if v > max {
        return Err(err);
    }
    let mut hemi_chars = hemi.chars();
    match (hemi_chars.next(), hemi_chars.next()) {
        (Some(c), None) if c == pos => Ok(Some(v)),
        (Some(c), None) if c == neg => Ok(Some(-v)),
        _ => Err(err),
    }
}

/// Parse an NMEA GGA sentence (`$GPGGA`, `$GNGGA` or another talker). A `*hh` checksum, when
/// present, must match the XOR of the characters between `$` and `*`.
pub fn parse_gga(s: &str) -> Result<Gga, LocationError> {
    let err = LocationError::Gga;
    let s = s.trim();
    let body = s.strip_prefix('$').ok_or(err)?;
    let data = match body.split_once('*') {
        Some((data, sum)) => {
            let want = (sum.len() == 2)
                .then(|| u8::from_str_radix(sum, 16).ok())
                .flatten()
                .ok_or(err)?;
            let got = data.bytes().fold(0u8, |acc, b| acc ^ b);
            if got != want {
                return Err(LocationError::GgaChecksum);
            }
            data
        }
        None => body,
    };
    let f: Vec<&str> = data.split(',').map(str::trim).collect();
    let id = f[0].as_bytes();
    if id.len() != 5
        || &id[2..] != b"GGA"
        || !id[..2].iter().all(u8::is_ascii_uppercase)
        || f.len() < 7
    {
        return Err(err);
    }
    let field = |i: usize| f.get(i).copied().unwrap_or("");
    let time_of_day_ms = match field(1) {
        "" => None,
        t => {
            let b = t.as_bytes();
            let (h, m, sec) = (
                digits(b, 0, 2).ok_or(err)?,
                digits(b, 2, 2).ok_or(err)?,
                digits(b, 4, 2).ok_or(err)?,
            );
            let frac = match &t[6.min(t.len())..] {
                "" => 0.0,
                rest if rest.starts_with('.') => parse_decimal(&format!("0{rest}")).ok_or(err)?,
                _ => return Err(err),
            };
            if h > 23 || m > 59 || sec > 60 {
                return Err(err);
            }
            Some((h * 3600 + m * 60 + sec) * 1000 + (frac * 1000.0) as u32)
        }
    };
    let lat = nmea_coord(field(2), field(3), 2, 'N', 'S', 90.0)?;
    let lon = nmea_coord(field(4), field(5), 3, 'E', 'W', 180.0)?;
    let fix_quality = match field(6) {
        "" => 0,
        q if q.len() == 1 => digits(q.as_bytes(), 0, 1).ok_or(err)? as u8,
        _ => return Err(err),
    };
    let satellites = match field(7) {
        "" => None,
        n if n.len() <= 2 => Some(digits(n.as_bytes(), 0, n.len()).ok_or(err)? as u8),
        _ => return Err(err),
    };
    let opt_num = |v: &str| -> Result<Option<f64>, LocationError> {
        if v.is_empty() {
            Ok(None)
        } else {
            parse_decimal(v).map(Some).ok_or(err)
        }
    };
    let hdop = opt_num(field(8))?;
    if hdop.is_some_and(|h| h < 0.0) {
        return Err(err);
    }
    let altitude_m = opt_num(field(9))?;
    if fix_quality != 0 && (lat.is_none() || lon.is_none()) {
        return Err(err);
    }
    Ok(Gga {
        time_of_day_ms,
        lat,
        lon,
        fix_quality,
        satellites,
        hdop,
        altitude_m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geo_cases() {
        let ok: &[(&str, f64, f64)] = &[
            ("59.336111,18.072778", 59.336111, 18.072778),
            (" -33.9, -70.6 ", -33.9, -70.6),
            ("geo:59.3,18.0,25;u=10", 59.3, 18.0),
            ("90,180", 90.0, 180.0),
            ("+1,-0.5", 1.0, -0.5),
        ];
        for (s, lat, lon) in ok {
            assert_eq!(
                parse_geo(s),
                Ok(GeoPos {
                    lat: *lat,
                    lon: *lon
                }),
                "{s}"
            );
        }
        for bad in [
            "",
            "59.3",
            "91,0",
            "0,180.1",
            "a,b",
            "1,2,3,4",
            "inf,0",
            "NaN,1",
            "1e1,2",
            "59.3;18.0",
            ",",
            "1,,2",
        ] {
            assert_eq!(parse_geo(bad), Err(LocationError::Geo), "{bad}");
        }
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(2100, 3, 1), 47_541);
    }

    #[test]
    fn civil_round_trip_and_format() {
        for days in (-719_000..2_900_000)
            .step_by(997)
            .chain([0, -1, 11_016, 11_017, 19_782])
        {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{days}");
        }
        assert_eq!(format_time(0), "1970-01-01T00:00:00+00");
        assert_eq!(format_time(1_709_164_800_250), "2024-02-29T00:00:00.250+00");
        assert_eq!(
            parse_time(&format_time(1_715_949_000_123)),
            Ok(1_715_949_000_123)
        );
    }

    /// Found with the scaip_mrq target: a `tim` whose offset carried it out of years 1-9999 in
    /// UTC was accepted, and written back (in UTC) as a year that does not read back.
    #[test]
    fn times_outside_years_1_to_9999_in_utc_are_refused() {
        for bad in ["9999-12-31T23:59:59-01", "0001-01-01T00:00:00+00:01"] {
            assert_eq!(parse_time(bad), Err(LocationError::Time), "{bad}");
        }
        for good in ["9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z"] {
            let ms = parse_time(good).unwrap();
            assert_eq!(parse_time(&format_time(ms)), Ok(ms), "{good}");
        }
    }

    #[test]
    fn time_cases() {
        // 2024-05-17T12:30:00Z = 1715949000 s.
        let base = 1_715_949_000_000i64;
        let cases: &[(&str, i64)] = &[
            ("2024-05-17T12:30:00Z", base),
            ("2024-05-17T14:30:00+02", base),
            ("2024-05-17T14:30:00+0200", base),
            ("2024-05-17T14:30:00+02:00", base),
            ("2024-05-17T09:00:00-03:30", base),
            ("2024-05-17 12:30:00.25Z", base + 250),
            ("2024-05-17T12:30:00.123456Z", base + 123),
            ("1970-01-01T01:00:00+01", 0),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
        ];
        for (s, want) in cases {
            assert_eq!(parse_time(s), Ok(*want), "{s}");
        }
        for bad in [
            "",
            "2024-05-17T12:30:00",
            "2024-05-17T12:30:00+2",
            "2024-05-17T12:30:00+02:0",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-17T24:00:00Z",
            "2024-05-17T12:60:00Z",
            "2024-05-17T12:30:00.Z",
            "2024-05-17X12:30:00Z",
            "0000-01-01T00:00:00Z",
            "2024-05-17T12:30:00+25",
            "2024-05-17T12:30:00Zjunk",
            "２０２４-05-17T12:30:00Z",
        ] {
            assert_eq!(parse_time(bad), Err(LocationError::Time), "{bad}");
        }
    }

    #[test]
    fn gga_cases() {
        let s = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47";
        let g = parse_gga(s).unwrap();
        assert_eq!(g.time_of_day_ms, Some((12 * 3600 + 35 * 60 + 19) * 1000));
        assert!((g.lat.unwrap() - (48.0 + 7.038 / 60.0)).abs() < 1e-9);
        assert!((g.lon.unwrap() - (11.0 + 31.0 / 60.0)).abs() < 1e-9);
        assert_eq!(
            (g.fix_quality, g.satellites, g.hdop, g.altitude_m),
            (1, Some(8), Some(0.9), Some(545.4))
        );
        assert!(g.is_valid());

        // GN talker, southern/western hemisphere, no checksum, fractional seconds.
        let g = parse_gga("$GNGGA,001122.50,3356.4000,S,07036.0000,W,2,12,1.1,-5.0,M,,M,,\r\n")
            .unwrap();
        assert_eq!(g.time_of_day_ms, Some(682_500));
        assert!((g.lat.unwrap() + 33.94).abs() < 1e-9 && (g.lon.unwrap() + 70.6).abs() < 1e-9);
        assert_eq!(g.altitude_m, Some(-5.0));

        // No fix: valid sentence, invalid position.
        let g = parse_gga("$GPGGA,,,,,,0,00,99.99,,,,,,*48").unwrap();
        assert!(!g.is_valid());
        assert_eq!(g.position(), None);

        assert_eq!(
            parse_gga(&s.replace("*47", "*48")),
            Err(LocationError::GgaChecksum)
        );
        for bad in [
            "",
            "GPGGA,1,2",
            "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A",
            "$GPGGA,123519,4807.038,N,01131.000,E",
            "$GPGGA,123519,9107.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",
            "$GPGGA,123519,4860.000,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",
            "$GPGGA,123519,4807.038,X,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",
            "$GPGGA,123519,,,,,1,08,0.9,545.4,M,46.9,M,,",
            "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*4",
            "$GPGGA,126019,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",
            "$GPGGA,123519,4807.038,N,01131.000,E,12,08,0.9,545.4,M,46.9,M,,",
        ] {
            assert!(matches!(parse_gga(bad), Err(LocationError::Gga)), "{bad}");
        }
    }
}
