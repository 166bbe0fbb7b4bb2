//! The native API under `/v1`: tokens and their verification.

mod challenges;
mod dto;

use actix_web::{web, HttpResponse};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{blocking, settled, Unverified};
use crate::domain::{Algorithm, Digits, SecretBytes, SecretString};
use crate::oath::Period;
use crate::service::{Caller, Enrolment, Error, SeedInput, Services};
use dto::{EnrolRequest, ResyncRequest, TokenResponse, VerifyRequest, VerifyResponse};

pub(super) type Svc = web::Data<Services>;

/// Registers the `/v1` routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources are tried in this order, each dynamic one a regex match: the verifications,
    // the hot paths, first.
    let scope = web::scope("/v1")
        .service(resource("/tokens/{id}/verify").route(web::post().to(verify_token)))
        .service(resource("/users/{user}/verify").route(web::post().to(verify_user)))
        .service(resource("/tokens").route(web::post().to(enrol_token)))
        .service(
            resource("/tokens/{id}")
                .route(web::get().to(show_token))
                .route(web::delete().to(delete_token)),
        )
        .service(resource("/tokens/{id}/resync").route(web::post().to(resync_token)))
        .service(resource("/tokens/{id}/unlock").route(web::post().to(unlock_token)));
    cfg.service(challenges::configure(scope));
}

async fn enrol_token(
    svc: Svc,
    caller: Caller,
    body: web::Json<EnrolRequest>,
) -> Result<HttpResponse, ApiError> {
    let enrolment = enrolment(body.into_inner())?;
    let enrolled = blocking(move || svc.enrol(&caller, enrolment)).await?;
    Ok(HttpResponse::Created().json(TokenResponse::new(enrolled.token, enrolled.otpauth_uri)))
}

async fn show_token(
    svc: Svc,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let token = blocking(move || svc.token(&caller, *id)).await?;
    Ok(HttpResponse::Ok().json(TokenResponse::new(token, None)))
}

async fn delete_token(
    svc: Svc,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    blocking(move || svc.delete_token(&caller, *id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A path or body as extracted, its error kept until the caller is authenticated.
type Part<T> = Result<T, actix_web::Error>;

async fn verify_token(
    svc: Svc,
    caller: Unverified,
    id: Part<web::Path<Uuid>>,
    body: Part<web::Json<VerifyRequest>>,
) -> actix_web::Result<HttpResponse> {
    let parts = id.and_then(|id| Ok((id.into_inner(), body?.into_inner())));
    let (caller, token, body) = caller.naming_token(&svc, parts).await?;
    let verification = async move { svc.verify_token(&caller, token, body.otp.expose()).await };
    let verdict = settled(verification).await.map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(VerifyResponse::from(verdict)))
}

async fn verify_user(
    svc: Svc,
    caller: Unverified,
    user: Part<web::Path<String>>,
    body: Part<web::Json<VerifyRequest>>,
) -> actix_web::Result<HttpResponse> {
    let parts = user.and_then(|user| Ok((user.into_inner(), body?.into_inner())));
    let (caller, found, user, body) = caller.naming_user(&svc, parts).await?;
    let verification = async move {
        svc.verify_user_candidates(&caller, &user, found, body.otp.expose())
            .await
    };
    let verdict = settled(verification).await.map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(VerifyResponse::from(verdict)))
}

async fn resync_token(
    svc: Svc,
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<ResyncRequest>,
) -> Result<HttpResponse, ApiError> {
    let verdict =
        blocking(move || svc.resync(&caller, *id, body.otp1.expose(), body.otp2.expose())).await?;
    Ok(HttpResponse::Ok().json(VerifyResponse::from(verdict)))
}

async fn unlock_token(
    svc: Svc,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let token = blocking(move || svc.unlock(&caller, *id)).await?;
    Ok(HttpResponse::Ok().json(TokenResponse::new(token, None)))
}

/// A resource whose unsupported methods answer 405 in the API's error shape.
pub(super) fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(super::method_not_allowed))
}

/// Validates an enrolment request into the service's terms.
fn enrolment(r: EnrolRequest) -> Result<Enrolment, Error> {
    use crate::domain::TokenKind::{Hotp, Totp};
    let digits = Digits::new(r.digits.unwrap_or(6)).ok_or(Error::InvalidRequest("digits"))?;
    let period = match (r.kind, r.period) {
        (Hotp, Some(_)) => return Err(Error::InvalidRequest("period")),
        (_, p) => Period::new(p.unwrap_or(30)).ok_or(Error::InvalidRequest("period"))?,
    };
    let counter = match (r.kind, r.counter) {
        (Totp, Some(_)) => return Err(Error::InvalidRequest("counter")),
        (_, c) => c.unwrap_or(0),
    };
    let seed = match (r.seed_hex, r.seed_base32) {
        (Some(_), Some(_)) => return Err(Error::InvalidRequest("seed_hex")),
        (Some(hex), None) => SeedInput::Import(decode_hex(&hex)?),
        (None, Some(b32)) => SeedInput::Import(decode_base32(&b32)?),
        (None, None) => SeedInput::Generate,
    };
    Ok(Enrolment {
        user: r.user,
        kind: r.kind,
        algorithm: r.algorithm.unwrap_or(Algorithm::Sha1),
        digits,
        period,
        counter,
        seed,
        issuer: r.issuer,
    })
}

fn decode_hex(s: &SecretString) -> Result<SecretBytes, Error> {
    hex::decode(s.expose().trim())
        .map(SecretBytes::new)
        .map_err(|_| Error::InvalidSeed)
}

/// Base32 as authenticator apps show it: any case, spaces allowed, padding optional.
fn decode_base32(s: &SecretString) -> Result<SecretBytes, Error> {
    let cleaned: zeroize::Zeroizing<String> = zeroize::Zeroizing::new(
        s.expose()
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '=')
            .collect::<String>()
            .to_uppercase(),
    );
    data_encoding::BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map(SecretBytes::new)
        .map_err(|_| Error::InvalidSeed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_seeds_are_accepted_as_apps_show_them() {
        let s = SecretString::new("gezd gnbv gy3t qojq gezd gnbv gy3t qojq".into());
        assert_eq!(decode_base32(&s).unwrap().expose(), b"12345678901234567890");
        let padded = SecretString::new("GEZDGNBVGY======".into());
        assert_eq!(
            decode_base32(&padded).unwrap().expose(),
            b"1234567890".get(..6).unwrap()
        );
        assert!(decode_base32(&SecretString::new("not base32!".into())).is_err());
        assert!(decode_hex(&SecretString::new("zz".into())).is_err());
    }
}
