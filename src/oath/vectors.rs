//! The published test vectors, shared by unit tests, HSM tests and benchmarks.

use crate::domain::Algorithm;

/// RFC 4226 Appendix D: the ASCII seed "12345678901234567890".
pub const RFC4226_SEED: &[u8] = b"12345678901234567890";

/// RFC 4226 Appendix D: the 6-digit HOTP values for counters 0 to 9.
pub const RFC4226_CODES: [&str; 10] = [
    "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
    "520489",
];

/// RFC 6238 Appendix B: the seed used with each hash function (20, 32 and 64 ASCII bytes).
pub fn rfc6238_seed(alg: Algorithm) -> &'static [u8] {
    match alg {
        Algorithm::Sha1 => b"12345678901234567890",
        Algorithm::Sha256 => b"12345678901234567890123456789012",
        Algorithm::Sha512 => b"1234567890123456789012345678901234567890123456789012345678901234",
    }
}

/// RFC 6238 Appendix B: (Unix time, hash function, 8-digit TOTP) with a 30-second period.
pub const RFC6238_CODES: [(u64, Algorithm, &str); 18] = [
    (59, Algorithm::Sha1, "94287082"),
    (59, Algorithm::Sha256, "46119246"),
    (59, Algorithm::Sha512, "90693936"),
    (1_111_111_109, Algorithm::Sha1, "07081804"),
    (1_111_111_109, Algorithm::Sha256, "68084774"),
    (1_111_111_109, Algorithm::Sha512, "25091201"),
    (1_111_111_111, Algorithm::Sha1, "14050471"),
    (1_111_111_111, Algorithm::Sha256, "67062674"),
    (1_111_111_111, Algorithm::Sha512, "99943326"),
    (1_234_567_890, Algorithm::Sha1, "89005924"),
    (1_234_567_890, Algorithm::Sha256, "91819424"),
    (1_234_567_890, Algorithm::Sha512, "93441116"),
    (2_000_000_000, Algorithm::Sha1, "69279037"),
    (2_000_000_000, Algorithm::Sha256, "90698825"),
    (2_000_000_000, Algorithm::Sha512, "38618901"),
    (20_000_000_000, Algorithm::Sha1, "65353130"),
    (20_000_000_000, Algorithm::Sha256, "77737706"),
    (20_000_000_000, Algorithm::Sha512, "47863826"),
];
