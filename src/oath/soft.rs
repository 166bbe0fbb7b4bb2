//! The software reference [`Mac`]: HMAC computed in process memory.
//!
//! Only for unit tests against the RFC vectors, benchmarks and test clients. The service
//! itself computes every HMAC inside the HSM.

use hmac::Hmac;

use super::{Mac, TruncationError};
use crate::domain::{Algorithm, SecretBytes};

/// HMAC with a key held in (zeroized) process memory.
#[derive(Debug)]
pub struct SoftMac {
    algorithm: Algorithm,
    key: SecretBytes,
}

impl SoftMac {
    /// A reference MAC for `algorithm` under `key`.
    pub fn new(algorithm: Algorithm, key: &[u8]) -> Self {
        Self {
            algorithm,
            key: SecretBytes::new(key.to_vec()),
        }
    }
}

impl Mac for SoftMac {
    type Error = TruncationError;

    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn mac(&mut self, message: &[u8]) -> Result<Vec<u8>, TruncationError> {
        fn run<M: hmac::Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
            // HMAC accepts keys of any length (RFC 2104), so this cannot fail.
            match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(message);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        let key = self.key.expose();
        let out = match self.algorithm {
            Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, message),
            Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, message),
            Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, message),
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_padding_a_short_key_up_to_the_block_size_does_not_change_the_hmac() {
        // RFC 2104: keys shorter than B are padded with zeros. The HSM layer relies on this to
        // meet SoftHSM's minimum HMAC key lengths with shorter imported seeds.
        for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            let short = [7u8; 16];
            let mut padded = short.to_vec();
            padded.resize(alg.block_len(), 0);
            let a = SoftMac::new(alg, &short).mac(b"counter!").unwrap();
            let b = SoftMac::new(alg, &padded).mac(b"counter!").unwrap();
            assert_eq!(a, b, "{alg:?}");
        }
    }
}
