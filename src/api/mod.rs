//! The HTTP API (actix-web): thin handlers that call the services and translate.
//!
//! Body limits, JSON and path errors all answer in the same `{"error": {...}}` shape with a
//! stable code, never a 5xx (promise 10).

pub mod error;
pub mod extract;
pub mod mosip;
pub mod mpass;
pub mod phenixid;
pub mod unityvox;
pub mod v1;

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use tracing::Instrument;

use crate::metrics::Metrics;
use error::{ApiError, ErrorCode};
use extract::RequestId;

/// Registers every API surface, the extractor configuration and the fallbacks.
pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_body_bytes)
            .error_handler(json_error),
    )
    .app_data(web::PayloadConfig::default().limit(max_body_bytes))
    .app_data(web::PathConfig::default().error_handler(path_error))
    .configure(mosip::configure)
    .configure(v1::configure)
    .configure(mpass::configure)
    .configure(phenixid::configure)
    .configure(unityvox::configure)
    .default_service(web::to(not_found));
}

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let code = match &err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ErrorCode::PayloadTooLarge
        }
        JsonPayloadError::ContentType => ErrorCode::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) if e.is_data() => ErrorCode::InvalidRequest,
        _ => ErrorCode::InvalidJson,
    };
    ApiError::new(code).into()
}

fn path_error(_err: PathError, req: &HttpRequest) -> actix_web::Error {
    // A path segment that cannot be an id names nothing that exists.
    let code = if req.path().starts_with("/v1/tokens/") {
        ErrorCode::TokenNotFound
    } else if req.path().starts_with("/v1/challenges/") {
        ErrorCode::ChallengeNotFound
    } else {
        ErrorCode::NotFound
    };
    ApiError::new(code).into()
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::NotFound))
}

/// The answer for a known path with a method it does not support.
pub(crate) async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::MethodNotAllowed))
}

/// The future the observing middleware returns.
pub type Observed =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<ServiceResponse, actix_web::Error>>>>;

/// Middleware: request id, tracing span, access log and the HTTP latency histogram.
///
/// The route label is the matched *pattern* (`/v1/tokens/{id}`), never the path.
pub fn observe<S>(metrics: Arc<Metrics>) -> impl Fn(ServiceRequest, &S) -> Observed + Clone
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    S::Future: 'static,
{
    move |req: ServiceRequest, srv: &S| {
        let started = Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        req.extensions_mut().insert(RequestId(request_id.clone()));
        let method = req.method().to_string();
        let span = tracing::info_span!("request", request_id = %request_id, method = %method);
        let fut = srv.call(req);
        let metrics = metrics.clone();
        Box::pin(
            async move {
                let mut res = fut.await?;
                let route = res
                    .request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_owned());
                let status = res.status();
                let elapsed = started.elapsed();
                metrics
                    .http_duration
                    .with_label_values(&[&route, &method, status.as_str()])
                    .observe(elapsed.as_secs_f64());
                if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&request_id) {
                    res.headers_mut().insert(
                        actix_web::http::header::HeaderName::from_static("x-request-id"),
                        v,
                    );
                }
                tracing::info!(
                    route = %route,
                    status = status.as_u16(),
                    duration_ms = elapsed.as_secs_f64() * 1000.0,
                    "request"
                );
                Ok(res)
            }
            .instrument(span),
        )
    }
}
