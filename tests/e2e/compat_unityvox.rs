//! UnityVox OTP API: every result code of the document (020 to 027), by GET with a query string
//! and by POST with a form body, answered byte for byte as the document shows.

use serde_json::Value;

use crate::helpers::app::Api;
use crate::helpers::peers::{code_in, HttpPeer};
use crate::helpers::{Env, Server};

struct Vox {
    _sms: HttpPeer,
    env: Env,
    account: String,
    ref_id: String,
}

impl Vox {
    async fn new(extra: &str) -> Self {
        let sms = HttpPeer::start().await;
        let env = Env::with_config(format!(
            "{}\n[delivery]\nsms = [\"sms\"]\npoll_ms = 50\n{extra}",
            sms.gateway_toml("sms")
        ));
        let account = env.account_number("app");
        let ref_id = env.create_template("app", "es_ES", "Su código es {otp}");
        Self {
            _sms: sms,
            env,
            account,
            ref_id,
        }
    }

    fn send_query(&self, phone: &str) -> String {
        format!(
            "/api/get-api/v1/OTP-api?accountnumber={}&apikey={}&ref_id={}&phone_number={phone}",
            self.account, self.env.channel_key, self.ref_id
        )
    }

    fn verify_query(&self, session: &str, otp: &str) -> String {
        format!(
            "/api/get-api/v1/OTP-api/verify?accountnumber={}&apikey={}&sessionid={session}&otp_code={otp}",
            self.account, self.env.channel_key
        )
    }
}

async fn call(api: &Api, method: reqwest::Method, path: &str, form: Option<String>) -> String {
    let mut req = api.bare(method, path);
    if let Some(form) = form {
        req = req
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.text().await.unwrap()
}

fn expected(code: &str, session: Option<&str>, phone: Option<&str>) -> String {
    let (status, result, message) = match code {
        "020" => ("error", "Failure", "Invalid or empty Message ref_id"),
        "021" => ("error", "Failure", "No Plan or Balance in account"),
        "022" => ("success", "Success", "Message sent successfully"),
        "023" => ("error", "Failure", "OTP Expired"),
        "024" => (
            "error",
            "Failure",
            "Invalid API / SessionId Combination - No Entry Exists",
        ),
        "025" => ("error", "Failure", "OTP Mismatch"),
        "026" => ("error", "Failure", "OTP already used"),
        _ => ("success", "Success", "OTP Matched"),
    };
    let phone = phone
        .map(|p| format!(r#""phone_number":"{p}","#))
        .unwrap_or_default();
    let session = session
        .map(|s| format!(r#""sessionID":"{s}","#))
        .unwrap_or_default();
    format!(
        r#"{{"version":"1.00","code":"{code}","status":"{status}","resultstring":"{result}",{phone}{session}"statusmessage":"{message}"}}"#
    )
}

fn text_of(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn session_of(answer: &str) -> String {
    serde_json::from_str::<Value>(answer).unwrap()["sessionID"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_sent_with_the_template_and_matched_once() {
    let vox = Vox::new("").await;
    let server = Server::start(&vox.env);
    let api = server.api("");
    let sent = call(
        &api,
        reqwest::Method::GET,
        &vox.send_query("13055550100"),
        None,
    )
    .await;
    let session = session_of(&sent);
    assert_eq!(sent, expected("022", Some(&session), Some("13055550100")));
    let text: Value = serde_json::from_str(&vox._sms.wait_delivered(1).await[0]).unwrap();
    assert_eq!(text["to"], "+13055550100");
    let code = code_in(text["text"].as_str().unwrap(), 6);
    assert_eq!(text["text"], format!("Su código es {code}"));
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let verify = |otp: &str| vox.verify_query(&session, otp);
    assert_eq!(
        call(&api, reqwest::Method::GET, &verify(wrong), None).await,
        expected("025", Some(&session), None)
    );
    assert_eq!(
        call(&api, reqwest::Method::POST, &verify(&code), None).await,
        expected("027", Some(&session), None)
    );
    assert_eq!(
        call(&api, reqwest::Method::GET, &verify(&code), None).await,
        expected("026", Some(&session), None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_post_works_like_the_query_string() {
    let vox = Vox::new("").await;
    let server = Server::start(&vox.env);
    let api = server.api("");
    let form = format!(
        "accountnumber={}&apikey={}&ref_id={}&phone_number=13055550100&Submit=Submit",
        vox.account, vox.env.channel_key, vox.ref_id
    );
    let sent = call(
        &api,
        reqwest::Method::POST,
        "/api/get-api/v1/OTP-api",
        Some(form),
    )
    .await;
    let session = session_of(&sent);
    assert_eq!(sent, expected("022", Some(&session), Some("13055550100")));
    let code = code_in(&text_of(&vox._sms.wait_delivered(1).await[0]), 6);
    let form = format!(
        "accountnumber={}&apikey={}&sessionid={session}&otp_code={code}",
        vox.account, vox.env.channel_key
    );
    let verified = call(
        &api,
        reqwest::Method::POST,
        "/api/get-api/v1/OTP-api/verify",
        Some(form),
    )
    .await;
    assert_eq!(verified, expected("027", Some(&session), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_of_the_document_is_produced() {
    let vox = Vox::new("[challenges]\ndefault_ttl_seconds = 2\n").await;
    let metered = vox
        .env
        .create_channel("metered", &["--message-budget", "0"]);
    let server = Server::start(&vox.env);
    let api = server.api("");
    let get = |path: String| {
        let api = api.clone();
        async move { call(&api, reqwest::Method::GET, &path, None).await }
    };
    // 020: empty or unknown ref_id.
    let empty_ref = vox.send_query("13055550100").replace(&vox.ref_id, "");
    assert_eq!(get(empty_ref).await, expected("020", None, None));
    let unknown_ref = vox
        .send_query("13055550100")
        .replace(&vox.ref_id, "tpl_000000000000");
    assert_eq!(get(unknown_ref).await, expected("020", None, None));
    // 021: no balance. The metered channel's account and template.
    let metered_account = vox.env.account_number("metered");
    let metered_ref = vox.env.create_template("metered", "en_US", "{otp}");
    let no_balance = format!(
        "/api/get-api/v1/OTP-api?accountnumber={metered_account}&apikey={metered}&ref_id={metered_ref}&phone_number=13055550100"
    );
    assert_eq!(get(no_balance).await, expected("021", Some(""), None));
    // 024: a wrong key, a key with another account's number, an unknown session.
    let wrong_key = vox
        .send_query("13055550100")
        .replace(&vox.env.channel_key, "hok_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_eq!(get(wrong_key).await, expected("024", None, None));
    let crossed = vox
        .send_query("13055550100")
        .replace(&vox.account, &metered_account);
    assert_eq!(get(crossed).await, expected("024", None, None));
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        get(vox.verify_query(&unknown, "123456")).await,
        expected("024", Some(&unknown), None)
    );
    // 023: expired (the configured lifetime here is 2 s).
    let sent = get(vox.send_query("13055550100")).await;
    let session = session_of(&sent);
    let code = code_in(&text_of(&vox._sms.wait_delivered(1).await[0]), 6);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        get(vox.verify_query(&session, &code)).await,
        expected("023", Some(&session), None)
    );
}
