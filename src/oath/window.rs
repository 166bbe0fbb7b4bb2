//! Verification windows: which moving factors to try, and what a match means.
//!
//! The moving factor is the HOTP counter or the TOTP time step. Each token stores
//! `next_factor`: the lowest factor not yet used. A code that matches a factor at or above it
//! may be accepted (and moves `next_factor` past it); a code that matches a lower factor was
//! already used or superseded, and is a replay. The verdict is only a proposal: the store
//! settles it with one conditional update, so that concurrent requests accept a code once.

use std::ops::RangeInclusive;

use super::{hotp, Mac};
use crate::domain::{Digits, Otp};

/// What a presented code matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    /// It matched this unused factor: accept if the conditional advance succeeds.
    Fresh(u64),
    /// It matched a factor that was already used: a replay.
    Used(u64),
    /// It matched nothing in the window.
    Miss,
}

/// The HOTP factors to try: `look_behind` used counters (to recognise a replay) and then
/// `next` and `look_ahead` counters after it (RFC 4226 section 7.4).
pub fn hotp_window(next: u64, look_ahead: u32, look_behind: u32) -> RangeInclusive<u64> {
    next.saturating_sub(u64::from(look_behind))..=next.saturating_add(u64::from(look_ahead))
}

/// The TOTP steps to try: the current step (corrected by the token's known drift) and
/// `tolerance` steps either side (RFC 6238 section 5.2).
pub fn totp_window(step: u64, drift: i64, tolerance: u32) -> RangeInclusive<u64> {
    let centre = step.saturating_add_signed(drift);
    centre.saturating_sub(u64::from(tolerance))..=centre.saturating_add(u64::from(tolerance))
}

/// Tries `otp` against the unused factors of `window` in order, then the used ones, and
/// classifies the first match: the common case, the next code, costs one MAC.
///
/// Each comparison is constant-time; the search stops at the first match, since where a code
/// matched is not secret (it is recorded in the audit trail).
pub fn find<M: Mac>(
    mac: &mut M,
    otp: &Otp,
    digits: Digits,
    window: RangeInclusive<u64>,
    next_factor: u64,
) -> Result<Match, M::Error> {
    let fresh = window.clone().filter(|f| *f >= next_factor);
    let used = window.filter(|f| *f < next_factor);
    for factor in fresh.chain(used) {
        if hotp(mac, factor, digits)?.ct_eq(otp) {
            return Ok(if factor >= next_factor {
                Match::Fresh(factor)
            } else {
                Match::Used(factor)
            });
        }
    }
    Ok(Match::Miss)
}

/// Resynchronisation: the first factor `f` in `window` with `otp1` at `f` and `otp2` at `f+1`,
/// at or above `next_factor` (two consecutive codes, RFC 4226 section 7.4).
pub fn find_pair<M: Mac>(
    mac: &mut M,
    otp1: &Otp,
    otp2: &Otp,
    digits: Digits,
    window: RangeInclusive<u64>,
    next_factor: u64,
) -> Result<Option<u64>, M::Error> {
    let start = (*window.start()).max(next_factor);
    let mut previous_matched = false;
    for factor in start..=window.end().saturating_add(1) {
        let code = hotp(mac, factor, digits)?;
        if previous_matched && code.ct_eq(otp2) {
            return Ok(Some(factor - 1));
        }
        previous_matched = factor <= *window.end() && code.ct_eq(otp1);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Algorithm;
    use crate::oath::soft::SoftMac;
    use crate::oath::vectors::{RFC4226_CODES, RFC4226_SEED};

    fn mac() -> SoftMac {
        SoftMac::new(Algorithm::Sha1, RFC4226_SEED)
    }

    fn code(i: usize) -> Otp {
        Otp::parse(RFC4226_CODES[i]).unwrap()
    }

    #[test]
    fn a_code_ahead_within_the_look_ahead_is_fresh() {
        let m = find(&mut mac(), &code(4), Digits::SIX, hotp_window(2, 10, 1), 2).unwrap();
        assert_eq!(m, Match::Fresh(4));
    }

    /// Counts the MACs computed (each one is an HSM operation in service).
    struct Counting(SoftMac, usize);

    impl Mac for Counting {
        type Error = crate::oath::TruncationError;
        fn algorithm(&self) -> Algorithm {
            self.0.algorithm()
        }
        fn mac(&mut self, message: &[u8]) -> Result<Vec<u8>, Self::Error> {
            self.1 += 1;
            Ok(self.0.mac(message).unwrap())
        }
    }

    #[test]
    fn the_next_code_costs_one_mac_and_a_miss_tries_the_whole_window() {
        let mut m = Counting(mac(), 0);
        let found = find(&mut m, &code(4), Digits::SIX, hotp_window(4, 10, 1), 4).unwrap();
        assert_eq!((found, m.1), (Match::Fresh(4), 1));
        let mut m = Counting(mac(), 0);
        let miss = Otp::parse("000000").unwrap();
        let found = find(&mut m, &miss, Digits::SIX, hotp_window(4, 10, 1), 4).unwrap();
        assert_eq!((found, m.1), (Match::Miss, 12));
    }

    #[test]
    fn a_code_beyond_the_look_ahead_is_a_miss() {
        let m = find(&mut mac(), &code(9), Digits::SIX, hotp_window(0, 3, 1), 0).unwrap();
        assert_eq!(m, Match::Miss);
    }

    #[test]
    fn the_last_used_code_is_recognised_as_a_replay() {
        let m = find(&mut mac(), &code(3), Digits::SIX, hotp_window(4, 10, 1), 4).unwrap();
        assert_eq!(m, Match::Used(3));
    }

    #[test]
    fn totp_window_is_centred_on_the_drifted_step() {
        assert_eq!(totp_window(100, 0, 1), 99..=101);
        assert_eq!(totp_window(100, -3, 2), 95..=99);
        assert_eq!(totp_window(0, 0, 1), 0..=1);
    }

    #[test]
    fn resync_finds_two_consecutive_codes() {
        let found = find_pair(
            &mut mac(),
            &code(6),
            &code(7),
            Digits::SIX,
            hotp_window(0, 100, 0),
            0,
        );
        assert_eq!(found.unwrap(), Some(6));
        let not_consecutive = find_pair(
            &mut mac(),
            &code(6),
            &code(8),
            Digits::SIX,
            hotp_window(0, 100, 0),
            0,
        );
        assert_eq!(not_consecutive.unwrap(), None);
        let already_used = find_pair(
            &mut mac(),
            &code(6),
            &code(7),
            Digits::SIX,
            hotp_window(0, 100, 0),
            8,
        );
        assert_eq!(already_used.unwrap(), None);
    }
}
