//! One verification's database work, through the store (diesel, the connection pool and the
//! group-commit path), on a fresh PostgreSQL database: the accept transaction (conditional
//! `UPDATE` of the token + audit row) and the reject transaction (failure counter + audit
//! row), one caller at a time. Needs PostgreSQL (`.ci/install-deps --postgres`).
//! The same transaction under concurrency, beside pgbench: `cargo bench --bench verify_mtls`.
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
use hsm_otp::metrics::Metrics;
use hsm_otp::store::{AuditEntry, NewToken, Store};
use uuid::Uuid;

const TOKENS: usize = 1_000;

fn entry(channel: Uuid, token: Uuid) -> AuditEntry {
    AuditEntry {
        channel_id: Some(channel),
        token_id: Some(token),
        user_id: Some("bench".into()),
        action: "verify".into(),
        result: "accept".into(),
        moving_factor: None,
        request_id: Some("bench".into()),
        challenge_id: None,
    }
}

fn bench(c: &mut Criterion) {
    let env = helpers::Env::new();
    let store = Store::new(&env.database_url, 4, Arc::new(Metrics::new().unwrap()));
    let channel: Uuid = env
        .sql("SELECT id FROM channels WHERE name = 'app'")
        .parse()
        .unwrap();
    let tokens: Vec<NewToken> = (0..TOKENS)
        .map(|n| NewToken {
            id: Uuid::new_v4(),
            channel_id: channel,
            user_id: format!("u{n}"),
            kind: "hotp".into(),
            algorithm: "SHA1".into(),
            digits: 6,
            period: 30,
            next_factor: 0,
            // A placeholder blob: this bench never asks the HSM.
            wrapped_seed: Some(vec![0; 40]),
            kek_version: Some(1),
            hsm_label: None,
            issuer: None,
        })
        .collect();
    let entries: Vec<AuditEntry> = tokens.iter().map(|t| entry(channel, t.id)).collect();
    store.insert_tokens(&tokens, &entries, None).unwrap();
    let ids: Vec<Uuid> = tokens.iter().map(|t| t.id).collect();

    let mut factors = vec![0i64; TOKENS];
    let mut n = 0usize;
    c.bench_function("db/verify_accept_transaction", |b| {
        b.iter(|| {
            n = (n + 1) % TOKENS;
            let outcome = store
                .advance(ids[n], factors[n], None, entry(channel, ids[n]))
                .unwrap();
            factors[n] += 1;
            outcome
        })
    });
    c.bench_function("db/verify_reject_transaction", |b| {
        b.iter(|| {
            n = (n + 1) % TOKENS;
            let mut e = entry(channel, ids[n]);
            e.result = "reject".into();
            store.record_failures(&ids[n..=n], i32::MAX, &e).unwrap()
        })
    });
    c.bench_function("db/token_read", |b| {
        b.iter(|| {
            n = (n + 1) % TOKENS;
            store.token(channel, ids[n]).unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
