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

use crate::helpers::{in_both_modes, start, Env, Server};

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

/// An HSM layer in this process, on `env`'s token. SoftHSM reads its configuration at
/// `C_Initialize`, so each in-process test needs a process of its own, as `cargo nextest`
/// gives it.
fn in_process_hsm(env: &Env, hot_seeds: usize, recycle_after: u64, metrics: Arc<Metrics>) -> Hsm {
    std::env::set_var("SOFTHSM2_CONF", &env.softhsm_conf);
    let hsm = Hsm::new(
        HsmSettings {
            module: hsm_otp::config::DEFAULT_PKCS11_MODULE.into(),
            token_label: env.token_label.clone(),
            user_pin: hsm_otp::domain::SecretString::new(env.user_pin.clone()),
            max_sessions: 4,
            hot_seeds,
            recycle_after,
        },
        metrics,
    );
    hsm.ensure_keys().unwrap();
    hsm
}

fn resident_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// SoftHSM 2.6 frees a destroyed session object's memory only when the module is finalised,
/// so a server that unwraps a seed at each verification (a fleet larger than the hot seeds)
/// grew by about 260 bytes per verification, without bound. The pool is recycled after
/// `hsm_recycle_after` session objects, and the process keeps its size.
#[test]
fn unwrapping_seed_after_seed_keeps_the_process_size_bounded() {
    let env = Env::new();
    let metrics = Arc::new(Metrics::new().unwrap());
    let hsm = in_process_hsm(&env, 1, 2_000, metrics.clone());
    let seeds: Vec<_> = [0x44_u8, 0x55]
        .iter()
        .map(|b| {
            hsm.store_seed(
                &SecretBytes::new(vec![*b; 20]),
                Algorithm::Sha1,
                SeedStorage::Wrapped,
            )
            .unwrap()
        })
        .collect();
    let code = |seed| {
        hsm.with_seed(seed, Algorithm::Sha1, |mac| oath::hotp(mac, 7, Digits::SIX))
            .unwrap()
            .expose()
            .to_owned()
    };
    let expected: Vec<String> = seeds.iter().map(code).collect();
    // Two seeds in turn with room for one hot seed: nearly every use unwraps one and destroys
    // the other's object. Four threads at once, so that recycles happen while other
    // operations hold sessions: none of them may fail or give a wrong code.
    let use_cold = |n: usize| {
        std::thread::scope(|threads| {
            for t in 0..4 {
                let (code, seeds, expected) = (&code, &seeds, &expected);
                threads.spawn(move || {
                    for i in t..t + n / 4 {
                        assert_eq!(code(&seeds[i % 2]), expected[i % 2]);
                    }
                });
            }
        });
    };
    use_cold(10_000); // the allocator reaches its working size
    let before = resident_kb();
    use_cold(50_000);
    let grown = resident_kb().saturating_sub(before);
    assert!(
        grown < 4 * 1024,
        "the process grew by {grown} kB over 50,000 unwrapped seeds"
    );
    let recycles = metrics.hsm_resets.with_label_values(&["recycle"]).get();
    assert!(recycles >= 25, "{recycles} recycles");
}

/// Session copies carry their original's label, but only token objects are looked up by
/// label: once the handle cache is dropped (any "not found", as for a deleted token's seed),
/// the seed objects are indexed again and must resolve to the objects on the token, so that
/// deleting a token destroys its seed object, not a copy of it.
#[test]
fn deleting_a_token_destroys_its_seed_object_while_copies_of_it_exist() {
    let env = Env::new();
    let hsm = in_process_hsm(&env, 8, 0, Arc::new(Metrics::new().unwrap()));
    hsm.index_seed_objects().unwrap();
    let store = |byte: u8| {
        hsm.store_seed(
            &SecretBytes::new(vec![byte; 20]),
            Algorithm::Sha1,
            SeedStorage::Object,
        )
        .unwrap()
    };
    let (doomed, kept, third) = (store(0x11), store(0x22), store(0x33));
    let code = |seed: &hsm_otp::hsm::SeedRef| {
        hsm.with_seed(seed, Algorithm::Sha1, |mac| oath::hotp(mac, 0, Digits::SIX))
            .unwrap()
            .expose()
            .to_owned()
    };
    let kept_code = code(&kept);
    code(&doomed); // both seeds now have a hot session copy
    let missing = hsm_otp::hsm::SeedRef::Object {
        label: format!("{}missing", hsm_otp::hsm::SEED_LABEL_PREFIX),
    };
    let gone = hsm.with_seed(&missing, Algorithm::Sha1, |mac| {
        oath::hotp(mac, 0, Digits::SIX)
    });
    assert!(gone.is_err(), "a seed object that does not exist");
    code(&third); // not hot: the index is rebuilt while the copies exist
    assert_eq!(code(&kept), kept_code);
    hsm.destroy_seed(&doomed).unwrap();
    let label = |seed: &hsm_otp::hsm::SeedRef| match seed {
        hsm_otp::hsm::SeedRef::Object { label } => label.clone(),
        hsm_otp::hsm::SeedRef::Wrapped { .. } => unreachable!(),
    };
    let on_token: Vec<String> = secret_keys(&env).into_iter().map(|k| k.0).collect();
    assert!(!on_token.contains(&label(&doomed)), "{on_token:?}");
    assert!(on_token.contains(&label(&kept)), "{on_token:?}");
    assert!(hsm
        .with_seed(&doomed, Algorithm::Sha1, |mac| oath::hotp(
            mac,
            0,
            Digits::SIX
        ))
        .is_err());
    assert_eq!(code(&kept), kept_code);
}

/// The RFC vectors with the HMAC computed by SoftHSM through the session pool, in both
/// storage modes (this test drives the library's HSM layer in-process).
#[test]
fn the_rfc_vectors_hold_with_the_hmac_computed_in_the_hsm() {
    let env = Env::new();
    let hsm = in_process_hsm(&env, 1, 0, Arc::new(Metrics::new().unwrap()));
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

/// Several processes started at once on a fresh token (replicas of one deployment, say)
/// create each of the service's long-lived keys once between them: two of one key would
/// leave each process using its own (a seed wrapped by one unreadable by the other), and
/// every later start refusing the ambiguous label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_started_at_once_on_a_fresh_token_create_each_service_key_once() {
    let mut env = Env::new();
    env.replace_token();
    // SoftHSM's file store is not made for several processes writing one token: one that
    // reads while another writes may find no token, or fail. Each replica tries again (as
    // an orchestrator restarts one that exits); a key made twice would fail every try.
    let replica = |n: usize| {
        let name = format!("replica{n}");
        for _ in 0..10 {
            let out = env.cli(&["channel", "create", &name, "--json"]);
            if out.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                return v["channel_key"].as_str().unwrap().to_owned();
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("{name} never started");
    };
    let keys: Vec<String> = std::thread::scope(|s| {
        let replicas: Vec<_> = (0..6).map(|n| s.spawn(move || replica(n))).collect();
        replicas.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut labels: Vec<String> = secret_keys(&env).into_iter().map(|(l, _, _)| l).collect();
    labels.sort();
    let mut once = labels.clone();
    once.dedup();
    assert_eq!(labels, once, "a service key made twice");
    assert_eq!(labels.len(), 4, "{labels:?}");
    // Every channel works, and a seed enrolled through one process is used by another.
    let (first, second) = (Server::start(&env), Server::start(&env));
    for key in &keys {
        let id = first.api(key).enrol_rfc_hotp("u").await;
        assert_eq!(
            second.api(key).verify(&id, RFC4226_CODES[0]).await,
            "accept"
        );
    }
}
