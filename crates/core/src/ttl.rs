//! Lease and token lifetimes: one calculation for every token and lease, so that nothing a
//! client asks for outlives what the mount and the system allow (Vault's
//! `framework.CalculateTTL`).
//!
//! * [`TtlLimits::for_mount`]: a mount's tuned default and max, each falling back to the
//!   system's (`default_lease_ttl` / `max_lease_ttl` of the server config). As in Vault, a
//!   mount's own max may exceed the system's.
//! * [`TtlLimits::calculate`]: the TTL to grant for a requested TTL, period and explicit max:
//!   the effective max is the mount's, lowered to the explicit max; a period longer than it is
//!   capped (with Vault's warning), a TTL longer than it too.

use crate::mount::MountConfig;

/// Default and max TTL in seconds (0 max: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlLimits {
    pub default_ttl: u64,
    pub max_ttl: u64,
}

/// What [`TtlLimits::calculate`] grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub ttl: u64,
    /// The period in force (capped like the TTL); 0 for a non-periodic token.
    pub period: u64,
    pub warnings: Vec<String>,
}

impl TtlLimits {
    /// The limits in force on `mount`: its tuned values, else these (the system's).
    pub fn for_mount(&self, mount: &MountConfig) -> TtlLimits {
        let or = |own: u64, system: u64| if own > 0 { own } else { system };
        TtlLimits {
            default_ttl: or(mount.default_lease_ttl, self.default_ttl),
            max_ttl: or(mount.max_lease_ttl, self.max_ttl),
        }
    }

    /// The TTL for a request of `ttl` (0: the default), `period` and `explicit_max` (0: none).
    pub fn calculate(&self, ttl: u64, period: u64, explicit_max: u64) -> Granted {
        let mut max = self.max_ttl;
        if explicit_max > 0 && (max == 0 || explicit_max < max) {
            max = explicit_max;
        }
        let mut warnings = Vec::new();
        let capped = |what: &str, asked: u64, warnings: &mut Vec<String>| {
            if max > 0 && asked > max {
                warnings.push(format!(
                    "{what} of {:?} exceeded the effective max_ttl of {:?}; {what} value is capped accordingly",
                    go_duration(asked),
                    go_duration(max)
                ));
                max
            } else {
                asked
            }
        };
        if period > 0 {
            let period = capped("period", period, &mut warnings);
            return Granted {
                ttl: period,
                period,
                warnings,
            };
        }
        let asked = if ttl > 0 { ttl } else { self.default_ttl };
        Granted {
            ttl: capped("TTL", asked, &mut warnings),
            period: 0,
            warnings,
        }
    }
}

/// A duration as Go prints it, without zero parts (`768h`, `1h30m`, `45s`).
pub fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM: TtlLimits = TtlLimits {
        default_ttl: 768 * 3600,
        max_ttl: 768 * 3600,
    };

    #[test]
    fn nothing_outlives_the_effective_max() {
        let huge = 999_999 * 3600;
        let g = SYSTEM.calculate(huge, 0, 0);
        assert_eq!(g.ttl, 768 * 3600);
        assert_eq!(
            g.warnings,
            ["TTL of \"999999h\" exceeded the effective max_ttl of \"768h\"; TTL value is capped accordingly"]
        );
        let g = SYSTEM.calculate(0, huge, 0);
        assert_eq!((g.ttl, g.period), (768 * 3600, 768 * 3600));
        assert!(g.warnings[0].starts_with("period of \"999999h\" exceeded"));
        // An explicit max lowers the ceiling, for periods too.
        let g = SYSTEM.calculate(huge, 0, 7200);
        assert_eq!(g.ttl, 7200);
        assert_eq!(SYSTEM.calculate(0, huge, 7200).ttl, 7200);
        // Within the limits nothing changes, and the default fills in.
        assert_eq!(SYSTEM.calculate(3600, 0, 0).ttl, 3600);
        assert_eq!(SYSTEM.calculate(0, 0, 0).ttl, 768 * 3600);
        assert_eq!(
            SYSTEM.calculate(0, 60, 0),
            Granted {
                ttl: 60,
                period: 60,
                warnings: vec![]
            }
        );
    }

    #[test]
    fn a_mount_tunes_its_own_limits() {
        let mut mount = MountConfig::default();
        assert_eq!(SYSTEM.for_mount(&mount), SYSTEM);
        mount.max_lease_ttl = 36000;
        mount.default_lease_ttl = 7200;
        let l = SYSTEM.for_mount(&mount);
        assert_eq!((l.default_ttl, l.max_ttl), (7200, 36000));
        assert_eq!(l.calculate(0, 0, 0).ttl, 7200);
        assert_eq!(l.calculate(0, 999_999, 0).ttl, 36000);
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(768 * 3600), "768h");
        assert_eq!(go_duration(5400), "1h30m");
        assert_eq!(go_duration(7199), "1h59m59s");
        assert_eq!(go_duration(0), "0s");
    }
}
