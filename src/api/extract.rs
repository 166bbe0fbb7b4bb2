//! Extractors: the authenticated caller, and running a use case off the reactor.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use tracing::Instrument;
use uuid::Uuid;

use super::error::ApiError;
use crate::domain::SecretString;
use crate::service::{Caller, Candidates, Channel, Credential, Error, Services, Token};
use crate::tls::PeerCertificate;

/// The header carrying the channel key on the native API.
pub const CHANNEL_KEY_HEADER: &str = "X-Channel-Key";

/// The id of the current request (set by the request middleware).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// A credential taken from a request, owned so it can move to the blocking pool.
#[derive(Debug)]
pub enum OwnedCredential {
    /// A channel key.
    Key(SecretString),
    /// A channel name and key.
    NamedKey(String, SecretString),
    /// An account number and key.
    AccountKey(String, SecretString),
    /// A session token.
    Session(SecretString),
}

impl OwnedCredential {
    fn borrowed(&self) -> Credential<'_> {
        match self {
            Self::Key(k) => Credential::Key(k.expose()),
            Self::NamedKey(name, key) => Credential::NamedKey {
                name,
                key: key.expose(),
            },
            Self::AccountKey(account, key) => Credential::AccountKey {
                account,
                key: key.expose(),
            },
            Self::Session(t) => Credential::Session(t.expose()),
        }
    }
}

/// Runs a blocking use case on the blocking pool, inside the request's tracing span.
pub async fn run<R, F>(f: F) -> Result<R, Error>
where
    F: FnOnce() -> Result<R, Error> + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    match web::block(move || span.in_scope(f)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Internal("blocking task failed".into())),
    }
}

/// [`run`], with the error as the native API's answer.
pub async fn blocking<R, F>(f: F) -> Result<R, ApiError>
where
    F: FnOnce() -> Result<R, Error> + Send + 'static,
    R: Send + 'static,
{
    run(f).await.map_err(ApiError::from)
}

/// The services of the application.
pub fn services(req: &HttpRequest) -> Result<web::Data<Services>, Error> {
    req.app_data::<web::Data<Services>>()
        .cloned()
        .ok_or_else(|| Error::Internal("services missing".into()))
}

/// Authenticates the caller with `credential`, the connection's client certificate and the
/// peer address (promise 6). Surfaces with their own envelopes map the error themselves.
pub async fn authenticate(
    req: &HttpRequest,
    credential: Option<OwnedCredential>,
) -> Result<Caller, Error> {
    let services = services(req)?;
    Unverified::new(req, credential)
        .authenticate(&services)
        .await
}

/// Runs a verification as a task of its own on this worker: once its code is checked, it is
/// settled, audited and counted even if the client goes away before the answer.
pub async fn settled<R: 'static>(
    verification: impl Future<Output = Result<R, Error>> + 'static,
) -> Result<R, Error> {
    actix_web::rt::spawn(verification.instrument(tracing::Span::current()))
        .await
        .unwrap_or_else(|_| Err(Error::Internal("verification task failed".into())))
}

/// A caller whose credential has been read from the request but not yet checked, for a
/// handler that checks it before it looks at the rest of the request (the verification
/// endpoints).
#[derive(Debug)]
pub struct Unverified {
    credential: Option<OwnedCredential>,
    fingerprint: Option<String>,
    peer: Option<std::net::IpAddr>,
    request_id: String,
}

impl Unverified {
    fn new(req: &HttpRequest, credential: Option<OwnedCredential>) -> Self {
        Self {
            credential,
            fingerprint: req.conn_data::<PeerCertificate>().map(|c| c.sha256.clone()),
            peer: req.peer_addr().map(|a| a.ip()),
            request_id: req
                .extensions()
                .get::<RequestId>()
                .map_or_else(String::new, |r| r.0.clone()),
        }
    }

    /// Authenticates the caller: a credential with a channel key from this task, its channel
    /// read grouped and awaited without a blocking thread; a session token (or none) on the
    /// blocking pool.
    pub async fn authenticate(self, services: &web::Data<Services>) -> Result<Caller, Error> {
        let keyed = self
            .credential
            .as_ref()
            .map(OwnedCredential::borrowed)
            .filter(|c| c.key().is_some());
        if let Some(credential) = keyed {
            let (fingerprint, peer) = (self.fingerprint.as_deref(), self.peer);
            let channel = services
                .authenticate_keyed(credential, fingerprint, peer)
                .await?;
            return Ok(self.caller(channel));
        }
        let services = services.clone();
        run(move || self.check(&services)).await
    }

    /// For a request that names a token (its `Uuid` in the parts): authenticates the caller
    /// by its channel key and reads the token with the caller's channel, in one grouped
    /// statement awaited on this task (no blocking thread: the verification endpoint). A
    /// refused extraction or a missing token is answered only to an authenticated caller: a
    /// caller with a wrong key hears 401 whatever its request looks like, and learns nothing
    /// about it.
    pub async fn naming_token<P>(
        self,
        services: &Services,
        parts: Result<(Uuid, P), actix_web::Error>,
    ) -> actix_web::Result<(Caller, Token, P)> {
        let key = self.channel_key()?;
        // With no id to read (the path was refused), the caller is still checked first.
        let id = parts.as_ref().map_or(Uuid::nil(), |(id, _)| *id);
        let (channel, token) = services
            .authenticate_key_naming(key.expose(), self.fingerprint.as_deref(), self.peer, id)
            .await
            .map_err(ApiError::from)?;
        let (_, parts) = parts?;
        let token = token.map_err(ApiError::from)?;
        Ok((self.caller(channel), token, parts))
    }

    /// For a request that names a user (the first of its parts): authenticates the caller by
    /// its channel key and reads the user's tokens and open challenges in its channel, in the
    /// same grouped read awaited on this task, as [`Self::naming_token`] does for a token.
    pub async fn naming_user<P>(
        self,
        services: &Services,
        parts: Result<(String, P), actix_web::Error>,
    ) -> actix_web::Result<(Caller, Candidates, String, P)> {
        let key = self.channel_key()?;
        // With no user to read (the path was refused), the caller is still checked first.
        let user = parts.as_ref().ok().map(|(user, _)| user.as_str());
        let (fingerprint, peer) = (self.fingerprint.as_deref(), self.peer);
        let (channel, candidates) = services
            .authenticate_key_naming_user(key.expose(), fingerprint, peer, user)
            .await
            .map_err(ApiError::from)?;
        let (user, parts) = parts?;
        Ok((self.caller(channel), candidates, user, parts))
    }

    /// The channel key of a native API request, its only credential.
    fn channel_key(&self) -> Result<&SecretString, ApiError> {
        match &self.credential {
            Some(OwnedCredential::Key(key)) => Ok(key),
            _ => {
                tracing::info!(reason = "no channel key", "caller refused");
                Err(ApiError::from(Error::Unauthenticated))
            }
        }
    }

    /// Checks the credential, the client certificate and the source address (promise 6), on
    /// a blocking thread.
    fn check(self, services: &Services) -> Result<Caller, Error> {
        let credential = self.credential.as_ref().map(OwnedCredential::borrowed);
        let channel = services.authenticate(credential, self.fingerprint.as_deref(), self.peer)?;
        Ok(self.caller(channel))
    }

    fn caller(self, channel: Channel) -> Caller {
        Caller {
            channel,
            request_id: self.request_id,
        }
    }
}

impl FromRequest for Unverified {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    /// The native API's `X-Channel-Key`; a request without one is refused at once, before its
    /// body is read, as by the [`Caller`] extractor.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(match native_key(req) {
            Some(key) => Ok(Self::new(req, Some(key))),
            None => {
                tracing::info!(reason = "no credential", "caller refused");
                Err(ApiError::from(Error::Unauthenticated))
            }
        })
    }
}

fn native_key(req: &HttpRequest) -> Option<OwnedCredential> {
    req.headers()
        .get(CHANNEL_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|k| OwnedCredential::Key(SecretString::new(k.trim().to_owned())))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    /// The native API: the channel key in `X-Channel-Key`.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        let span = tracing::Span::current();
        Box::pin(
            async move {
                authenticate(&req, native_key(&req))
                    .await
                    .map_err(ApiError::from)
            }
            .instrument(span),
        )
    }
}
