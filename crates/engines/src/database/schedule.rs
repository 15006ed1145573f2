//! Cron expressions for a static role's `rotation_schedule`, as Vault parses them (robfig/cron's
//! standard parser): five fields, `minute hour day-of-month month day-of-week`, each `*`, a
//! number, a range `a-b`, a list `a,b`, a step `*/n` or `a-b/n`; month and weekday names
//! (`JAN`, `SUN`); and the descriptors `@yearly`, `@annually`, `@monthly`, `@weekly`,
//! `@daily`, `@midnight`, `@hourly`. Times are UTC. As in cron, when both day fields are
//! restricted a day matching either one matches.

use time::{Duration, OffsetDateTime, Time};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_star: bool,
    weekdays_star: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn field(
    s: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let star = s == "*" || s == "?";
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (
                r,
                st.parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("invalid step {st:?}"))?,
            ),
            None => (part, 1),
        };
        let value = |v: &str| -> Result<u32, String> {
            if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
                return Ok(i as u32 + name_base);
            }
            let n: u32 = v.parse().map_err(|_| format!("invalid value {v:?}"))?;
            // Sunday may be written 7.
            let n = if max == 6 && n == 7 { 0 } else { n };
            if n < min || n > max {
                return Err(format!("value {n} out of range [{min}, {max}]"));
            }
            Ok(n)
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!(
                    "beginning of range ({a}) beyond end of range ({b})"
                ));
            }
            (a, b)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { max } else { v })
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

impl Cron {
    pub fn parse(spec: &str) -> Result<Cron, String> {
        let spec = spec.trim();
        let expanded = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => return Err(format!("unrecognized descriptor: {s}")),
            s => s,
        };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields (minute hour day-of-month month day-of-week), found {}",
                f.len()
            ));
        }
        let (minutes, _) = field(f[0], 0, 59, &[], 0)?;
        let (hours, _) = field(f[1], 0, 23, &[], 0)?;
        let (days, days_star) = field(f[2], 1, 31, &[], 0)?;
        let (months, _) = field(f[3], 1, 12, &MONTHS, 1)?;
        let (weekdays, weekdays_star) = field(f[4], 0, 6, &WEEKDAYS, 0)?;
        Ok(Cron {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            days_star,
            weekdays_star,
        })
    }

    fn day_matches(&self, t: OffsetDateTime) -> bool {
        if self.months & (1 << t.month() as u8) == 0 {
            return false;
        }
        let dom = self.days & (1 << t.day()) != 0;
        let dow = self.weekdays & (1 << t.weekday().number_days_from_sunday()) != 0;
        match (self.days_star, self.weekdays_star) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// The first matching minute strictly after `after` (unix seconds); None within 5 years.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let start = OffsetDateTime::from_unix_timestamp(after).ok()?;
        let mut day = start.replace_time(Time::MIDNIGHT);
        for _ in 0..(366 * 5) {
            if self.day_matches(day) {
                for h in 0..24u8 {
                    if self.hours & (1 << h) == 0 {
                        continue;
                    }
                    for m in 0..60u8 {
                        if self.minutes & (1 << m) == 0 {
                            continue;
                        }
                        let t = day.replace_time(Time::from_hms(h, m, 0).ok()?);
                        if t.unix_timestamp() > after {
                            return Some(t.unix_timestamp());
                        }
                    }
                }
            }
            day += Duration::days(1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp()
    }

    #[test]
    fn next_times() {
        // 2026-11-23 is a Monday.
        let now = at("2026-11-23T10:30:00Z");
        let c = Cron::parse("0 0 * * SAT").unwrap();
        assert_eq!(c.next_after(now), Some(at("2026-11-28T00:00:00Z")));
        let c = Cron::parse("*/15 * * * *").unwrap();
        assert_eq!(c.next_after(now), Some(at("2026-11-23T10:45:00Z")));
        let c = Cron::parse("@daily").unwrap();
        assert_eq!(c.next_after(now), Some(at("2026-11-24T00:00:00Z")));
        let c = Cron::parse("30 9 1,15 JAN-MAR *").unwrap();
        assert_eq!(c.next_after(now), Some(at("2027-01-01T09:30:00Z")));
        let c = Cron::parse("0 12 * * 1-5").unwrap();
        assert_eq!(c.next_after(now), Some(at("2026-11-23T12:00:00Z")));
    }

    #[test]
    fn bad_specs() {
        assert!(Cron::parse("* * *").is_err());
        assert!(Cron::parse("61 * * * *").is_err());
        assert!(Cron::parse("@sometimes").is_err());
        assert!(Cron::parse("5-1 * * * *").is_err());
    }
}
