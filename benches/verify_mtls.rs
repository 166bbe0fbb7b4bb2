//! Load generator: real verifications over mTLS with keep-alive against `hsm-otp serve`
//! (built in the bench profile) on a fresh SoftHSM token and database, for fleets of a chosen
//! size, beside pgbench running the same one-transaction verify on the same database.
//!
//! `cargo bench --bench verify_mtls` — settings through the environment:
//! - `BENCH_TOKENS`: fleet sizes, comma-separated (`1000`); enrolled through
//!   `hsm-otp token import` of a generated seed file, whose rate is reported;
//! - `BENCH_SECONDS` per phase (5), `BENCH_CONCURRENCY` connections (32);
//! - `BENCH_MODES`: seed storage modes (`wrapped,object`);
//! - `BENCH_PGBENCH`: `0` skips the pgbench comparison (it runs by default);
//! - `BENCH_GROUP_COMMIT`: `0` runs the server with `group_commit = false`, for comparison.
//! - `BENCH_RECYCLE_AFTER`, `BENCH_HOT_SEEDS`: the server's `hsm_recycle_after` and
//!   `hot_seeds` (its defaults unless set);
//! - `BENCH_TARGET`: `token` (default) verifies by token id (`POST /v1/tokens/{id}/verify`);
//!   `user` by user id (`POST /v1/users/{user}/verify`, the form the wire-compatible APIs
//!   use: the user's tokens and open challenges are read, then tried); `challenge` creates
//!   twice `BENCH_TOKENS` challenges whose codes are returned (reporting the rate of creation
//!   in the enrolment column) and verifies by challenge id (`POST /v1/challenges/{id}/verify`):
//!   each of the first half once (accept), the second half with wrong codes (reject); no
//!   pgbench beside it.
//!
//! Each connection drives its own share of the fleet, a token chosen at random per request:
//! the accept phase sends each token's next code (a counter advance and an audit row), the
//! reject phase a wrong code (a failure count and an audit row). Prints a table and one JSON
//! line per phase. Every loop is bounded in time and count, and talks to 127.0.0.1 only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(dead_code, unused_imports, unreachable_pub, clippy::disallowed_methods)]

#[path = "../tests/e2e/helpers/mod.rs"]
mod helpers;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use hsm_otp::domain::Algorithm;
use serde_json::{json, Value};

use helpers::{hotp, Env, EnvOptions, Server};

const MAX_REQUESTS_PER_WORKER: u64 = 1_000_000;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Server settings given to the bench (`BENCH_RECYCLE_AFTER`, `BENCH_HOT_SEEDS`), passed on.
fn passed_on() -> Vec<(String, String)> {
    [
        ("BENCH_RECYCLE_AFTER", "HSM_OTP_HSM_RECYCLE_AFTER"),
        ("BENCH_HOT_SEEDS", "HSM_OTP_HOT_SEEDS"),
    ]
    .into_iter()
    .filter_map(|(bench, server)| Some((server.to_owned(), std::env::var(bench).ok()?)))
    .collect()
}

/// The seed of token `n` of the fleet: known to the generator, never to the server's log.
fn seed(n: usize) -> [u8; 20] {
    let mut s = [0x5a; 20];
    s[..8].copy_from_slice(&(n as u64 + 1).to_be_bytes());
    s
}

#[derive(Default)]
struct Phase {
    latencies: Vec<Duration>,
    errors: u64,
    /// Wrong codes that happened to be right: a random 6-digit code falls in a token's
    /// window (12 codes) once in about 83,000 tries. Not an error of the server.
    chance_matches: u64,
    /// What the first errors were (status and answer: no code, no seed).
    first_errors: Vec<String>,
}

/// What a request names: the token by its id, its user (`u{n}`, one token each), or a
/// challenge by its id.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Token,
    User,
    Challenge,
}

impl Target {
    fn from_env() -> Self {
        match std::env::var("BENCH_TARGET").as_deref() {
            Err(_) | Ok("token") => Self::Token,
            Ok("user") => Self::User,
            Ok("challenge") => Self::Challenge,
            Ok(other) => panic!("BENCH_TARGET: `token`, `user` or `challenge`, not `{other}`"),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::User => "user",
            Self::Challenge => "challenge",
        }
    }
}

/// What the phases verify.
enum Work {
    /// The fleet's tokens, by index, by token id or by user id; the counters are the workers'.
    Fleet(Target, std::sync::Arc<Vec<String>>),
    /// Challenges (id, code): the first half for the accept phase (each used once), the
    /// second for the reject phase.
    Challenges(std::sync::Arc<Vec<(String, String)>>),
}

/// One phase: `concurrency` connections for `seconds` (or until a connection has used its
/// share of the challenges); connection `w` owns tokens or challenges `w, w + concurrency,
/// ...` and keeps their counters.
async fn phase(
    api: &helpers::app::Api,
    work: &std::sync::Arc<Work>,
    concurrency: usize,
    accept: bool,
    seconds: u64,
) -> (Phase, f64) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (api, work) = (api.clone(), work.clone());
        tasks.push(tokio::spawn(async move {
            let size = match &*work {
                Work::Fleet(_, ids) => ids.len(),
                Work::Challenges(all) => all.len() / 2,
            };
            let owned: Vec<usize> = (w..size).step_by(concurrency).collect();
            let mut counters = vec![0u64; owned.len()];
            let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (w as u64 + 1);
            let mut out = Phase::default();
            let mut sent = 0u64;
            let limit = match &*work {
                Work::Challenges(_) if accept => owned.len() as u64,
                _ => MAX_REQUESTS_PER_WORKER,
            };
            while Instant::now() < deadline && sent < limit && !owned.is_empty() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let k = (rng % owned.len() as u64) as usize;
                let (path, code) = match &*work {
                    Work::Fleet(target, ids) => {
                        let n = owned[k];
                        // Accept: the token's next code. Reject: a code far outside the window.
                        let c = if accept {
                            counters[k]
                        } else {
                            counters[k] + 100_000
                        };
                        let path = match target {
                            Target::User => format!("/v1/users/u{n}/verify"),
                            _ => format!("/v1/tokens/{}/verify", ids[n]),
                        };
                        (path, hotp(&seed(n), Algorithm::Sha1, c, 6))
                    }
                    Work::Challenges(all) => {
                        // Accept: each challenge of the first half once, in turn. Reject: a
                        // challenge of the second half at random, its code with the last digit
                        // changed.
                        let (id, code) = if accept {
                            &all[owned[sent as usize]]
                        } else {
                            &all[size + owned[k]]
                        };
                        let code = if accept {
                            code.clone()
                        } else {
                            let mut wrong = code.clone();
                            let last = wrong.pop().unwrap_or('0');
                            wrong.push(if last == '9' { '0' } else { '9' });
                            wrong
                        };
                        (format!("/v1/challenges/{id}/verify"), code)
                    }
                };
                let t = Instant::now();
                let (status, v) = api.post(&path, json!({"otp": code})).await;
                out.latencies.push(t.elapsed());
                let want = if accept { "accept" } else { "reject" };
                let result = v["result"].as_str().unwrap_or_default();
                match (status.is_success(), result) {
                    (true, r) if r == want => {}
                    (true, "accept" | "replay") if !accept => out.chance_matches += 1,
                    _ => {
                        out.errors += 1;
                        if out.first_errors.len() < 3 {
                            out.first_errors.push(format!("{status} {v}"));
                        }
                    }
                }
                if accept {
                    counters[k] += 1;
                }
                sent += 1;
            }
            out
        }));
    }
    let mut all = Phase::default();
    for t in tasks {
        let p = t.await.unwrap();
        all.latencies.extend(p.latencies);
        all.errors += p.errors;
        all.chance_matches += p.chance_matches;
        all.first_errors.extend(p.first_errors);
    }
    (all, started.elapsed().as_secs_f64())
}

/// Creates `2 * size` challenges whose codes are returned (`delivery: "response"`) over the
/// phases' connections; returns them and the rate of creation (challenges/s).
async fn create_challenges(
    api: &helpers::app::Api,
    size: usize,
    concurrency: usize,
) -> (Vec<(String, String)>, f64) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            for n in (w..2 * size).step_by(concurrency) {
                let body = json!({"destination": format!("+1415{:07}", n % 10_000_000),
                                  "delivery": "response"});
                let (status, v) = api.post("/v1/challenges", body).await;
                assert_eq!(status.as_u16(), 201, "creating a challenge: {v}");
                let id = v["id"].as_str().unwrap().to_owned();
                made.push((n, (id, v["otp"].as_str().unwrap().to_owned())));
            }
            made
        }));
    }
    let mut all = Vec::with_capacity(2 * size);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_by_key(|(n, _)| *n);
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    (all.into_iter().map(|(_, c)| c).collect(), rate)
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Enrols `size` tokens through `hsm-otp token import`; returns their ids by index and the
/// import's rate (tokens/s).
fn enrol_fleet(env: &Env, size: usize) -> (Vec<String>, f64) {
    let file = env.dir.path().join("fleet.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    writeln!(out, "user,seed_hex").unwrap();
    for n in 0..size {
        writeln!(out, "u{n},{}", hex::encode(seed(n))).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let started = Instant::now();
    let run = env.import_seed_file(&file);
    assert!(
        run.status.success(),
        "import: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rate = size as f64 / started.elapsed().as_secs_f64();
    std::fs::remove_file(&file).unwrap();
    let listed = Command::new("psql")
        .args([
            env.database_url.as_str(),
            "-Atqc",
            "SELECT user_id, id FROM tokens",
        ])
        .output()
        .unwrap();
    let mut ids = vec![String::new(); size];
    for line in String::from_utf8(listed.stdout).unwrap().lines() {
        let (user, id) = line.split_once('|').unwrap();
        ids[user[1..].parse::<usize>().unwrap()] = id.to_owned();
    }
    assert!(ids.iter().all(|i| !i.is_empty()), "every token listed");
    (ids, rate)
}

/// (outcomes, commits) settled by group commit so far, from the server's metrics.
async fn commits(server: &Server) -> (f64, f64) {
    let (_, text) = server.operator_get("/metrics").await;
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("hsm_otp_commit_batch_size_sum"),
        value("hsm_otp_commit_batch_size_count"),
    )
}

/// Resident memory of a process, from `/proc` (current and peak), in MB.
fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// pgbench on the same database with the transaction a verify commits: the conditional
/// `UPDATE` of a random token of the fleet and the `INSERT` of its audit row, at the same
/// concurrency and duration. Returns (transactions/s, p99 ms).
fn pgbench(env: &Env, size: usize, concurrency: usize, seconds: u64) -> (f64, f64) {
    env.sql(
        "CREATE TABLE IF NOT EXISTS bench_ids (n INTEGER PRIMARY KEY, id UUID NOT NULL); \
         TRUNCATE bench_ids; \
         INSERT INTO bench_ids SELECT substr(user_id, 2)::int + 1, id FROM tokens; \
         ANALYZE bench_ids; ANALYZE tokens",
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("verify.sql");
    std::fs::write(
        &script,
        "\\set n random(1, :tokens)\n\
         BEGIN;\n\
         UPDATE tokens SET next_factor = next_factor + 1, failure_count = 0 \
           WHERE id = (SELECT id FROM bench_ids WHERE n = :n) \
           AND next_factor <= next_factor + 1 AND locked_at IS NULL;\n\
         INSERT INTO audit_log (user_id, action, result, moving_factor, request_id) \
           VALUES ('pgbench', 'verify', 'accept', :n, 'pgbench');\n\
         END;\n",
    )
    .unwrap();
    let prefix = dir.path().join("tx");
    let out = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-j", "2", "-l"])
        .arg(format!("--log-prefix={}", prefix.display()))
        .args(["-c", &concurrency.to_string(), "-T", &seconds.to_string()])
        .args(["-D", &format!("tokens={size}")])
        .arg("-f")
        .arg(&script)
        .arg(&env.database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pgbench: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    // Per-transaction log lines: client_id transaction_no time_us script_no epoch epoch_us.
    let mut latencies: Vec<Duration> = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("tx")
        {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse().ok()) {
                    latencies.push(Duration::from_micros(us));
                }
            }
        }
    }
    latencies.sort();
    (tps, percentile_ms(&latencies, 0.99))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; this one only runs under `cargo bench`
    }
    let seconds = setting("BENCH_SECONDS", 5);
    let concurrency = setting("BENCH_CONCURRENCY", 32) as usize;
    let modes = std::env::var("BENCH_MODES").unwrap_or_else(|_| "wrapped,object".into());
    let sizes: Vec<usize> = std::env::var("BENCH_TOKENS")
        .unwrap_or_else(|_| "1000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("BENCH_TOKENS: sizes like 1000,100000")
        })
        .collect();
    let with_pgbench = setting("BENCH_PGBENCH", 1) == 1;
    let target = Target::from_env();
    let by = target.as_str();
    let group_commit = if setting("BENCH_GROUP_COMMIT", 1) == 1 {
        "true"
    } else {
        "false"
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("verifications by {by}");
    println!(
        "{:<8} {:>8} {:>9} {:<7} {:>10} {:>7} {:>7} {:>7} {:>6} {:>7} {:>7} {:>9} {:>9}",
        "mode",
        "tokens",
        "enrol/s",
        "path",
        "verifies/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "/commit",
        "RSS MB",
        "pgbench/s",
        "pgb p99"
    );
    for mode in modes.split(',') {
        let mode: &'static str = if mode == "object" {
            "object"
        } else {
            "wrapped"
        };
        for &size in &sizes {
            let env = Env::with(EnvOptions {
                seed_storage: mode,
                settings: vec![
                    ("HSM_OTP_MAX_FAILURES".into(), "1000".into()),
                    ("HSM_OTP_GROUP_COMMIT".into(), group_commit.into()),
                ]
                .into_iter()
                .chain(passed_on())
                .collect(),
                // Challenges: limits far above what a run creates, and failures counted
                // without locking them during the reject phase.
                config_toml: (target == Target::Challenge).then(|| {
                    "[challenges]\nper_destination_limit = 1000000\n\
                     per_channel_limit = 100000000\nmax_failures = 1000\n"
                        .to_owned()
                }),
            });
            let (work, enrol_rate, server, api) = if target == Target::Challenge {
                let key = env.create_channel("bench", &["--may-receive-otp"]);
                let server = Server::start(&env);
                let api = server.api(&key);
                let (made, rate) = rt.block_on(create_challenges(&api, size, concurrency));
                (
                    Work::Challenges(std::sync::Arc::new(made)),
                    rate,
                    server,
                    api,
                )
            } else {
                let (ids, rate) = enrol_fleet(&env, size);
                let server = Server::start(&env);
                let api = server.api(&env.channel_key);
                (
                    Work::Fleet(target, std::sync::Arc::new(ids)),
                    rate,
                    server,
                    api,
                )
            };
            let work = std::sync::Arc::new(work);
            let mut phases = Vec::new();
            for accept in [true, false] {
                let before = rt.block_on(commits(&server));
                let result = rt.block_on(phase(&api, &work, concurrency, accept, seconds));
                let after = rt.block_on(commits(&server));
                let per_commit = (after.0 - before.0) / (after.1 - before.1).max(1.0);
                phases.push((accept, result, rss_mb(server.pid()), per_commit));
            }
            // After the phases: pgbench moves counters the generator would not know about.
            // (Not beside challenges: its transaction updates a token.)
            let (pg_tps, pg_p99) = if with_pgbench && target != Target::Challenge {
                pgbench(&env, size, concurrency, seconds)
            } else {
                (0.0, 0.0)
            };
            for (accept, (mut p, elapsed), (rss, peak), per_commit) in phases {
                p.latencies.sort();
                let rate = p.latencies.len() as f64 / elapsed;
                let path = if accept { "accept" } else { "reject" };
                let (p50, p95, p99) = (
                    percentile_ms(&p.latencies, 0.5),
                    percentile_ms(&p.latencies, 0.95),
                    percentile_ms(&p.latencies, 0.99),
                );
                println!(
                    "{mode:<8} {size:>8} {enrol_rate:>9.0} {path:<7} {rate:>10.0} {p50:>7.2} \
                     {p95:>7.2} {p99:>7.2} {:>6} {per_commit:>7.1} {peak:>7.0} {pg_tps:>9.0} {pg_p99:>9.2}",
                    p.errors
                );
                for e in p.first_errors.iter().take(3) {
                    eprintln!("{mode} {size} {path}: error: {e}");
                }
                if p.chance_matches > 0 {
                    eprintln!(
                        "{mode} {size} {path}: {} wrong codes happened to be in their token's window",
                        p.chance_matches
                    );
                }
                println!(
                    "{}",
                    json!({"mode": mode, "target": by, "tokens": size, "group_commit": group_commit, "enrol_per_second": enrol_rate,
                           "path": path, "connections": concurrency,
                           "verifies_per_second": rate, "p50_ms": p50, "p95_ms": p95,
                           "p99_ms": p99, "errors": p.errors, "chance_matches": p.chance_matches, "requests": p.latencies.len(),
                           "server_rss_mb": rss, "server_peak_rss_mb": peak,
                           "verifications_per_commit": per_commit,
                           "pgbench_tps": pg_tps, "pgbench_p99_ms": pg_p99})
                );
            }
            drop(api);
            drop(server);
        }
    }
}
