//! UnityVox OTP API, wire-compatible: `/api/get-api/v1/OTP-api` sends a 6-digit code valid
//! 10 minutes by SMS with a channel template (`ref_id`); `/api/get-api/v1/OTP-api/verify`
//! checks it against its `sessionid` (the challenge id). GET or POST, parameters in the query
//! string or a form body. Every answer is HTTP 200 with the document's `code`s 020 to 027.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::extract::{authenticate, run, services, settled, OwnedCredential};
use crate::domain::SecretString;
use crate::service::{ChallengeRequest, Delivery, Error, Missing, Verdict};

const SEND: &str = "/api/get-api/v1/OTP-api";
const VERIFY: &str = "/api/get-api/v1/OTP-api/verify";

/// Registers both endpoints for GET and POST.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(SEND)
            .route(web::get().to(send))
            .route(web::post().to(send)),
    )
    .service(
        web::resource(VERIFY)
            .route(web::get().to(verify))
            .route(web::post().to(verify)),
    );
}

/// One answer, fields in the document's order.
#[derive(Serialize)]
struct Answer {
    version: &'static str,
    code: &'static str,
    status: &'static str,
    resultstring: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number: Option<String>,
    #[serde(rename = "sessionID", skip_serializing_if = "Option::is_none")]
    session_id: Option<String>,
    statusmessage: &'static str,
}

fn answer(
    code: &'static str,
    session_id: Option<String>,
    phone_number: Option<String>,
) -> HttpResponse {
    let (ok, statusmessage) = match code {
        "020" => (false, "Invalid or empty Message ref_id"),
        "021" => (false, "No Plan or Balance in account"),
        "022" => (true, "Message sent successfully"),
        "023" => (false, "OTP Expired"),
        "025" => (false, "OTP Mismatch"),
        "026" => (false, "OTP already used"),
        "027" => (true, "OTP Matched"),
        _ => (
            false,
            "Invalid API / SessionId Combination - No Entry Exists",
        ),
    };
    HttpResponse::Ok().json(Answer {
        version: "1.00",
        code,
        status: if ok { "success" } else { "error" },
        resultstring: if ok { "Success" } else { "Failure" },
        phone_number,
        session_id,
        statusmessage,
    })
}

/// Parameters from the query string and, for a form POST, the body (the body wins).
fn params(req: &HttpRequest, body: &[u8]) -> HashMap<String, String> {
    let mut all = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let is_form = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        if let Some(form) = std::str::from_utf8(body)
            .ok()
            .and_then(|b| web::Query::<HashMap<String, String>>::from_query(b).ok())
        {
            all.extend(form.into_inner());
        }
    }
    all
}

fn credential(p: &mut HashMap<String, String>) -> Option<OwnedCredential> {
    let key = SecretString::new(p.remove("apikey")?);
    Some(OwnedCredential::AccountKey(p.remove("accountnumber")?, key))
}

async fn send(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let mut p = params(&req, &body);
    let Ok(caller) = authenticate(&req, credential(&mut p)).await else {
        return answer("024", None, None);
    };
    let Some(ref_id) = p.get("ref_id").filter(|r| !r.is_empty()).cloned() else {
        return answer("020", None, None);
    };
    let Ok(svc) = services(&req) else {
        return answer("024", None, None);
    };
    let phone = p.get("phone_number").cloned().unwrap_or_default();
    let request = ChallengeRequest {
        destination: Some(phone.clone()),
        delivery: Some(Delivery::Sms),
        template: Some(ref_id),
        digits: Some(6),
        // The document's 10 minutes are the configured default lifetime (600 s by default).
        ttl_seconds: None,
        ..ChallengeRequest::default()
    };
    match run(move || svc.create_challenge(&caller, request)).await {
        Ok(c) => answer("022", Some(c.challenge.id.to_string()), Some(phone)),
        Err(Error::InvalidRequest("template")) => answer("020", None, None),
        Err(Error::BudgetSpent | Error::RateLimited) => answer("021", Some(String::new()), None),
        Err(e) => failure(e),
    }
}

async fn verify(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let mut p = params(&req, &body);
    let session = p.get("sessionid").cloned().unwrap_or_default();
    let Ok(caller) = authenticate(&req, credential(&mut p)).await else {
        return answer("024", Some(session), None);
    };
    let (Ok(id), Ok(svc)) = (uuid::Uuid::parse_str(&session), services(&req)) else {
        return answer("024", Some(session), None);
    };
    let otp = SecretString::new(p.remove("otp_code").unwrap_or_default());
    let verification = async move { svc.verify_challenge(&caller, id, otp.expose()).await };
    let verdict = settled(verification).await;
    let code = match verdict {
        Ok(Verdict::Accept) => "027",
        Ok(Verdict::Expired) => "023",
        Ok(Verdict::Used) => "026",
        Ok(_) | Err(Error::InvalidOtp) => "025",
        Err(Error::NotFound(Missing::Challenge)) => "024",
        Err(e) => return failure(e),
    };
    answer(code, Some(session), None)
}

/// A failure of the service itself (HSM or database down): the native error answer (503).
fn failure(e: Error) -> HttpResponse {
    match e {
        Error::InvalidRequest(_) | Error::Unauthenticated => answer("024", None, None),
        e => super::error::ApiError::from(e).error_response_for_surface(),
    }
}
