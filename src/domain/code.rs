//! Challenge codes drawn from random bytes without modulo bias.

use super::Otp;

/// Shortest challenge code.
pub const MIN_CODE_DIGITS: u8 = 4;
/// Longest challenge code.
pub const MAX_CODE_DIGITS: u8 = 10;

/// Turns 8 random bytes into a `digits`-digit code, or `None` when the draw falls in the
/// biased tail and must be repeated (rejection sampling: only values below the largest
/// multiple of 10^digits that fits in 64 bits are used, so every code is equally likely).
pub fn code_from_random(random: [u8; 8], digits: u8) -> Option<Otp> {
    if !(MIN_CODE_DIGITS..=MAX_CODE_DIGITS).contains(&digits) {
        return None;
    }
    let modulus = 10u64.pow(u32::from(digits));
    let limit = u64::MAX - (u64::MAX % modulus) - 1; // largest value of a whole cycle
    let value = u64::from_be_bytes(random);
    if value > limit {
        return None;
    }
    let width = usize::from(digits);
    Otp::parse(&format!("{:0width$}", value % modulus)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_requested_length_and_keep_leading_zeros() {
        let code = code_from_random(7u64.to_be_bytes(), 6).unwrap();
        assert_eq!(code.expose(), "000007");
        assert!(
            code_from_random(u64::MAX.to_be_bytes(), 10).is_none(),
            "biased tail redrawn"
        );
        assert!(code_from_random([0; 8], 3).is_none());
        assert!(code_from_random([0; 8], 11).is_none());
        assert_eq!(code_from_random([1; 8], 10).unwrap().len(), 10);
    }

    #[test]
    fn every_draw_below_the_limit_is_used_and_none_above_it() {
        let modulus = 10u64.pow(4);
        let limit = u64::MAX - (u64::MAX % modulus) - 1;
        assert_eq!(
            (limit + 1) % modulus,
            0,
            "the accepted range is whole cycles"
        );
        assert!(code_from_random(limit.to_be_bytes(), 4).is_some());
        assert!(code_from_random((limit + 1).to_be_bytes(), 4).is_none());
    }
}
