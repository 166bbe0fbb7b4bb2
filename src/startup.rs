//! Building the application: what `hsm-otp serve` runs, and what the tests start.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};

use crate::clock::SystemClock;
use crate::config::{Config, ConfigError};
use crate::hsm::{Hsm, HsmError};
use crate::metrics::{Metrics, MetricsServer};
use crate::service::Services;
use crate::store::Store;
use crate::tls::TlsError;

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS files.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The HSM refused the configuration.
    #[error(transparent)]
    Hsm(#[from] HsmError),
    /// The service keys could not be found or created.
    #[error("HSM keys: {0}")]
    Keys(#[from] crate::service::Error),
    /// A listener could not be bound.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    /// Metrics registry.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The assembled services (without listeners): what the CLI uses.
pub fn services(config: &Config) -> Result<Services, StartupError> {
    let metrics = Arc::new(Metrics::new()?);
    let hsm = Arc::new(Hsm::new(config.hsm.clone(), metrics.clone()));
    let mut store = Store::new(
        config.database_url.expose(),
        config.db_pool_size,
        metrics.clone(),
    );
    if !config.group_commit {
        store = store.without_group_commit();
    }
    Ok(Services::new(
        hsm,
        store,
        Arc::new(SystemClock),
        metrics,
        config.policy,
        config.challenges,
    ))
}

/// The running service: the API listener and the metrics listener.
pub struct Application {
    api: Server,
    api_addr: std::net::SocketAddr,
    metrics: MetricsServer,
}

impl Application {
    /// Binds both listeners, checks the HSM keys, and prepares the servers.
    pub fn build(config: &Config) -> Result<Self, StartupError> {
        let (cert, key, ca) = config.tls_files()?;
        let tls = crate::tls::server_config(cert, key, ca)?;
        let services = services(config)?;
        services.ensure_keys()?;
        services.self_test()?;
        let started = std::time::Instant::now();
        let seed_objects = services.index_seed_objects()?;
        if seed_objects > 0 {
            tracing::info!(
                seed_objects,
                seconds = started.elapsed().as_secs_f64(),
                "seed objects indexed"
            );
        }
        if let Err(e) = services.ready() {
            tracing::warn!(error = %e, "not ready yet; serving and retrying per request");
        }
        let worker = crate::delivery::Worker::new(services.clone(), config.delivery.clone())
            .map_err(|e| StartupError::Config(ConfigError::from_message(e)))?;
        actix_web::rt::spawn(worker.run());
        let metrics =
            MetricsServer::start(TcpListener::bind(config.metrics_listen)?, services.clone())?;
        let listener = TcpListener::bind(config.listen)?;
        let api_addr = listener.local_addr()?;
        let max_body = config.max_body_bytes;
        let registry = Arc::new(services.metrics().clone());
        let data = web::Data::new(services);
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap_fn(crate::api::observe(registry.clone()))
                .configure(|cfg| crate::api::configure(cfg, max_body))
        })
        .on_connect(crate::tls::on_connect);
        if config.workers > 0 {
            server = server.workers(config.workers);
        }
        let api = server.listen_rustls_0_23(listener, tls)?.run();
        Ok(Self {
            api,
            api_addr,
            metrics,
        })
    }

    /// Where the API listens.
    pub fn api_addr(&self) -> std::net::SocketAddr {
        self.api_addr
    }

    /// Where the metrics listener listens.
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        self.metrics.addr
    }

    /// Serves until a stop signal.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (api, metrics) = futures_util::future::join(self.api, self.metrics.server).await;
        api.and(metrics)
    }
}
