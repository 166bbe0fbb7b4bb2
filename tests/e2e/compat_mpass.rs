//! mPass MNV: every status code of the document, produced by a request that should produce it.

use crate::helpers::app::Api;
use crate::helpers::peers::{code_in, HttpPeer};
use crate::helpers::{Env, Server, ServerOptions, TcpProxy};

fn env(sms: &HttpPeer, extra: &str) -> Env {
    Env::with_config(format!(
        "{}\n[delivery]\nsms = [\"sms\"]\npoll_ms = 50\n{extra}",
        sms.gateway_toml("sms")
    ))
}

/// `GET path?query` with no header credential; the exact body text.
async fn get(api: &Api, path_and_query: &str) -> String {
    let res = api
        .bare(reqwest::Method::GET, path_and_query)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.text().await.unwrap()
}

const ACCEPT: &str = r#"{"description":"Accept","status":"0"}"#;
const INVALID: &str = r#"{"description":"Invalid Data","status":"1"}"#;
const DENIED: &str = r#"{"description":"Access Denied","status":"2"}"#;
const REJECT: &str = r#"{"description":"Reject","status":"3"}"#;
const EXPIRED: &str = r#"{"description":"Expired","status":"4"}"#;
const INTERNAL: &str = r#"{"description":"Internal Error Occurred","status":"100"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_in_arabic_naming_the_app_is_sent_and_its_code_accepted_once() {
    let sms = HttpPeer::start().await;
    let env = env(&sms, "");
    let server = Server::start(&env);
    let api = server.api("");
    let key = &env.channel_key;
    let send =
        format!("/mpass-web/rest/mv/msg?apikey={key}&dest=966501234567&lang=ar_SA&app=Riyad");
    assert_eq!(get(&api, &send).await, ACCEPT);
    let body: serde_json::Value = serde_json::from_str(&sms.wait_delivered(1).await[0]).unwrap();
    assert_eq!(body["to"], "+966501234567");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("Riyad") && text.contains("رمز التحقق"),
        "{text}"
    );
    let code = code_in(text, 6);
    let verify = |otp: &str| {
        format!("/mpass-web/rest/mv/verify?apikey={key}&dest=966501234567&otp={otp}&app=Riyad")
    };
    let wrong = if code == "000000" { "000001" } else { "000000" };
    assert_eq!(get(&api, &verify(wrong)).await, REJECT);
    assert_eq!(get(&api, &verify(&code)).await, ACCEPT);
    assert_eq!(get(&api, &verify(&code)).await, REJECT, "single use");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_bad_callers_get_invalid_data_and_access_denied() {
    let sms = HttpPeer::start().await;
    let env = env(&sms, "");
    let elsewhere = env.create_channel("elsewhere", &["--allow-ip", "10.0.0.0/8"]);
    let server = Server::start(&env);
    let api = server.api("");
    let key = &env.channel_key;
    for query in [
        format!("apikey={key}"),
        format!("apikey={key}&dest=not-a-number"),
        format!("apikey={key}&dest=966501234567&lang=fr_FR"),
    ] {
        assert_eq!(
            get(&api, &format!("/mpass-web/rest/mv/msg?{query}")).await,
            INVALID,
            "{query}"
        );
    }
    for query in [
        format!("apikey={key}&dest=966501234567"),
        format!("apikey={key}&dest=966501234567&otp=12ab56"),
    ] {
        assert_eq!(
            get(&api, &format!("/mpass-web/rest/mv/verify?{query}")).await,
            INVALID,
            "{query}"
        );
    }
    let no_key = "/mpass-web/rest/mv/msg?dest=966501234567".to_owned();
    let wrong_key =
        "/mpass-web/rest/mv/msg?apikey=hok_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&dest=966501234567"
            .to_owned();
    // mPass binds each key to the caller's IP address: this one belongs to another network.
    let other_ip = format!("/mpass-web/rest/mv/msg?apikey={elsewhere}&dest=966501234567");
    for path in [no_key, wrong_key, other_ip] {
        assert_eq!(get(&api, &path).await, DENIED, "{path}");
    }
    assert!(sms.requests.lock().unwrap().is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_code_is_expired() {
    let sms = HttpPeer::start().await;
    let env = env(&sms, "[challenges]\ndefault_ttl_seconds = 2\n");
    let server = Server::start(&env);
    let api = server.api("");
    let key = &env.channel_key;
    assert_eq!(
        get(
            &api,
            &format!("/mpass-web/rest/mv/msg?apikey={key}&dest=14155550100")
        )
        .await,
        ACCEPT
    );
    let body: serde_json::Value = serde_json::from_str(&sms.wait_delivered(1).await[0]).unwrap();
    let code = code_in(body["text"].as_str().unwrap(), 6);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let verify = format!("/mpass-web/rest/mv/verify?apikey={key}&dest=14155550100&otp={code}");
    assert_eq!(get(&api, &verify).await, EXPIRED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_database_the_service_answers_internal_error_and_accepts_nothing() {
    let sms = HttpPeer::start().await;
    let env = env(&sms, "");
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let proxied = env
        .database_url
        .replacen(":5432/", &format!(":{}/", proxy.addr.port()), 1);
    let server = Server::start_with(
        &env,
        ServerOptions {
            env: vec![("HSM_OTP_DATABASE_URL".into(), proxied)],
        },
    );
    let api = server.api("");
    proxy.cut();
    let send = format!(
        "/mpass-web/rest/mv/msg?apikey={}&dest=14155550100",
        env.channel_key
    );
    assert_eq!(get(&api, &send).await, INTERNAL);
}
