//! `/v1/users` (the directory) and `/v1/challenges`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;

use super::super::error::ApiError;
use super::super::extract::{blocking, settled};
use super::dto::VerifyResponse;
use super::{resource, Svc};
use crate::domain::SecretString;
use crate::service::{Caller, ChallengeRequest, Delivery};

/// Registers the routes.
pub(super) fn configure(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .service(
            resource("/users/{user}")
                .route(web::put().to(put_user))
                .route(web::get().to(show_user))
                .route(web::delete().to(delete_user)),
        )
        .service(resource("/challenges").route(web::post().to(create_challenge)))
        .service(resource("/challenges/verify").route(web::post().to(verify_by_destination)))
        .service(resource("/challenges/{id}").route(web::get().to(show_challenge)))
        .service(resource("/challenges/{id}/verify").route(web::post().to(verify_challenge)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    phone: Option<String>,
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeBody {
    user: Option<String>,
    destination: Option<String>,
    delivery: Delivery,
    lang: Option<String>,
    app: Option<String>,
    ttl_seconds: Option<u32>,
    digits: Option<u8>,
    template: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OtpBody {
    otp: SecretString,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationOtpBody {
    destination: String,
    app: Option<String>,
    otp: SecretString,
}

async fn put_user(
    svc: Svc,
    caller: Caller,
    user: web::Path<String>,
    body: web::Json<UserBody>,
) -> Result<HttpResponse, ApiError> {
    let (row, created) = blocking(move || {
        svc.put_user(&caller, &user, body.phone.as_deref(), body.email.as_deref())
    })
    .await?;
    let mut answer = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(answer.json(row))
}

async fn show_user(
    svc: Svc,
    caller: Caller,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = blocking(move || svc.user(&caller, &user)).await?;
    Ok(HttpResponse::Ok().json(row))
}

async fn delete_user(
    svc: Svc,
    caller: Caller,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    blocking(move || svc.delete_user(&caller, &user)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn create_challenge(
    svc: Svc,
    caller: Caller,
    body: web::Json<ChallengeBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let request = ChallengeRequest {
        user: b.user,
        destination: b.destination,
        delivery: Some(b.delivery),
        lang: b.lang,
        app: b.app,
        ttl_seconds: b.ttl_seconds,
        digits: b.digits,
        template: b.template,
        key: None,
    };
    let created = blocking(move || svc.create_challenge(&caller, request)).await?;
    let mut answer = serde_json::to_value(&created.challenge).unwrap_or_default();
    if let (Some(otp), Some(map)) = (&created.otp, answer.as_object_mut()) {
        map.insert("otp".into(), otp.expose().into());
    }
    Ok(HttpResponse::Created().json(answer))
}

async fn show_challenge(
    svc: Svc,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let challenge = blocking(move || svc.challenge(&caller, *id)).await?;
    Ok(HttpResponse::Ok().json(challenge))
}

async fn verify_challenge(
    svc: Svc,
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<OtpBody>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let verification = async move { svc.verify_challenge(&caller, id, body.otp.expose()).await };
    let verdict = settled(verification).await?;
    Ok(HttpResponse::Ok().json(VerifyResponse::from(verdict)))
}

async fn verify_by_destination(
    svc: Svc,
    caller: Caller,
    body: web::Json<DestinationOtpBody>,
) -> Result<HttpResponse, ApiError> {
    let verification = async move {
        let body = body.into_inner();
        let (destination, app) = (body.destination.as_str(), body.app.as_deref());
        svc.verify_destination(&caller, destination, app, body.otp.expose())
            .await
    };
    let verdict = settled(verification).await?;
    Ok(HttpResponse::Ok().json(VerifyResponse::from(verdict)))
}
