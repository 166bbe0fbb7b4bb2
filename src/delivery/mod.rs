//! Delivery: the outbox worker and the gateways that carry codes to people.
//!
//! Every node runs a worker. It claims due messages (`FOR UPDATE SKIP LOCKED`, with a lease
//! so that a message claimed by a node that dies is taken over), opens each in the HSM, sends
//! it through the first gateway of its kind's route, and records the attempt: delivered
//! (text erased), retry later (connection errors, 5xx and 429, with exponential backoff and
//! fail-over to the next gateway), or failed for good (4xx from every gateway). Messages of
//! expired challenges are erased unsent. Accepted sends are never lost: they are rows in
//! PostgreSQL until one of those outcomes is recorded.

mod config;
mod gateway;

pub use config::{DeliveryConfig, GatewayConfig, Routes, SmtpSecurity};
pub use gateway::{Gateway, SendError};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::service::{PendingMessage, Services};
use crate::store::Attempt;

/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The outbox worker of one node.
pub struct Worker {
    services: Services,
    gateways: BTreeMap<String, Arc<Gateway>>,
    config: DeliveryConfig,
}

impl Worker {
    /// Builds every configured gateway.
    pub fn new(services: Services, config: DeliveryConfig) -> Result<Self, String> {
        let mut gateways = BTreeMap::new();
        for (name, gw) in &config.gateways {
            gateways.insert(name.clone(), Arc::new(Gateway::build(name, gw)?));
        }
        Ok(Self {
            services,
            gateways,
            config,
        })
    }

    /// Runs until the runtime stops.
    pub async fn run(self) {
        let ready = self.services.outbox_ready();
        let poll = Duration::from_millis(self.config.routes.poll_ms.unwrap_or(250));
        loop {
            let notified = ready.notified();
            let claimed = self.round().await;
            if claimed == 0 {
                let _ = tokio::time::timeout(poll, notified).await;
            }
        }
    }

    /// One round: expire, claim, send; returns how many messages were claimed.
    async fn round(&self) -> usize {
        let services = self.services.clone();
        let claimed = tokio::task::spawn_blocking(move || {
            if let Err(e) = services.expire_messages() {
                tracing::warn!(error = %e, "expiring messages failed");
            }
            let claimed = services.claim_messages();
            if let Err(e) = services.refresh_outbox_gauges() {
                tracing::debug!(error = %e, "outbox gauges not refreshed");
            }
            claimed
        })
        .await;
        let messages = match claimed {
            Ok(Ok(messages)) => messages,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "claiming messages failed");
                return 0;
            }
            Err(_) => return 0,
        };
        let count = messages.len();
        let sends = messages.into_iter().map(|m| self.deliver(m));
        futures_util::future::join_all(sends).await;
        count
    }

    /// Sends one message and records the outcome.
    async fn deliver(&self, message: PendingMessage) {
        let route = self.config.route(&message.row.kind);
        let attempts_before = u32::try_from(message.row.attempts).unwrap_or(0);
        let index = usize::try_from(message.row.gateway_index).unwrap_or(0) % route.len().max(1);
        let (attempt, gateway_name, outcome) =
            match route.get(index).and_then(|n| self.gateways.get(n)) {
                None => (
                    Attempt::Failed {
                        error: format!("no gateway configured for {}", message.row.kind),
                    },
                    "none".to_owned(),
                    "failed",
                ),
                Some(gateway) => {
                    let name = gateway.name().to_owned();
                    let result = gateway
                        .send(&message.row.destination, &message.subject, &message.text)
                        .await;
                    let attempt =
                        self.next_step(result, &name, index, route.len(), attempts_before);
                    let outcome = match &attempt {
                        Attempt::Sent { .. } => "sent",
                        Attempt::Retry { .. } => "retry",
                        Attempt::Failed { .. } => "failed",
                    };
                    (attempt, name, outcome)
                }
            };
        match &attempt {
            Attempt::Sent { .. } => {
                tracing::info!(outbox_id = message.row.id, gateway = %gateway_name, "message delivered")
            }
            Attempt::Retry { error, .. } => {
                tracing::warn!(outbox_id = message.row.id, %error, "delivery failed; will retry")
            }
            Attempt::Failed { error } => {
                tracing::error!(outbox_id = message.row.id, %error, "delivery failed for good")
            }
        }
        drop(message.text);
        let services = self.services.clone();
        let row = message.row;
        let recorded = tokio::task::spawn_blocking(move || {
            services.record_attempt(&row, &attempt).map(|()| services)
        })
        .await;
        match recorded {
            Ok(Ok(services)) => services.count_delivery(&gateway_name, outcome),
            Ok(Err(e)) => tracing::error!(error = %e, "could not record a delivery attempt"),
            Err(_) => {}
        }
    }

    /// What to do after an attempt through gateway `index` of a route of `len` gateways.
    fn next_step(
        &self,
        result: Result<(), SendError>,
        name: &str,
        index: usize,
        len: usize,
        attempts_before: u32,
    ) -> Attempt {
        let next = (index + 1) % len.max(1);
        match result {
            Ok(()) => Attempt::Sent {
                gateway: name.to_owned(),
            },
            Err(SendError::Transient(reason)) => {
                // Fail over at once while untried gateways remain in this round; back off
                // once the round wraps around.
                let delay = if next != 0 {
                    Duration::ZERO
                } else {
                    self.backoff(attempts_before / u32::try_from(len.max(1)).unwrap_or(1))
                };
                Attempt::Retry {
                    at: self.services.now() + chrono::Duration::from_std(delay).unwrap_or_default(),
                    gateway_index: i32::try_from(next).unwrap_or(0),
                    error: format!("{name}: {reason}"),
                }
            }
            Err(SendError::Permanent(reason)) if index + 1 < len => Attempt::Retry {
                at: self.services.now(),
                gateway_index: i32::try_from(index + 1).unwrap_or(0),
                error: format!("{name}: {reason}"),
            },
            Err(SendError::Permanent(reason)) => Attempt::Failed {
                error: format!("{name}: {reason}"),
            },
        }
    }

    fn backoff(&self, round: u32) -> Duration {
        let base = Duration::from_millis(self.config.routes.backoff_ms.unwrap_or(1000));
        base.saturating_mul(2u32.saturating_pow(round.min(16)))
            .min(MAX_BACKOFF)
    }
}
