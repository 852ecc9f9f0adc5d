//! Times shown to people: seconds since the Unix epoch as a UTC calendar date. Pure: the time
//! is always a parameter, never read from a clock.

/// `YYYY-MM-DD HH:MM UTC` for `t` seconds since the Unix epoch (proleptic Gregorian calendar,
/// Howard Hinnant's `civil_from_days`).
///
/// ```
/// assert_eq!(attache::wire::format_utc(951_782_400), "2000-02-29 00:00 UTC");
/// ```
pub fn format_utc(t: i64) -> String {
    let (year, month, day, secs) = civil(t);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// `YYYYMMDDTHHMMSSZ` (ISO 8601 basic format, UTC) for `t` seconds since the Unix epoch: a
/// name that sorts by time, e.g. of a backup folder.
///
/// ```
/// assert_eq!(attache::wire::utc_stamp(951_782_400), "20000229T000000Z");
/// ```
pub fn utc_stamp(t: i64) -> String {
    let (year, month, day, secs) = civil(t);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Year, month, day and seconds into the day of `t` (Howard Hinnant's `civil_from_days`).
fn civil(t: i64) -> (i64, i64, i64, i64) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs)
}

#[cfg(test)]
mod tests {
    use super::{format_utc, utc_stamp};

    #[test]
    fn calendar_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(format_utc(1_795_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(format_utc(-1), "1969-12-31 23:59 UTC");
    }

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(1_795_470_794), "20261123T215314Z");
    }
}
