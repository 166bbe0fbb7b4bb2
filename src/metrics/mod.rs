//! Prometheus metrics: one registry, typed label values, and the operators' listener.
//!
//! Every label value comes from an enum's `as_str()` or from a route *pattern*, never from
//! request data, so a code, key or user id can never reach a label (promise 9).

mod server;

pub use server::{readiness, MetricsServer};

use std::time::Duration;

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Latency buckets from 100 µs to 5 s: an HSM MAC is microseconds, a commit milliseconds.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The service's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Verifications by surface and result.
    pub verifications: IntCounterVec,
    /// HTTP requests by route pattern, method and status.
    pub http_duration: HistogramVec,
    /// HSM operations by kind and outcome.
    pub hsm_duration: HistogramVec,
    /// Database operations by kind and outcome.
    pub db_duration: HistogramVec,
    /// HSM sessions and database connections by pool and state.
    pub pool_connections: IntGaugeVec,
    /// Challenges created by delivery kind.
    pub challenges_created: IntCounterVec,
    /// Delivery attempts by gateway and outcome.
    pub deliveries: IntCounterVec,
    /// Messages waiting in the outbox.
    pub outbox_depth: IntGauge,
    /// Age of the oldest waiting message, in seconds.
    pub outbox_oldest_age: Gauge,
    /// Verification outcomes settled per database transaction (group commit).
    pub commit_batch_size: Histogram,
    /// Uses of a seed: its session object found in the hot-seed cache (hit) or made anew,
    /// unwrapped or copied from its seed object (miss).
    pub hot_seeds: IntCounterVec,
    /// HSM session pool resets, by reason (`unavailable`, `recycle`).
    pub hsm_resets: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let verifications = IntCounterVec::new(
            Opts::new(
                "hsm_otp_verifications_total",
                "Verifications answered, by result.",
            ),
            &["target", "result"],
        )?;
        let http_duration = histogram(
            "hsm_otp_http_request_duration_seconds",
            "API request latency by route pattern, method and status.",
            &["route", "method", "status"],
        )?;
        let hsm_duration = histogram(
            "hsm_otp_hsm_operation_duration_seconds",
            "PKCS#11 operation latency by operation and outcome.",
            &["operation", "outcome"],
        )?;
        let db_duration = histogram(
            "hsm_otp_db_operation_duration_seconds",
            "Database operation latency by operation and outcome.",
            &["operation", "outcome"],
        )?;
        let pool_connections = IntGaugeVec::new(
            Opts::new(
                "hsm_otp_pool_connections",
                "HSM sessions and database connections, by pool and state (idle or busy).",
            ),
            &["pool", "state"],
        )?;
        let challenges_created = IntCounterVec::new(
            Opts::new(
                "hsm_otp_challenges_created_total",
                "Challenges created, by delivery kind.",
            ),
            &["delivery"],
        )?;
        let deliveries = IntCounterVec::new(
            Opts::new(
                "hsm_otp_deliveries_total",
                "Delivery attempts, by gateway and outcome (sent, retry, failed).",
            ),
            &["gateway", "outcome"],
        )?;
        let outbox_depth = IntGauge::new("hsm_otp_outbox_depth", "Messages waiting for delivery.")?;
        let outbox_oldest_age = Gauge::new(
            "hsm_otp_outbox_oldest_age_seconds",
            "Age of the oldest message waiting for delivery.",
        )?;
        let commit_batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "hsm_otp_commit_batch_size",
                "Verification outcomes and audit rows settled together in one transaction.",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )?;
        let hot_seeds = IntCounterVec::new(
            Opts::new(
                "hsm_otp_hot_seeds_total",
                "Uses of a seed: its session object found in the hot-seed cache (hit) or made anew, unwrapped or copied from its seed object (miss).",
            ),
            &["outcome"],
        )?;
        let hsm_resets = IntCounterVec::new(
            Opts::new(
                "hsm_otp_hsm_resets_total",
                "HSM session pool resets: every session closed and the module finalised, after the device was lost (unavailable) or after hsm_recycle_after session objects were made (recycle).",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(hsm_resets.clone()))?;
        registry.register(Box::new(hot_seeds.clone()))?;
        registry.register(Box::new(commit_batch_size.clone()))?;
        registry.register(Box::new(challenges_created.clone()))?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(outbox_depth.clone()))?;
        registry.register(Box::new(outbox_oldest_age.clone()))?;
        registry.register(Box::new(verifications.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(hsm_duration.clone()))?;
        registry.register(Box::new(db_duration.clone()))?;
        registry.register(Box::new(pool_connections.clone()))?;
        Ok(Self {
            registry,
            verifications,
            http_duration,
            hsm_duration,
            db_duration,
            pool_connections,
            challenges_created,
            deliveries,
            outbox_depth,
            outbox_oldest_age,
            commit_batch_size,
            hot_seeds,
            hsm_resets,
        })
    }

    /// Records one HSM operation.
    pub fn observe_hsm(&self, operation: &'static str, ok: bool, elapsed: Duration) {
        self.hsm_duration
            .with_label_values(&[operation, outcome(ok)])
            .observe(elapsed.as_secs_f64());
    }

    /// Records one database operation.
    pub fn observe_db(&self, operation: &'static str, ok: bool, elapsed: Duration) {
        self.db_duration
            .with_label_values(&[operation, outcome(ok)])
            .observe(elapsed.as_secs_f64());
    }

    /// Sets the idle and busy gauges of one pool.
    pub fn set_pool(&self, pool: &'static str, idle: usize, busy: usize) {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.pool_connections
            .with_label_values(&[pool, "idle"])
            .set(as_i64(idle));
        self.pool_connections
            .with_label_values(&[pool, "busy"])
            .set(as_i64(busy));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> Result<HistogramVec, prometheus::Error> {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
}

fn outcome(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "error"
    }
}
