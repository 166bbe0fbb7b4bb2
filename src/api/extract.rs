//! Extractors: the authenticated caller, and running a use case off the reactor.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use tracing::Instrument;

use super::error::{ApiError, ErrorCode};
use crate::service::{Caller, Error, Services};
use crate::tls::PeerCertificate;

/// The header carrying the channel key.
pub const CHANNEL_KEY_HEADER: &str = "X-Channel-Key";

/// The id of the current request (set by the request middleware).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Runs a blocking use case on the blocking pool, inside the request's tracing span.
pub async fn blocking<R, F>(f: F) -> Result<R, ApiError>
where
    F: FnOnce() -> Result<R, Error> + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    match web::block(move || span.in_scope(f)).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::new(ErrorCode::InternalError)),
    }
}

/// Authenticates the caller from the client certificate of the connection, the channel key
/// header and the peer address (promise 6).
pub async fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    let services = req
        .app_data::<web::Data<Services>>()
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::InternalError))?;
    let fingerprint = req.conn_data::<PeerCertificate>().map(|c| c.sha256.clone());
    let key = req
        .headers()
        .get(CHANNEL_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|k| crate::domain::SecretString::new(k.trim().to_owned()));
    let peer = req.peer_addr().map(|a| a.ip());
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map_or_else(String::new, |r| r.0.clone());
    let channel = blocking(move || {
        services.authenticate(
            key.as_ref().map(|k| k.expose()),
            fingerprint.as_deref(),
            peer,
        )
    })
    .await?;
    Ok(Caller {
        channel,
        request_id,
    })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        let span = tracing::Span::current();
        Box::pin(async move { caller(&req).await }.instrument(span))
    }
}
