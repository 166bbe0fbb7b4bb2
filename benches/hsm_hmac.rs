//! HMAC computed by SoftHSM through the session pool, in both seed storage modes: what one
//! verification's HSM work costs. Wrapped seeds cold (unwrap + HMACs + destroy: two seeds
//! used in turn with room for one hot seed, so each use evicts the other) and hot (the seed
//! still unwrapped from its last use). Needs SoftHSM and PostgreSQL
//! (`.ci/install-deps --postgres`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(dead_code, unused_imports, unreachable_pub, clippy::disallowed_methods)]

#[path = "../tests/e2e/helpers/mod.rs"]
mod helpers;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use hsm_otp::domain::{Algorithm, Digits, SecretBytes, SecretString};
use hsm_otp::hsm::{Hsm, HsmSettings, SeedStorage};
use hsm_otp::metrics::Metrics;
use hsm_otp::oath::{hotp, window};

fn bench(c: &mut Criterion) {
    let env = helpers::Env::new();
    std::env::set_var("SOFTHSM2_CONF", &env.softhsm_conf);
    // An HSM layer on the bench's token with room for `hot_seeds`, recycled as by default.
    let layer = |hot_seeds| {
        let hsm = Hsm::new(
            HsmSettings {
                module: hsm_otp::config::DEFAULT_PKCS11_MODULE.into(),
                token_label: env.token_label.clone(),
                user_pin: SecretString::new(env.user_pin.clone()),
                max_sessions: 4,
                hot_seeds,
                recycle_after: 100_000,
            },
            Arc::new(Metrics::new().unwrap()),
        );
        hsm.ensure_keys().unwrap();
        hsm
    };
    let hsm = layer(1);
    let seed = SecretBytes::new(vec![0x5a; 20]);
    let other = SecretBytes::new(vec![0xa5; 20]);
    let cases = [
        ("wrapped", SeedStorage::Wrapped, true),
        ("wrapped_hot", SeedStorage::Wrapped, false),
        ("object", SeedStorage::Object, false),
    ];
    for (name, storage, cold) in cases {
        let stored = hsm.store_seed(&seed, Algorithm::Sha1, storage).unwrap();
        let second = hsm.store_seed(&other, Algorithm::Sha1, storage).unwrap();
        let mut turn = 0_u64;
        let mut pick = || {
            turn += 1;
            if cold && turn % 2 == 0 {
                &second
            } else {
                &stored
            }
        };
        c.bench_function(&format!("hsm/{name}/one_hotp"), |b| {
            b.iter(|| {
                hsm.with_seed(pick(), Algorithm::Sha1, |mac| hotp(mac, 1, Digits::SIX))
                    .unwrap()
            })
        });
        let miss = hsm_otp::domain::Otp::from_value(999_999, Digits::SIX);
        c.bench_function(&format!("hsm/{name}/window_miss_11_hmacs"), |b| {
            b.iter(|| {
                hsm.with_seed(pick(), Algorithm::Sha1, |mac| {
                    window::find(
                        mac,
                        &miss,
                        Digits::SIX,
                        window::hotp_window(500, 10, 0),
                        500,
                    )
                })
                .unwrap()
            })
        });
    }
    // A large fleet: 2,048 seeds used in turn with room for 1,024 hot seeds, as at 100,000
    // tokens and more, where no use finds its seed kept. The cache stands down after its
    // second epoch (it kept 1,024 objects before: 65–94 µs a use, against 38 µs since).
    let full = layer(1_024);
    let fleet: Vec<_> = (0..2_048_u32)
        .map(|i| {
            let seed = SecretBytes::new([i.to_be_bytes().as_slice(), &[0x3c; 16]].concat());
            full.store_seed(&seed, Algorithm::Sha1, SeedStorage::Wrapped)
                .unwrap()
        })
        .collect();
    let mut next = fleet.iter().cycle();
    c.bench_function("hsm/wrapped_cold_hot_seeds_full/one_hotp", |b| {
        b.iter(|| {
            full.with_seed(next.next().unwrap(), Algorithm::Sha1, |mac| {
                hotp(mac, 1, Digits::SIX)
            })
            .unwrap()
        })
    });
    // A challenge's life: its code's MAC at creation and again at verification, its message
    // sealed in the outbox and opened for delivery (long-lived keys, not seeds).
    let code = hsm_otp::domain::Otp::from_value(123_456, Digits::SIX);
    c.bench_function("hsm/challenge_mac", |b| {
        b.iter(|| hsm.challenge_mac(&[7; 16], &code).unwrap())
    });
    c.bench_function("hsm/seal_and_open", |b| {
        b.iter(|| {
            let sealed = hsm.seal(b"Your code is 123456", &[7; 16]).unwrap();
            hsm.open(&sealed, &[7; 16]).unwrap()
        })
    });
    c.bench_function("hsm/channel_key_mac", |b| {
        b.iter(|| {
            hsm.channel_key_mac(b"hok_abcdefghijklmnopqrstuvwxyz234567")
                .unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
