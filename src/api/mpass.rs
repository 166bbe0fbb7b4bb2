//! mPass MNV (mobile number verification), wire-compatible: `GET /mpass-web/rest/mv/msg`
//! sends a code by SMS, `GET /mpass-web/rest/mv/verify` checks it. `apikey` is the channel key
//! (bound to the caller's certificate and IP address as the channel says). Every answer is
//! HTTP 200 with `{"description": ..., "status": ...}` and the document's status codes.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::extract::{authenticate, run, services, settled, OwnedCredential};
use crate::domain::SecretString;
use crate::service::{ChallengeRequest, Delivery, Error, Verdict};

/// Registers the two endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/mpass-web/rest/mv/msg").route(web::get().to(send_sms)))
        .service(web::resource("/mpass-web/rest/mv/verify").route(web::get().to(verify_otp)));
}

/// The document's status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 0, "Accept".
    Accept,
    /// 1, "Invalid Data".
    InvalidInput,
    /// 2, "Access Denied".
    InvalidClient,
    /// 3, "Reject".
    Reject,
    /// 4, "Expired".
    Expired,
    /// 100, "Internal Error Occurred".
    InternalError,
}

impl Status {
    fn code_and_description(self) -> (&'static str, &'static str) {
        match self {
            Self::Accept => ("0", "Accept"),
            Self::InvalidInput => ("1", "Invalid Data"),
            Self::InvalidClient => ("2", "Access Denied"),
            Self::Reject => ("3", "Reject"),
            Self::Expired => ("4", "Expired"),
            Self::InternalError => ("100", "Internal Error Occurred"),
        }
    }
}

#[derive(Serialize)]
struct Answer {
    description: &'static str,
    status: &'static str,
}

fn answer(status: Status) -> HttpResponse {
    let (status, description) = status.code_and_description();
    HttpResponse::Ok().json(Answer {
        description,
        status,
    })
}

/// How a service error reads on this surface.
fn status_of(e: &Error) -> Status {
    match e {
        Error::Unauthenticated
        | Error::ChannelDisabled
        | Error::RateLimited
        | Error::BudgetSpent => Status::InvalidClient,
        Error::InvalidOtp | Error::InvalidRequest(_) => Status::InvalidInput,
        Error::NotFound(_) => Status::Reject,
        _ => Status::InternalError,
    }
}

#[derive(Debug, Deserialize)]
struct MsgQuery {
    apikey: Option<SecretString>,
    dest: Option<String>,
    lang: Option<String>,
    app: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VerifyQuery {
    apikey: Option<SecretString>,
    dest: Option<String>,
    otp: Option<SecretString>,
    app: Option<String>,
}

async fn send_sms(req: HttpRequest) -> HttpResponse {
    let Ok(q) = web::Query::<MsgQuery>::from_query(req.query_string()) else {
        return answer(Status::InvalidInput);
    };
    let q = q.into_inner();
    let caller = match authenticate(&req, q.apikey.map(OwnedCredential::Key)).await {
        Ok(c) => c,
        Err(e) => return answer(status_of(&e)),
    };
    let (Some(dest), Ok(svc)) = (q.dest, services(&req)) else {
        return answer(Status::InvalidInput);
    };
    let lang = q.lang.unwrap_or_else(|| "en_US".into());
    if lang != "en_US" && lang != "ar_SA" {
        return answer(Status::InvalidInput);
    }
    let request = ChallengeRequest {
        destination: Some(dest),
        delivery: Some(Delivery::Sms),
        lang: Some(lang),
        app: q.app,
        ..ChallengeRequest::default()
    };
    match run(move || svc.create_challenge(&caller, request)).await {
        Ok(_) => answer(Status::Accept),
        Err(e) => answer(status_of(&e)),
    }
}

async fn verify_otp(req: HttpRequest) -> HttpResponse {
    let Ok(q) = web::Query::<VerifyQuery>::from_query(req.query_string()) else {
        return answer(Status::InvalidInput);
    };
    let q = q.into_inner();
    let caller = match authenticate(&req, q.apikey.map(OwnedCredential::Key)).await {
        Ok(c) => c,
        Err(e) => return answer(status_of(&e)),
    };
    let (Some(dest), Some(otp), Ok(svc)) = (q.dest, q.otp, services(&req)) else {
        return answer(Status::InvalidInput);
    };
    let app = q.app;
    let verification = async move {
        svc.verify_destination(&caller, &dest, app.as_deref(), otp.expose())
            .await
    };
    match settled(verification).await {
        Ok(Verdict::Accept) => answer(Status::Accept),
        Ok(Verdict::Expired) => answer(Status::Expired),
        Ok(_) => answer(Status::Reject),
        Err(e) => answer(status_of(&e)),
    }
}
