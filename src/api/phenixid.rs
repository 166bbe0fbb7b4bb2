//! PhenixID "get OTP based on called-in phone number", wire-compatible:
//! `PUT /api/authentication/getOTP` with headers `tenant` (the channel name) and
//! `Authorization` (`Basic name:key` or `Bearer key`), body `{"phonenumber": ...}`. The user
//! whose phone number matches gets a code bound to them, returned as `{"otp": ...}`; the user
//! then logs in with user id and code (`POST /v1/users/{user}/verify`). Anything not ok: 403.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::extract::{authenticate, run, services, OwnedCredential};
use crate::domain::SecretString;
use crate::service::{ChallengeRequest, Delivery, Error};

/// Registers the endpoint.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/authentication/getOTP").route(web::put().to(get_otp)));
}

#[derive(Debug, Deserialize)]
struct Body {
    phonenumber: String,
}

/// The credential of a request: Basic `name:key` (the name must be the tenant) or Bearer `key`.
fn credential(req: &HttpRequest, tenant: &str) -> Option<OwnedCredential> {
    let value = req.headers().get("Authorization")?.to_str().ok()?.trim();
    if let Some(key) = value.strip_prefix("Bearer ") {
        return Some(OwnedCredential::NamedKey(
            tenant.to_owned(),
            SecretString::new(key.trim().to_owned()),
        ));
    }
    let decoded = data_encoding::BASE64
        .decode(value.strip_prefix("Basic ")?.trim().as_bytes())
        .ok()?;
    let decoded = SecretString::new(String::from_utf8(decoded).ok()?);
    let (name, key) = decoded.expose().split_once(':')?;
    (name == tenant)
        .then(|| OwnedCredential::NamedKey(name.to_owned(), SecretString::new(key.to_owned())))
}

async fn get_otp(req: HttpRequest, body: web::Json<Body>) -> HttpResponse {
    let forbidden = || HttpResponse::Forbidden().finish();
    let Some(tenant) = req
        .headers()
        .get("tenant")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return forbidden();
    };
    let Ok(caller) = authenticate(&req, credential(&req, &tenant)).await else {
        return forbidden();
    };
    let Ok(svc) = services(&req) else {
        return forbidden();
    };
    let phone = body.into_inner().phonenumber;
    let issued = run(move || {
        let users = svc.users_by_phone(&caller, &phone)?;
        let [user] = users.as_slice() else {
            // No such user, or more than one: the caller cannot tell whose code it would be.
            return Err(Error::NotFound(crate::service::Missing::User));
        };
        let request = ChallengeRequest {
            user: Some(user.user.clone()),
            destination: Some(phone),
            delivery: Some(Delivery::Response),
            ..ChallengeRequest::default()
        };
        svc.create_challenge(&caller, request)
    })
    .await;
    match issued.map(|c| c.otp) {
        Ok(Some(otp)) => HttpResponse::Ok().json(serde_json::json!({"otp": otp.expose()})),
        Ok(None) => forbidden(),
        Err(e) => {
            if matches!(
                e,
                Error::HsmUnavailable(_) | Error::DatabaseUnavailable(_) | Error::Internal(_)
            ) {
                tracing::warn!(error = %e, "PhenixID getOTP failed");
                return super::error::ApiError::from(e).error_response_for_surface();
            }
            forbidden()
        }
    }
}
