//! MOSIP kernel auth manager and OTP manager, wire-compatible.
//!
//! - `POST /v1/authmanager/authenticate/clientidsecretkey`: client id = channel name, secret
//!   key = channel key; answers with a session token in the `Authorization` response header
//!   (and cookie) that the channel's later MOSIP calls present.
//! - `POST /v1/authmanager/authenticate/sendotp`: looks the user up in the directory and sends
//!   a code to each requested channel (`email`, `phone`).
//! - `POST /v1/authmanager/authenticate/useridOTP`: verifies it; a user token on success.
//! - `POST /v1/otpmanager/otp/generate` and `GET /v1/otpmanager/otp/validate`: codes bound to a
//!   key, returned to channels allowed to receive codes; frozen after 3 wrong codes (7200 s).
//!
//! Request fields are accepted in the document's lower case and MOSIP's camelCase.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::extract::{authenticate, run, services, settled, OwnedCredential};
use crate::domain::SecretString;
use crate::service::{
    Caller, ChallengeRequest, Delivery, Error, KeyedCode, Missing, Services, Verdict,
};

/// Lifetime of the session tokens this surface issues.
const SESSION_SECONDS: u32 = 3600;

/// Registers the five endpoints (before the native `/v1` scope, which would shadow them).
pub fn configure(cfg: &mut web::ServiceConfig) {
    let auth = "/v1/authmanager/authenticate";
    cfg.service(
        web::resource(format!("{auth}/clientidsecretkey"))
            .route(web::post().to(client_id_secret_key)),
    )
    .service(web::resource(format!("{auth}/sendotp")).route(web::post().to(send_otp)))
    .service(web::resource(format!("{auth}/useridOTP")).route(web::post().to(user_id_otp)))
    .service(web::resource("/v1/otpmanager/otp/generate").route(web::post().to(generate)))
    .service(web::resource("/v1/otpmanager/otp/validate").route(web::get().to(validate)));
}

/// The request envelope: `{"id", "version", "requesttime", "request": {...}}`.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    request: Option<T>,
}

#[derive(Debug, Deserialize)]
struct ClientIdSecretKey {
    #[serde(alias = "clientId")]
    clientid: Option<String>,
    #[serde(alias = "secretKey")]
    secretkey: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
struct SendOtp {
    #[serde(alias = "userId")]
    userid: Option<String>,
    #[serde(alias = "otpChannel", default)]
    otpchannel: Vec<String>,
    #[serde(alias = "appId")]
    appid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct UserIdOtp {
    #[serde(alias = "userId")]
    userid: Option<String>,
    otp: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
struct Generate {
    key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Validate {
    key: Option<String>,
    otp: Option<SecretString>,
}

/// The auth manager's envelopes carry `ver`; the OTP manager's `version` and `errors: null`.
#[derive(Clone, Copy)]
enum Dialect {
    AuthManager(&'static str),
    OtpManager(&'static str),
}

#[derive(Serialize)]
struct MosipError {
    #[serde(rename = "errorCode")]
    error_code: &'static str,
    message: &'static str,
}

fn responsetime(svc: Option<&Services>) -> String {
    svc.map(Services::now)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn success(dialect: Dialect, svc: &Services, response: Value) -> HttpResponse {
    let body = match dialect {
        Dialect::AuthManager(id) => json!({
            "id": id, "ver": "1.0", "responsetime": responsetime(Some(svc)), "response": response
        }),
        Dialect::OtpManager(id) => json!({
            "id": id, "version": "1.0", "responsetime": responsetime(Some(svc)),
            "response": response, "errors": null
        }),
    };
    HttpResponse::Ok().json(body)
}

fn failure(
    dialect: Dialect,
    svc: Option<&Services>,
    status: StatusCode,
    code: &'static str,
    message: &'static str,
) -> HttpResponse {
    let errors = [MosipError {
        error_code: code,
        message,
    }];
    let body = match dialect {
        Dialect::AuthManager(id) => json!({
            "id": id, "ver": "1.0", "responsetime": responsetime(svc), "errors": errors
        }),
        Dialect::OtpManager(id) => json!({
            "id": id, "version": "1.0", "responsetime": responsetime(svc),
            "response": null, "errors": errors
        }),
    };
    HttpResponse::build(status).json(body)
}

/// An error of the service itself, or a refusal, in this surface's envelope.
fn service_failure(dialect: Dialect, svc: Option<&Services>, e: &Error) -> HttpResponse {
    let (status, code, message) = match e {
        Error::Unauthenticated | Error::ChannelDisabled => (
            StatusCode::UNAUTHORIZED,
            "KER-ATH-401",
            "Authentication Failed",
        ),
        Error::NotFound(Missing::User) => (
            StatusCode::OK,
            "AUTH_ERR_USER_NOT_FOUND",
            "The passed in user is not found",
        ),
        Error::RateLimited | Error::BudgetSpent => (
            StatusCode::TOO_MANY_REQUESTS,
            "AUTH_ERR_OTP_LIMIT",
            "Too many OTP requests; retry later",
        ),
        Error::OtpNotAllowed => (
            StatusCode::FORBIDDEN,
            "KER-OTG-FORBIDDEN",
            "This client may not receive OTPs",
        ),
        Error::InvalidOtp | Error::InvalidRequest(_) => {
            (StatusCode::OK, "KER-REQ-INVALID", "Invalid request input")
        }
        Error::HsmUnavailable(_) | Error::DatabaseUnavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "KER-SVC-UNAVAILABLE",
            "Service unavailable; nothing was accepted",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "KER-SVC-INTERNAL",
            "Internal error",
        ),
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "MOSIP request failed");
    }
    failure(dialect, svc, status, code, message)
}

/// The session token a MOSIP caller presents: `Authorization` header (bare or Bearer) or cookie.
fn session(req: &HttpRequest) -> Option<OwnedCredential> {
    let header = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_start_matches("Bearer ").trim().to_owned());
    let cookie = || {
        let cookies = req.headers().get("Cookie")?.to_str().ok()?;
        cookies
            .split(';')
            .find_map(|c| c.trim().strip_prefix("Authorization="))
            .map(str::to_owned)
    };
    let token = header.or_else(cookie)?;
    Some(OwnedCredential::Session(SecretString::new(token)))
}

/// Parses a body as a MOSIP envelope; a body that is not one yields `None`.
fn request<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice::<Envelope<T>>(body).ok()?.request
}

/// Answers with the token in the `Authorization` header and cookie.
fn with_token(mut answer: HttpResponse, token: &str) -> HttpResponse {
    use actix_web::http::header::{HeaderValue, AUTHORIZATION, SET_COOKIE};
    if let Ok(v) = HeaderValue::from_str(token) {
        answer.headers_mut().insert(AUTHORIZATION, v);
    }
    let cookie = format!("Authorization={token}; Path=/; Secure; HttpOnly; SameSite=Strict");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        answer.headers_mut().insert(SET_COOKIE, v);
    }
    answer
}

async fn authenticated(
    req: &HttpRequest,
    dialect: Dialect,
) -> Result<(Caller, web::Data<Services>), HttpResponse> {
    let svc = services(req).map_err(|e| service_failure(dialect, None, &e))?;
    let caller = authenticate(req, session(req))
        .await
        .map_err(|e| service_failure(dialect, Some(&svc), &e))?;
    Ok((caller, svc))
}

async fn client_id_secret_key(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let dialect = Dialect::AuthManager("mosip.authentication.clientidsecretkey");
    let svc = match services(&req) {
        Ok(s) => s,
        Err(e) => return service_failure(dialect, None, &e),
    };
    let credential = request::<ClientIdSecretKey>(&body)
        .and_then(|r| Some(OwnedCredential::NamedKey(r.clientid?, r.secretkey?)));
    let caller = match authenticate(&req, credential).await {
        Ok(c) => c,
        Err(e) => return service_failure(dialect, Some(&svc), &e),
    };
    let issuer = svc.clone();
    let channel = caller.channel.clone();
    match run(move || issuer.issue_session(&channel, None, SESSION_SECONDS)).await {
        Ok(token) => with_token(
            success(
                dialect,
                &svc,
                json!({"status": "success", "message": "clientId and secretKey successfully validated"}),
            ),
            &token,
        ),
        Err(e) => service_failure(dialect, Some(&svc), &e),
    }
}

async fn send_otp(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let dialect = Dialect::AuthManager("mosip.authentication.sendotp");
    let (caller, svc) = match authenticated(&req, dialect).await {
        Ok(a) => a,
        Err(answer) => return answer,
    };
    let fail = |code, message| failure(dialect, Some(&svc), StatusCode::OK, code, message);
    let Some(r) = request::<SendOtp>(&body) else {
        return fail("KER-REQ-INVALID", "Invalid request input");
    };
    let channels: Option<Vec<Delivery>> = r
        .otpchannel
        .iter()
        .map(|c| match c.to_ascii_lowercase().as_str() {
            "email" => Some(Delivery::Email),
            "phone" => Some(Delivery::Sms),
            _ => None,
        })
        .collect();
    let Some(channels) = channels.filter(|c| !c.is_empty()) else {
        return fail("KER-AUTH-CHANNEL_INVALID", "The passed channel is invalid.");
    };
    if channels.len() > 1 && r.appid.as_deref() == Some("preregistration") {
        return fail(
            "AUTH_ERR_MULTIPLE_CHANNELS",
            "Multiple channels are not supported in your module.",
        );
    }
    let Some(user) = r.userid else {
        return fail("AUTH_ERR_USER_NOT_FOUND", "The passed in user is not found");
    };
    let sender = svc.clone();
    let sent = run(move || {
        let entry = sender.user(&caller, &user)?;
        let missing_path = channels.iter().any(|c| match c {
            Delivery::Email => entry.email.is_none(),
            _ => entry.phone.is_none(),
        });
        if missing_path {
            return Ok(false);
        }
        for delivery in channels {
            let request = ChallengeRequest {
                user: Some(user.clone()),
                delivery: Some(delivery),
                ..ChallengeRequest::default()
            };
            sender.create_challenge(&caller, request)?;
        }
        Ok(true)
    })
    .await;
    match sent {
        Ok(true) => success(
            dialect,
            &svc,
            json!({"status": "success", "message": "OTP had been sent successfully"}),
        ),
        Ok(false) => fail(
            "AUTH_ERR_CHANNELPATH_NOT_FOUND",
            "The passed in user is not found",
        ),
        Err(e) => service_failure(dialect, Some(&svc), &e),
    }
}

async fn user_id_otp(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let dialect = Dialect::AuthManager("mosip.authentication.useridOTP");
    let (caller, svc) = match authenticated(&req, dialect).await {
        Ok(a) => a,
        Err(answer) => return answer,
    };
    let Some(UserIdOtp {
        userid: Some(user),
        otp: Some(otp),
    }) = request::<UserIdOtp>(&body)
    else {
        return failure(
            dialect,
            Some(&svc),
            StatusCode::OK,
            "KER-REQ-INVALID",
            "Invalid request input",
        );
    };
    let verifier = svc.clone();
    let outcome = settled(async move {
        let verdict = verifier.verify_user(&caller, &user, otp.expose()).await?;
        if verdict != Verdict::Accept {
            return Ok(Err(verdict));
        }
        verifier
            .issue_session(&caller.channel, Some(&user), SESSION_SECONDS)
            .map(Ok)
    })
    .await;
    let fail = |code, message| failure(dialect, Some(&svc), StatusCode::OK, code, message);
    match outcome {
        Ok(Ok(token)) => with_token(
            success(
                dialect,
                &svc,
                json!({"status": "success", "message": "Otp validation successful"}),
            ),
            &token,
        ),
        Ok(Err(Verdict::Expired)) => fail("AUTH_ERR_OTP_EXPIRED", "OTP has expired"),
        Ok(Err(Verdict::Locked)) => fail(
            "AUTH_ERR_USER_BLOCKED",
            "The user is blocked after too many wrong OTPs",
        ),
        Ok(Err(_)) | Err(Error::InvalidOtp) => fail("AUTH_ERR_OTP_INVALID", "The OTP is invalid"),
        Err(e) => service_failure(dialect, Some(&svc), &e),
    }
}

async fn generate(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let dialect = Dialect::OtpManager("mosip.kernel.otp.generate");
    let (caller, svc) = match authenticated(&req, dialect).await {
        Ok(a) => a,
        Err(answer) => return answer,
    };
    let Some(Generate { key: Some(key) }) = request::<Generate>(&body) else {
        return failure(
            dialect,
            Some(&svc),
            StatusCode::OK,
            "KER-OTG-OTP-201",
            "Key can't be empty",
        );
    };
    let generator = svc.clone();
    match run(move || generator.generate_keyed(&caller, &key, None)).await {
        Ok(KeyedCode::Generated(otp)) => success(
            dialect,
            &svc,
            json!({"otp": otp.expose(), "status": "GENERATION_SUCCESSFUL"}),
        ),
        Ok(KeyedCode::Frozen) => success(
            dialect,
            &svc,
            json!({"otp": "null", "status": "USER_BLOCKED"}),
        ),
        Err(e) => service_failure(dialect, Some(&svc), &e),
    }
}

async fn validate(req: HttpRequest) -> HttpResponse {
    let dialect = Dialect::OtpManager("mosip.kernel.otp.validate");
    let (caller, svc) = match authenticated(&req, dialect).await {
        Ok(a) => a,
        Err(answer) => return answer,
    };
    let query = web::Query::<Validate>::from_query(req.query_string())
        .ok()
        .map(web::Query::into_inner);
    let Some(Validate {
        key: Some(key),
        otp: Some(otp),
    }) = query
    else {
        return failure(
            dialect,
            Some(&svc),
            StatusCode::OK,
            "KER-OTV-OTP-201",
            "Key and OTP are required",
        );
    };
    let validator = svc.clone();
    let freezing = svc.freezing();
    let verdict = run(move || validator.verify_keyed(&caller, &key, otp.expose(), freezing)).await;
    let (status, message) = match verdict {
        Ok(Verdict::Accept) => ("success", "VALIDATION_SUCCESSFUL"),
        Ok(Verdict::Expired) => ("failure", "OTP_EXPIRED"),
        Ok(Verdict::Locked) => ("failure", "USER_BLOCKED"),
        Ok(_) | Err(Error::InvalidOtp | Error::NotFound(_)) => {
            ("failure", "VALIDATION_UNSUCCESSFUL")
        }
        Err(e) => return service_failure(dialect, Some(&svc), &e),
    };
    success(dialect, &svc, json!({"status": status, "message": message}))
}
