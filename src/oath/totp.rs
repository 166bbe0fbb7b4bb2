//! TOTP, RFC 6238: HOTP over the number of whole periods since the Unix epoch.

/// A TOTP period in seconds (RFC 6238 "X"); 30 by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period(u32);

impl Period {
    /// The RFC's default of 30 seconds.
    pub const DEFAULT: Period = Period(30);

    /// Accepts 1 to 3600 seconds.
    pub fn new(seconds: u32) -> Option<Self> {
        (1..=3600).contains(&seconds).then_some(Self(seconds))
    }

    /// The period in seconds.
    pub fn seconds(self) -> u32 {
        self.0
    }
}

/// The time step `T = floor((unix_seconds - T0) / X)` with `T0 = 0` (RFC 6238 section 4.2).
pub fn time_step(unix_seconds: u64, period: Period) -> u64 {
    unix_seconds / u64::from(period.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Digits;
    use crate::oath::hotp;
    use crate::oath::soft::SoftMac;
    use crate::oath::vectors::{rfc6238_seed, RFC6238_CODES};

    #[test]
    fn every_rfc6238_appendix_b_vector_holds() {
        let eight = Digits::new(8).unwrap();
        for (time, alg, expected) in RFC6238_CODES {
            let mut mac = SoftMac::new(alg, rfc6238_seed(alg));
            let step = time_step(time, Period::DEFAULT);
            let code = hotp(&mut mac, step, eight).unwrap();
            assert_eq!(code.expose(), expected, "{alg:?} at {time}");
        }
    }

    #[test]
    fn steps_follow_the_period() {
        assert_eq!(time_step(59, Period::DEFAULT), 1);
        assert_eq!(time_step(60, Period::DEFAULT), 2);
        assert_eq!(time_step(59, Period::new(60).unwrap()), 0);
        assert!(Period::new(0).is_none());
    }
}
