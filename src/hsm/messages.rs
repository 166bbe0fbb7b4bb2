//! Challenge codes and outgoing messages: the HSM draws the codes, MACs them for storage
//! (promise 3), and seals the message texts that carry them while they wait in the outbox.

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;

use super::{Hsm, HsmError, CHALLENGE_MAC_LABEL, OUTBOX_KEY_LABEL};
use crate::domain::{code_from_random, Otp, SecretBytes};

/// AES-GCM nonce length.
const IV_LEN: usize = 12;
/// AES-GCM tag length in bits.
const TAG_BITS: u64 = 128;
/// Draws before giving up on rejection sampling (each is rejected with probability < 2^-30).
const MAX_DRAWS: usize = 16;

impl Hsm {
    /// A uniformly random `digits`-digit code from the HSM's generator.
    pub fn challenge_code(&self, digits: u8) -> Result<Otp, HsmError> {
        self.run("challenge_code", |s, _| {
            for _ in 0..MAX_DRAWS {
                let mut draw = [0u8; 8];
                s.generate_random_slice(&mut draw)?;
                if let Some(code) = code_from_random(draw, digits) {
                    return Ok(code);
                }
            }
            Err(HsmError::Internal("no unbiased draw from the RNG".into()))
        })
    }

    /// HMAC-SHA256 over (challenge id, code) under the challenge MAC key.
    pub fn challenge_mac(&self, challenge_id: &[u8; 16], code: &Otp) -> Result<Vec<u8>, HsmError> {
        let mut message = SecretBytes::new(Vec::with_capacity(16 + code.len()));
        message.extend(challenge_id);
        message.extend(code.expose().as_bytes());
        self.run("challenge_mac", |s, generation| {
            let key = self.working_key(s, generation, CHALLENGE_MAC_LABEL)?;
            Ok(s.sign(&Mechanism::Sha256Hmac, key, message.expose())?)
        })
    }

    /// Encrypts `message` with AES-GCM under the outbox key, bound to `context`
    /// (the challenge id) as additional data; returns nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, message: &[u8], context: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.run("seal", |s, generation| {
            let key = self.working_key(s, generation, OUTBOX_KEY_LABEL)?;
            let mut iv = [0u8; IV_LEN];
            s.generate_random_slice(&mut iv)?;
            let mut nonce = iv;
            let params = GcmParams::new(&mut nonce, context, TAG_BITS.into())?;
            let sealed = s.encrypt(&Mechanism::AesGcm(params), key, message)?;
            let mut out = iv.to_vec();
            out.extend_from_slice(&sealed);
            Ok(out)
        })
    }

    /// Decrypts what [`Hsm::seal`] produced for `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<SecretBytes, HsmError> {
        let (iv, body) = sealed
            .split_at_checked(IV_LEN)
            .ok_or_else(|| HsmError::Internal("sealed message too short".into()))?;
        self.run("open", |s, generation| {
            let key = self.working_key(s, generation, OUTBOX_KEY_LABEL)?;
            let mut nonce = [0u8; IV_LEN];
            nonce.copy_from_slice(iv);
            let params = GcmParams::new(&mut nonce, context, TAG_BITS.into())?;
            Ok(SecretBytes::new(s.decrypt(
                &Mechanism::AesGcm(params),
                key,
                body,
            )?))
        })
    }
}
