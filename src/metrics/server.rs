//! The operators' listener: `/metrics`, `/healthz` and `/readyz`.

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use crate::service::{Error, Services};

/// The metrics listener, bound.
pub struct MetricsServer {
    /// The running server.
    pub server: Server,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
}

impl MetricsServer {
    /// Binds `listener` and serves the three endpoints.
    pub fn start(listener: std::net::TcpListener, services: Services) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let data = web::Data::new(services);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/metrics", web::get().to(metrics))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
        })
        .workers(1)
        .listen(listener)?
        .run();
        Ok(Self { server, addr })
    }
}

async fn metrics(services: web::Data<Services>) -> HttpResponse {
    services.update_pool_gauges();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(services.metrics().render())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}

async fn readyz(services: web::Data<Services>) -> HttpResponse {
    let checked = web::block(move || readiness(&services)).await;
    match checked {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Ok(Err(component)) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not_ready", "unavailable": component})),
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({"status": "not_ready"})),
    }
}

/// Checks out an HSM session and a database connection for real; names what failed.
pub fn readiness(services: &Services) -> Result<(), &'static str> {
    match services.ready() {
        Ok(()) => Ok(()),
        Err(Error::HsmUnavailable(_)) => Err("hsm"),
        Err(Error::DatabaseUnavailable(_)) => Err("database"),
        Err(_) => Err("internal"),
    }
}
