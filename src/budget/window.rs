//! Budget windows: where a window starts, when it resets, and how long a client should wait.
//!
//! Budgets count spend per fixed UTC window (minute, hour, day, calendar month). Everything
//! here is integer date arithmetic on Unix time, so that it is exact, identical on every
//! worker and on wasm32, and needs no time-zone database. Calendar months use the proleptic
//! Gregorian calendar (Howard Hinnant's `days_from_civil` / `civil_from_days`), which gets
//! leap years (2024-02-29, 2100 is not leap, 2000 is) right by construction.

/// The length of a budget window. Windows are aligned to UTC: a `day` starts at 00:00 UTC and
/// a `month` on the 1st at 00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Minute,
    Hour,
    Day,
    Month,
}

const SECS_PER_DAY: u64 = 86_400;

impl Window {
    /// The configuration spelling.
    pub fn name(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    /// Parses the configuration spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "minute" => Some(Window::Minute),
            "hour" => Some(Window::Hour),
            "day" => Some(Window::Day),
            "month" => Some(Window::Month),
            _ => None,
        }
    }

    fn fixed_len(self) -> Option<u64> {
        match self {
            Window::Minute => Some(60),
            Window::Hour => Some(3_600),
            Window::Day => Some(SECS_PER_DAY),
            Window::Month => None,
        }
    }

    /// Number of whole windows between the epoch and `unix_secs` (minutes, hours, days, or
    /// calendar months since 1970-01). Consecutive windows have consecutive indexes, which is
    /// what the two-slot state layout relies on.
    pub fn index(self, unix_secs: u64) -> u64 {
        match self.fixed_len() {
            Some(len) => unix_secs / len,
            None => {
                let (y, m, _) = civil_from_days(unix_secs / SECS_PER_DAY);
                (y - 1970) * 12 + (u64::from(m) - 1)
            }
        }
    }

    /// Unix seconds at which the window with this index starts.
    pub fn start_of_index(self, index: u64) -> u64 {
        match self.fixed_len() {
            Some(len) => index.saturating_mul(len),
            None => {
                let y = 1970 + index / 12;
                // index % 12 < 12, so the month fits in u32 and is 1..=12.
                let m = u32::try_from(index % 12).unwrap_or(0) + 1;
                days_from_civil(y, m, 1).saturating_mul(SECS_PER_DAY)
            }
        }
    }

    /// Start (Unix seconds) of the window containing `unix_secs`.
    pub fn start(self, unix_secs: u64) -> u64 {
        self.start_of_index(self.index(unix_secs))
    }

    /// Start of the next window: when the budget containing `unix_secs` resets.
    pub fn reset(self, unix_secs: u64) -> u64 {
        self.start_of_index(self.index(unix_secs).saturating_add(1))
    }
}

/// Seconds a client should wait before the window containing `now_unix_millis` resets,
/// rounded up and at least 1 (a `Retry-After: 0` invites an immediate retry storm).
pub fn retry_after_secs(window: Window, now_unix_millis: u64) -> u64 {
    let reset_ms = window.reset(now_unix_millis / 1000).saturating_mul(1000);
    let wait_ms = reset_ms.saturating_sub(now_unix_millis);
    wait_ms.div_ceil(1000).max(1)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (years >= 1970).
pub fn days_from_civil(year: u64, month: u32, day: u32) -> u64 {
    // Shift the year to start in March so that the leap day is the last day of the year.
    let (y, m) = if month <= 2 {
        (year.saturating_sub(1), u64::from(month) + 9)
    } else {
        (year, u64::from(month) - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400; // [0, 399]
    let doy = (153 * m + 2) / 5 + u64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
                                                     // 719_468 = days from 0000-03-01 to 1970-01-01.
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// The (year, month 1..=12, day 1..=31) of a day count since 1970-01-01.
pub fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe + era * 400 + u64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ`, for human-readable rejection messages.
pub fn format_utc(unix_secs: u64) -> String {
    let (y, m, d) = civil_from_days(unix_secs / SECS_PER_DAY);
    let s = unix_secs % SECS_PER_DAY;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    // 2024-02-29T12:34:56Z
    const LEAP_DAY: u64 = 1_709_210_096;

    #[test]
    fn civil_round_trips_every_day_for_four_centuries() {
        // 146_097 days is one full Gregorian cycle; covers 2000 (leap) and 2100 (not leap).
        for days in 0..(146_097 + 20_000) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(LEAP_DAY / 86_400), (2024, 2, 29));
        assert_eq!(
            civil_from_days(days_from_civil(2100, 3, 1) - 1),
            (2100, 2, 28)
        );
        assert_eq!(
            civil_from_days(days_from_civil(2000, 3, 1) - 1),
            (2000, 2, 29)
        );
        assert_eq!(format_utc(LEAP_DAY), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn fixed_windows_align_to_utc() {
        assert_eq!(
            format_utc(Window::Minute.start(LEAP_DAY)),
            "2024-02-29T12:34:00Z"
        );
        assert_eq!(
            format_utc(Window::Hour.start(LEAP_DAY)),
            "2024-02-29T12:00:00Z"
        );
        assert_eq!(
            format_utc(Window::Day.start(LEAP_DAY)),
            "2024-02-29T00:00:00Z"
        );
        assert_eq!(
            format_utc(Window::Day.reset(LEAP_DAY)),
            "2024-03-01T00:00:00Z"
        );
        assert_eq!(
            format_utc(Window::Minute.reset(LEAP_DAY)),
            "2024-02-29T12:35:00Z"
        );
    }

    #[test]
    fn month_window_covers_leap_february() {
        assert_eq!(
            format_utc(Window::Month.start(LEAP_DAY)),
            "2024-02-01T00:00:00Z"
        );
        assert_eq!(
            format_utc(Window::Month.reset(LEAP_DAY)),
            "2024-03-01T00:00:00Z"
        );
        assert_eq!(
            Window::Month.reset(LEAP_DAY) - Window::Month.start(LEAP_DAY),
            29 * 86_400
        );
    }

    #[test]
    fn month_window_rolls_december_into_january() {
        let dec31 = days_from_civil(2026, 12, 31) * 86_400 + 86_399;
        assert_eq!(
            format_utc(Window::Month.start(dec31)),
            "2026-12-01T00:00:00Z"
        );
        assert_eq!(
            format_utc(Window::Month.reset(dec31)),
            "2027-01-01T00:00:00Z"
        );
        let jan1 = dec31 + 1;
        assert_eq!(Window::Month.index(jan1), Window::Month.index(dec31) + 1);
        assert_eq!(Window::Month.start(jan1), jan1);
    }

    #[test]
    fn month_index_round_trips() {
        for index in 0..2_400 {
            let start = Window::Month.start_of_index(index);
            assert_eq!(Window::Month.index(start), index);
            if index > 0 {
                assert_eq!(Window::Month.index(start - 1), index - 1);
            }
            assert_eq!(civil_from_days(start / 86_400).2, 1);
        }
    }

    #[test]
    fn any_clock_value_is_safe() {
        // The clock is a host result: even a nonsense value must not overflow (debug builds
        // and the wasm test runner trap on overflow).
        for ms in [0, 1, 999, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
            for w in [Window::Minute, Window::Hour, Window::Day, Window::Month] {
                let s = ms / 1000;
                assert!(w.start(s) <= s);
                assert!(w.reset(s) >= w.start(s));
                assert!(retry_after_secs(w, ms) >= 1);
                let _ = format_utc(w.reset(s));
            }
        }
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        let t = Window::Minute.start(LEAP_DAY) * 1000;
        assert_eq!(retry_after_secs(Window::Minute, t), 60);
        assert_eq!(retry_after_secs(Window::Minute, t + 59_001), 1);
        assert_eq!(retry_after_secs(Window::Minute, t + 59_999), 1);
        assert_eq!(retry_after_secs(Window::Minute, t + 500), 60);
        let dec31_last = (days_from_civil(2026, 12, 31) * 86_400 + 86_399) * 1000;
        assert_eq!(retry_after_secs(Window::Month, dec31_last), 1);
        assert_eq!(retry_after_secs(Window::Day, dec31_last + 1000), 86_400);
    }
}
