//! Load generator: real verifications over mTLS with keep-alive against `hsm-otp serve`
//! (built in the bench profile) on a fresh SoftHSM token and database.
//!
//! `cargo bench --bench verify_mtls` — settings through the environment:
//! `BENCH_SECONDS` (5 per phase), `BENCH_CONCURRENCY` (32), `BENCH_MODES` (`wrapped,object`).
//! Prints a table and one JSON line per phase. Every loop is bounded in time and count, and
//! talks to 127.0.0.1 only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(dead_code, unused_imports, unreachable_pub, clippy::disallowed_methods)]

#[path = "../tests/e2e/helpers/mod.rs"]
mod helpers;

use std::time::{Duration, Instant};

use hsm_otp::domain::Algorithm;
use serde_json::json;

use helpers::{hotp, Env, EnvOptions, Server};

const MAX_REQUESTS_PER_WORKER: u64 = 1_000_000;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Phase {
    latencies: Vec<Duration>,
    errors: u64,
}

async fn phase(
    api: &helpers::app::Api,
    ids: &[String],
    accept: bool,
    seconds: u64,
) -> (Phase, f64) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (w, id) in ids.iter().enumerate() {
        let (api, id) = (api.clone(), id.clone());
        let seed = [w as u8 + 1; 20];
        tasks.push(tokio::spawn(async move {
            let mut out = Phase::default();
            let mut counter = 0u64;
            while Instant::now() < deadline && counter < MAX_REQUESTS_PER_WORKER {
                // Accept path: the next code. Reject path: a code far outside the window.
                let c = if accept { counter } else { counter + 100_000 };
                let code = hotp(&seed, Algorithm::Sha1, c, 6);
                let t = Instant::now();
                let (status, v) = api
                    .post(&format!("/v1/tokens/{id}/verify"), json!({"otp": code}))
                    .await;
                out.latencies.push(t.elapsed());
                let want = if accept { "accept" } else { "reject" };
                if !status.is_success() || v["result"] != want {
                    out.errors += 1;
                }
                counter += 1;
            }
            out
        }));
    }
    let mut all = Phase::default();
    for t in tasks {
        let p = t.await.unwrap();
        all.latencies.extend(p.latencies);
        all.errors += p.errors;
    }
    (all, started.elapsed().as_secs_f64())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; this one only runs under `cargo bench`
    }
    let seconds = setting("BENCH_SECONDS", 5);
    let concurrency = setting("BENCH_CONCURRENCY", 32) as usize;
    let modes = std::env::var("BENCH_MODES").unwrap_or_else(|_| "wrapped,object".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:<8} {:<7} {:>6} {:>10} {:>8} {:>8} {:>8} {:>7}",
        "mode", "path", "conns", "verifies/s", "p50 ms", "p95 ms", "p99 ms", "errors"
    );
    for mode in modes.split(',') {
        let mode: &'static str = if mode == "object" {
            "object"
        } else {
            "wrapped"
        };
        rt.block_on(async {
            let env = Env::with(EnvOptions {
                seed_storage: mode,
                settings: vec![("HSM_OTP_MAX_FAILURES".into(), "1000".into())],
                config_toml: None,
            });
            let server = Server::start(&env);
            let api = server.api(&env.channel_key);
            let mut ids = Vec::new();
            for w in 0..concurrency {
                let seed = hex::encode([w as u8 + 1; 20]);
                let v = api.enrol(json!({"user": format!("u{w}"), "type": "hotp", "seed_hex": seed})).await;
                ids.push(v["id"].as_str().unwrap().to_owned());
            }
            for accept in [true, false] {
                let (mut p, elapsed) = phase(&api, &ids, accept, seconds).await;
                p.latencies.sort();
                let rate = p.latencies.len() as f64 / elapsed;
                let path = if accept { "accept" } else { "reject" };
                let (p50, p95, p99) = (percentile(&p.latencies, 0.5), percentile(&p.latencies, 0.95), percentile(&p.latencies, 0.99));
                println!("{mode:<8} {path:<7} {concurrency:>6} {rate:>10.0} {p50:>8.2} {p95:>8.2} {p99:>8.2} {:>7}", p.errors);
                println!("{}", json!({"mode": mode, "path": path, "connections": concurrency, "verifies_per_second": rate, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "errors": p.errors, "requests": p.latencies.len()}));
            }
        });
    }
}
