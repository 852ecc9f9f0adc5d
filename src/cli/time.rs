//! Times typed on the command line: a strict RFC 3339 parser (`2026-12-01T17:00:00Z`,
//! `2026-12-01T17:00:00-05:00`) to seconds since the Unix epoch.

/// Parses an RFC 3339 date-time with a `Z` or `±HH:MM` offset into seconds since the epoch.
/// Fractional seconds are accepted and dropped; a leap second (`:60`) and anything outside the
/// calendar are refused.
pub(crate) fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let bad = |what: &str| {
        format!(
            "{text:?} is not an RFC 3339 time ({what}); write e.g. 2026-12-01T17:00:00Z or \
             2026-12-01T17:00:00-05:00"
        )
    };
    let b = text.as_bytes();
    if b.len() < 20 || b.len() > 40 {
        return Err(bad("wrong length"));
    }
    let digits = |range: std::ops::Range<usize>, what: &str| -> Result<i64, String> {
        let part = &b[range];
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(bad(what));
        }
        Ok(part
            .iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    let sep = |i: usize, allowed: &[u8], what: &str| -> Result<(), String> {
        if allowed.contains(&b[i]) {
            Ok(())
        } else {
            Err(bad(what))
        }
    };
    let year = digits(0..4, "year")?;
    sep(4, b"-", "date separator")?;
    let month = digits(5..7, "month")?;
    sep(7, b"-", "date separator")?;
    let day = digits(8..10, "day")?;
    sep(10, b"Tt", "expected T between date and time")?;
    let hour = digits(11..13, "hour")?;
    sep(13, b":", "time separator")?;
    let minute = digits(14..16, "minute")?;
    sep(16, b":", "time separator")?;
    let second = digits(17..19, "second")?;
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i - start > 9 {
            return Err(bad("fraction of a second"));
        }
    }
    let offset = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let h = digits(i + 1..i + 3, "offset hours")?;
            let m = digits(i + 4..i + 6, "offset minutes")?;
            if h > 23 || m > 59 {
                return Err(bad("offset out of range"));
            }
            let o = h * 3600 + m * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return Err(bad("expected Z or an offset like +01:00 at the end")),
    };
    if !(1..=12).contains(&month) {
        return Err(bad("month out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such day in that month"));
    }
    if hour > 23 || minute > 59 {
        return Err(bad("time out of range"));
    }
    if second == 60 {
        return Err(bad("leap seconds are not accepted"));
    }
    if second > 59 {
        return Err(bad("second out of range"));
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339;
    use attache::wire::format_utc;

    #[test]
    fn parses_utc_and_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Ok(951_782_400));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-14t22:13:20z"), Ok(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-14T17:13:20-05:00"),
            Ok(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-15T03:43:20+05:30"),
            Ok(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.999Z"), Ok(1_700_000_000));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Ok(-1));
        assert_eq!(
            parse_rfc3339("2024-12-31T23:59:59+00:00"),
            Ok(1_735_689_599)
        );
    }

    #[test]
    fn round_trips_with_the_formatter_over_many_days() {
        for t in (0..20_000i64).map(|d| d * 86_400 * 7 + 3_723) {
            let shown = format_utc(t);
            let typed = format!("{}T{}:03Z", &shown[..10], &shown[11..16]);
            assert_eq!(parse_rfc3339(&typed), Ok(t), "{typed}");
        }
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for bad in [
            "",
            "2026-12-01",
            "2026-12-01 17:00:00Z",
            "2026-12-01T17:00:00",
            "2026-12-01T17:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T23:60:00Z",
            "2026-12-31T23:59:60Z",
            "2026-12-01T17:00:00+0500",
            "2026-12-01T17:00:00+24:00",
            "2026-12-01T17:00:00.Z",
            "2026-12-01T17:00:00.1234567890Z",
            "2026-12-01T17:00:00Z ",
            "+2026-12-01T17:00:00Z",
            "2026-1a-01T17:00:00Z",
            "２０２６-12-01T17:00:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} was accepted");
        }
        let e = parse_rfc3339("2026-12-31T23:59:60Z").unwrap_err();
        assert!(e.contains("leap seconds"), "{e}");
        assert!(e.contains("2026-12-01T17:00:00Z"), "{e}");
    }
}
