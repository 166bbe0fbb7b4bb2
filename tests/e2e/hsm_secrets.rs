//! Promise 1 (seeds never leave the HSM in the clear) and promise 2 (channel keys as MACs),
//! checked from outside: PKCS#11 attribute read-back, a database dump, and the RFC vectors
//! computed by the HSM itself.

use std::sync::Arc;

use hsm_otp::domain::{Algorithm, Digits, SecretBytes};
use hsm_otp::hsm::{Hsm, HsmSettings, SeedStorage};
use hsm_otp::metrics::Metrics;
use hsm_otp::oath::vectors::{rfc6238_seed, RFC4226_CODES, RFC4226_SEED, RFC6238_CODES};
use hsm_otp::oath::{self, time_step, Period};
use serde_json::json;

use crate::helpers::{in_both_modes, start, Env};

/// `pkcs11-tool --list-objects` blocks as (label, usage, access).
fn secret_keys(env: &Env) -> Vec<(String, Vec<String>, Vec<String>)> {
    let text = env.pkcs11_tool(&["--list-objects", "--type", "secrkey"]);
    let mut keys = Vec::new();
    for block in text.split("Secret Key Object").skip(1) {
        let field = |name: &str| -> Vec<String> {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let label = field("label:").join(",");
        keys.push((label, field("Usage:"), field("Access:")));
    }
    keys
}

#[tokio::test]
async fn every_secret_key_in_the_hsm_reads_back_as_sensitive_and_not_extractable() {
    in_both_modes(|mode| async move {
        let (env, _server, api) = start(mode);
        api.enrol_rfc_hotp("alice").await;
        api.enrol(json!({"user": "bob", "type": "totp", "algorithm": "SHA512"}))
            .await;
        let keys = secret_keys(&env);
        let labels: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        assert!(labels.contains(&"hsm-otp.seed-kek.v1"), "{labels:?}");
        assert!(labels.contains(&"hsm-otp.channel-key-mac.v1"), "{labels:?}");
        let seeds = labels
            .iter()
            .filter(|l| l.starts_with("hsm-otp.seed."))
            .count();
        assert_eq!(
            seeds,
            if mode == "object" { 2 } else { 0 },
            "{mode}: {labels:?}"
        );
        for (label, usage, access) in &keys {
            assert!(
                access.contains(&"sensitive".to_owned()),
                "{label}: {access:?}"
            );
            assert!(
                !access.contains(&"extractable".to_owned()),
                "{label}: {access:?}"
            );
            assert!(!usage.contains(&"derive".to_owned()), "{label}: {usage:?}");
            if label != "hsm-otp.outbox-key.v1" {
                for forbidden in ["encrypt", "decrypt"] {
                    assert!(!usage.contains(&forbidden.to_owned()), "{label}: {usage:?}");
                }
            }
            if label.starts_with("hsm-otp.seed.") || label.contains("mac") {
                assert!(
                    !usage.iter().any(|u| u == "wrap" || u == "unwrap"),
                    "{label}: {usage:?}"
                );
            }
        }
        let kek = keys.iter().find(|k| k.0 == "hsm-otp.seed-kek.v1").unwrap();
        assert_eq!(kek.1, ["wrap", "unwrap"], "the KEK only wraps and unwraps");
        let outbox = keys
            .iter()
            .find(|k| k.0 == "hsm-otp.outbox-key.v1")
            .unwrap();
        assert_eq!(
            outbox.1,
            ["encrypt", "decrypt"],
            "the outbox key only seals messages"
        );
        assert!(labels.contains(&"hsm-otp.challenge-mac.v1"), "{labels:?}");
    })
    .await;
}

#[tokio::test]
async fn a_database_dump_holds_no_seed_and_no_channel_key_in_the_clear() {
    in_both_modes(|mode| async move {
        let (env, _server, api) = start(mode);
        let hex_seed = "00112233445566778899aabbccddeeff01234567";
        api.enrol(json!({"user": "a", "type": "hotp", "seed_hex": hex_seed}))
            .await;
        let b32 = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        api.enrol(json!({"user": "b", "type": "totp", "seed_base32": b32}))
            .await;
        let generated = api.enrol(json!({"user": "c", "type": "totp"})).await;
        let uri = generated["otpauth_uri"].as_str().unwrap();
        let gen_b32 = crate::helpers::otpauth_secret(uri);
        let gen_hex = hex::encode(
            data_encoding::BASE32_NOPAD
                .decode(gen_b32.as_bytes())
                .unwrap(),
        );
        let b32_hex = hex::encode(data_encoding::BASE32_NOPAD.decode(b32.as_bytes()).unwrap());

        let dump = env.pg_dump().to_lowercase();
        assert!(
            dump.contains(generated["id"].as_str().unwrap()),
            "the dump holds the tokens"
        );
        for secret in [hex_seed, &b32_hex, &gen_hex] {
            // bytea is dumped as hex; also look for any 8-byte window of the seed.
            for window in secret.as_bytes().chunks(16) {
                let w = std::str::from_utf8(window).unwrap();
                assert!(!dump.contains(w), "{mode}: seed bytes {w} in the dump");
            }
        }
        for secret in [
            b32.to_lowercase(),
            gen_b32.to_lowercase(),
            env.channel_key.to_lowercase(),
        ] {
            assert!(!dump.contains(&secret), "{mode}: a secret in the dump");
        }
        let key_hex = hex::encode(env.channel_key.as_bytes());
        assert!(!dump.contains(&key_hex[..32]));
        if mode == "wrapped" {
            let blobs =
                env.sql("SELECT count(*) FROM tokens WHERE octet_length(wrapped_seed) >= 24");
            assert_eq!(blobs, "3", "every seed stored wrapped");
        }
    })
    .await;
}

/// The RFC vectors with the HMAC computed by SoftHSM through the session pool, in both
/// storage modes (this test drives the library's HSM layer in-process).
#[test]
fn the_rfc_vectors_hold_with_the_hmac_computed_in_the_hsm() {
    let env = Env::new();
    // SoftHSM reads its configuration at C_Initialize; this is the only in-process PKCS#11 use.
    std::env::set_var("SOFTHSM2_CONF", &env.softhsm_conf);
    let hsm = Hsm::new(
        HsmSettings {
            module: hsm_otp::config::DEFAULT_PKCS11_MODULE.into(),
            token_label: env.token_label.clone(),
            user_pin: hsm_otp::domain::SecretString::new(env.user_pin.clone()),
            max_sessions: 4,
            hot_seeds: 1,
        },
        Arc::new(Metrics::new().unwrap()),
    );
    hsm.ensure_keys().unwrap();
    for storage in [SeedStorage::Wrapped, SeedStorage::Object] {
        let seed = hsm
            .store_seed(
                &SecretBytes::new(RFC4226_SEED.to_vec()),
                Algorithm::Sha1,
                storage,
            )
            .unwrap();
        for (counter, expected) in RFC4226_CODES.iter().enumerate() {
            let code = hsm
                .with_seed(&seed, Algorithm::Sha1, |mac| {
                    oath::hotp(mac, counter as u64, Digits::SIX)
                })
                .unwrap();
            assert_eq!(code.expose(), *expected, "{storage:?} counter {counter}");
        }
        // The object the HMAC is computed with is a session object as locked down as the
        // seed's stored form: sensitive, never extractable, sign only. An unwrapped seed is
        // not private (only this process's logged-in sessions can reach it); a seed object's
        // copy stays private, as a copy may not lower `CKA_PRIVATE`.
        let flags = hsm
            .with_seed(&seed, Algorithm::Sha1, |mac| mac.flags())
            .unwrap();
        assert_eq!(
            flags,
            hsm_otp::hsm::KeyFlags {
                token: false,
                private: storage == SeedStorage::Object,
                sensitive: true,
                extractable: false,
                wrap: false,
                unwrap: false,
                sign: true,
                encrypt: false,
                decrypt: false,
                derive: false,
            },
            "{storage:?}"
        );
        for (time, alg, expected) in RFC6238_CODES {
            let seed = hsm
                .store_seed(&SecretBytes::new(rfc6238_seed(alg).to_vec()), alg, storage)
                .unwrap();
            let step = time_step(time, Period::DEFAULT);
            let code = hsm
                .with_seed(&seed, alg, |mac| {
                    oath::hotp(mac, step, Digits::new(8).unwrap())
                })
                .unwrap();
            assert_eq!(code.expose(), expected, "{storage:?} {alg:?} at {time}");
            hsm.destroy_seed(&seed).unwrap();
        }
    }
    // The long-lived keys are used through session copies: the same keys, as locked down, each
    // for its one purpose.
    let copy = |sign, wrap, encrypt| hsm_otp::hsm::KeyFlags {
        token: false,
        private: true,
        sensitive: true,
        extractable: false,
        wrap,
        unwrap: wrap,
        sign,
        encrypt,
        decrypt: encrypt,
        derive: false,
    };
    for (label, flags) in [
        (hsm_otp::hsm::KEK_LABEL, copy(false, true, false)),
        (hsm_otp::hsm::CHANNEL_MAC_LABEL, copy(true, false, false)),
        (hsm_otp::hsm::CHALLENGE_MAC_LABEL, copy(true, false, false)),
        (hsm_otp::hsm::OUTBOX_KEY_LABEL, copy(false, false, true)),
    ] {
        assert_eq!(hsm.working_key_flags(label).unwrap(), flags, "{label}");
    }
}
