//! MOSIP auth manager and OTP manager: the document's requests, envelopes and error codes.

use serde_json::{json, Value};

use crate::helpers::app::Api;
use crate::helpers::peers::{code_in, HttpPeer, SmtpPeer};
use crate::helpers::{Env, Server};

const AUTH: &str = "/v1/authmanager/authenticate";

struct Mosip {
    sms: HttpPeer,
    smtp: SmtpPeer,
    env: Env,
}

impl Mosip {
    async fn new(extra: &str) -> Self {
        let sms = HttpPeer::start().await;
        let smtp = SmtpPeer::start().await;
        let env = Env::with_config(format!(
            "{}\n{}\n[delivery]\nsms = [\"sms\"]\nemail = [\"mail\"]\npoll_ms = 50\n{extra}",
            sms.gateway_toml("sms"),
            smtp.gateway_toml("mail")
        ));
        Self { sms, smtp, env }
    }
}

/// A POST of a MOSIP envelope; returns status, the `Authorization` response header, the body.
async fn post(
    api: &Api,
    path: &str,
    request: Value,
    token: Option<&str>,
) -> (u16, Option<String>, Value) {
    let envelope = json!({
        "id": "mosip.test", "version": "1.0", "requesttime": "2026-11-23T10:15:30.000Z",
        "metadata": {}, "request": request
    });
    let mut req = api.bare(reqwest::Method::POST, path).json(&envelope);
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let auth = res
        .headers()
        .get("Authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, auth, res.json().await.unwrap())
}

async fn login(api: &Api, name: &str, key: &str) -> String {
    let (status, token, body) = post(
        api,
        &format!("{AUTH}/clientidsecretkey"),
        json!({"clientid": name, "secretkey": key, "appid": "ida"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    token.expect("the token comes in the Authorization header")
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

fn assert_error(body: &Value, id: &str, code: &str, message: &str) {
    assert_eq!(
        keys(body),
        ["errors", "id", "responsetime", "ver"],
        "{body}"
    );
    assert_eq!(body["id"], id);
    assert_eq!(
        body["errors"],
        json!([{"errorCode": code, "message": message}]),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_and_secret_key_give_a_token_that_later_calls_must_present() {
    let m = Mosip::new("").await;
    let server = Server::start(&m.env);
    let api = server.api("");
    let (status, token, body) = post(
        &api,
        &format!("{AUTH}/clientidsecretkey"),
        json!({"clientId": "app", "secretKey": m.env.channel_key, "appId": "ida"}),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        keys(&body),
        ["id", "response", "responsetime", "ver"],
        "{body}"
    );
    assert_eq!(body["response"]["status"], "success");
    assert!(
        token.unwrap().starts_with("hos1."),
        "camelCase fields work too"
    );
    let (status, token, body) = post(
        &api,
        &format!("{AUTH}/clientidsecretkey"),
        json!({"clientid": "app", "secretkey": "hok_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}),
        None,
    )
    .await;
    assert_eq!((status, token.is_none()), (401, true));
    assert_error(
        &body,
        "mosip.authentication.clientidsecretkey",
        "KER-ATH-401",
        "Authentication Failed",
    );
    let other = m.env.create_channel("other", &[]);
    let (status, _, _) = post(
        &api,
        &format!("{AUTH}/clientidsecretkey"),
        json!({"clientid": "app", "secretkey": other}),
        None,
    )
    .await;
    assert_eq!(status, 401, "a key of another channel");
    // Later calls: no token, a forged one → 401; the cookie form works like the header.
    let send = json!({"userid": "nobody", "otpchannel": ["phone"], "useridtype": "USERID", "appid": "ida", "context": "auth"});
    let (status, _, body) = post(&api, &format!("{AUTH}/sendotp"), send.clone(), None).await;
    assert_eq!(status, 401);
    assert_error(
        &body,
        "mosip.authentication.sendotp",
        "KER-ATH-401",
        "Authentication Failed",
    );
    let (status, _, _) = post(
        &api,
        &format!("{AUTH}/sendotp"),
        send.clone(),
        Some("hos1.e30.AAAA"),
    )
    .await;
    assert_eq!(status, 401);
    let token = login(&api, "app", &m.env.channel_key).await;
    let res = api
        .bare(reqwest::Method::POST, &format!("{AUTH}/sendotp"))
        .header("Cookie", format!("Authorization={token}"))
        .json(&json!({"request": send}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["errorCode"], "AUTH_ERR_USER_NOT_FOUND",
        "authenticated by cookie"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendotp_reaches_the_users_phone_and_mailbox_and_useridotp_logs_in_once() {
    let m = Mosip::new("").await;
    let server = Server::start(&m.env);
    let api = server.api("");
    let native = server.api(&m.env.channel_key);
    native
        .send(
            reqwest::Method::PUT,
            "/v1/users/M392380",
            Some(json!({"phone": "+912530192395", "email": "m392380@example.org"})),
        )
        .await;
    let token = login(&api, "app", &m.env.channel_key).await;
    // The document's example request: one channel, for pre-registration.
    let request = json!({"userid": "M392380", "otpchannel": ["phone"], "useridtype": "USERID",
                         "appid": "preregistration", "context": "auth-otp", "templateVariables": {"UIN": "2530192395"}});
    let (status, _, body) = post(&api, &format!("{AUTH}/sendotp"), request, Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        keys(&body),
        ["id", "response", "responsetime", "ver"],
        "{body}"
    );
    assert_eq!(
        (&body["id"], &body["ver"]),
        (&json!("mosip.authentication.sendotp"), &json!("1.0"))
    );
    assert_eq!(
        body["response"],
        json!({"status": "success", "message": "OTP had been sent successfully"})
    );
    let sms: Value = serde_json::from_str(&m.sms.wait_delivered(1).await[0]).unwrap();
    assert_eq!(sms["to"], "+912530192395");
    let code = code_in(sms["text"].as_str().unwrap(), 6);
    let verify = json!({"userId": "M392380", "otp": code, "appId": "preregistration"});
    let (status, user_token, body) = post(
        &api,
        &format!("{AUTH}/useridOTP"),
        verify.clone(),
        Some(&token),
    )
    .await;
    assert_eq!(
        (status, body["response"]["status"].as_str()),
        (200, Some("success")),
        "{body}"
    );
    assert!(
        user_token.unwrap().starts_with("hos1."),
        "an auth token for the user"
    );
    let (_, user_token, body) =
        post(&api, &format!("{AUTH}/useridOTP"), verify, Some(&token)).await;
    assert!(user_token.is_none());
    assert_error(
        &body,
        "mosip.authentication.useridOTP",
        "AUTH_ERR_OTP_INVALID",
        "The OTP is invalid",
    );
    // Other modules may ask for both channels at once.
    let both = json!({"userid": "M392380", "otpchannel": ["phone", "email"], "useridtype": "USERID", "appid": "resident", "context": "auth"});
    let (_, _, body) = post(&api, &format!("{AUTH}/sendotp"), both, Some(&token)).await;
    assert_eq!(body["response"]["status"], "success", "{body}");
    m.sms.wait_delivered(2).await;
    let (rcpt, _) = m.smtp.wait_messages(1).await.remove(0);
    assert!(rcpt.contains("m392380@example.org"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sendotp_error_of_the_document_is_produced() {
    let m = Mosip::new("").await;
    let server = Server::start(&m.env);
    let api = server.api("");
    server
        .api(&m.env.channel_key)
        .send(
            reqwest::Method::PUT,
            "/v1/users/phone-only",
            Some(json!({"phone": "+912530192395"})),
        )
        .await;
    let token = login(&api, "app", &m.env.channel_key).await;
    let id = "mosip.authentication.sendotp";
    let cases = [
        (
            json!(["fax"]),
            "phone-only",
            "ida",
            "KER-AUTH-CHANNEL_INVALID",
            "The passed channel is invalid.",
        ),
        (
            json!([]),
            "phone-only",
            "ida",
            "KER-AUTH-CHANNEL_INVALID",
            "The passed channel is invalid.",
        ),
        (
            json!(["phone", "email"]),
            "phone-only",
            "preregistration",
            "AUTH_ERR_MULTIPLE_CHANNELS",
            "Multiple channels are not supported in your module.",
        ),
        (
            json!(["phone"]),
            "M000000",
            "ida",
            "AUTH_ERR_USER_NOT_FOUND",
            "The passed in user is not found",
        ),
        (
            json!(["email"]),
            "phone-only",
            "ida",
            "AUTH_ERR_CHANNELPATH_NOT_FOUND",
            "The passed in user is not found",
        ),
    ];
    for (channels, user, app, code, message) in cases {
        let request = json!({"userid": user, "otpchannel": channels, "useridtype": "USERID", "appid": app, "context": "auth"});
        let (status, _, body) = post(&api, &format!("{AUTH}/sendotp"), request, Some(&token)).await;
        assert_eq!(status, 200, "{body}");
        assert_error(&body, id, code, message);
    }
    assert!(
        m.sms.requests.lock().unwrap().is_empty(),
        "nothing was sent"
    );
}

async fn generate(api: &Api, token: &str, key: &str) -> Value {
    let (status, _, body) = post(
        api,
        "/v1/otpmanager/otp/generate",
        json!({"key": key}),
        Some(token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        keys(&body),
        ["errors", "id", "response", "responsetime", "version"],
        "{body}"
    );
    assert_eq!(body["errors"], Value::Null);
    body["response"].clone()
}

async fn validate(api: &Api, token: &str, key: &str, otp: &str) -> Value {
    let res = api
        .bare(
            reqwest::Method::GET,
            &format!("/v1/otpmanager/otp/validate?key={key}&otp={otp}"),
        )
        .header("Authorization", token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.json::<Value>().await.unwrap()["response"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otp_manager_generates_validates_once_and_freezes_a_key_after_three_wrong_codes() {
    let m = Mosip::new("").await;
    let ida = m.env.create_channel("ida", &["--may-receive-otp"]);
    let server = Server::start(&m.env);
    let api = server.api("");
    let token = login(&api, "ida", &ida).await;
    let response = generate(&api, &token, "9820098200").await;
    assert_eq!(response["status"], "GENERATION_SUCCESSFUL");
    let otp = response["otp"].as_str().unwrap().to_owned();
    assert_eq!(otp.len(), 6);
    let success = json!({"status": "success", "message": "VALIDATION_SUCCESSFUL"});
    let unsuccessful = json!({"status": "failure", "message": "VALIDATION_UNSUCCESSFUL"});
    let blocked = json!({"status": "failure", "message": "USER_BLOCKED"});
    assert_eq!(validate(&api, &token, "9820098200", &otp).await, success);
    assert_eq!(
        validate(&api, &token, "9820098200", &otp).await,
        unsuccessful,
        "consumed"
    );

    let otp = generate(&api, &token, "9820098200").await["otp"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = if otp == "000000" { "000001" } else { "000000" };
    for _ in 0..3 {
        assert_eq!(
            validate(&api, &token, "9820098200", wrong).await,
            unsuccessful
        );
    }
    assert_eq!(
        validate(&api, &token, "9820098200", &otp).await,
        blocked,
        "frozen, even the right code"
    );
    assert_eq!(
        generate(&api, &token, "9820098200").await,
        json!({"otp": "null", "status": "USER_BLOCKED"})
    );
    // Another key is not affected; a channel without the right to receive codes gets none.
    assert_eq!(
        generate(&api, &token, "other-key").await["status"],
        "GENERATION_SUCCESSFUL"
    );
    let plain = login(&api, "app", &m.env.channel_key).await;
    let (status, _, body) = post(
        &api,
        "/v1/otpmanager/otp/generate",
        json!({"key": "k"}),
        Some(&plain),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["errorCode"].as_str()),
        (403, Some("KER-OTG-FORBIDDEN"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_code_is_otp_expired() {
    let m = Mosip::new("[challenges]\ndefault_ttl_seconds = 2\n").await;
    let ida = m.env.create_channel("ida", &["--may-receive-otp"]);
    let server = Server::start(&m.env);
    let api = server.api("");
    let token = login(&api, "ida", &ida).await;
    let otp = generate(&api, &token, "alice@example.org").await["otp"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let expired = json!({"status": "failure", "message": "OTP_EXPIRED"});
    assert_eq!(
        validate(&api, &token, "alice@example.org", &otp).await,
        expired
    );
}
