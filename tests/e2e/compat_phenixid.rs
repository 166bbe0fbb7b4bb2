//! PhenixID "get OTP based on called-in phone number", from the document's example.

use serde_json::{json, Value};

use crate::helpers::app::Api;
use crate::helpers::{Env, Server};

async fn get_otp(
    api: &Api,
    tenant: Option<&str>,
    authorization: Option<String>,
    phone: &str,
) -> (u16, String) {
    let mut req = api
        .bare(reqwest::Method::PUT, "/api/authentication/getOTP")
        .header("Content-Type", "application/json")
        .header("cache-control", "no-cache")
        .body(format!(r#"{{ "phonenumber":"{phone}" }}"#));
    if let Some(t) = tenant {
        req = req.header("tenant", t);
    }
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn basic(name: &str, key: &str) -> String {
    format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("{name}:{key}").as_bytes())
    )
}

#[tokio::test]
async fn the_called_in_phone_number_gets_an_otp_that_logs_its_user_in_once() {
    let env = Env::new();
    let t1 = env.create_channel("t1", &["--may-receive-otp"]);
    let server = Server::start(&env);
    let native = server.api(&t1);
    let (status, _) = native
        .send(
            reqwest::Method::PUT,
            "/v1/users/anna",
            Some(json!({"phone": "+46 70 123 45 678"})),
        )
        .await;
    assert_eq!(status.as_u16(), 201);
    // The document's example request, byte for byte, with this channel's credentials.
    let (status, body) =
        get_otp(&native, Some("t1"), Some(basic("t1", &t1)), "+467012345678").await;
    assert_eq!(status, 200, "{body}");
    let otp = serde_json::from_str::<Value>(&body).unwrap()["otp"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(body, format!(r#"{{"otp":"{otp}"}}"#));
    assert_eq!(native.verify_user("anna", &otp).await, "accept");
    assert_eq!(
        native.verify_user("anna", &otp).await,
        "reject",
        "single use"
    );
    // Bearer works too, and numbers are matched after normalisation.
    let (status, _) = get_otp(
        &native,
        Some("t1"),
        Some(format!("Bearer {t1}")),
        "0046701234 5678",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn anything_not_ok_is_answered_403() {
    let env = Env::new();
    let t1 = env.create_channel("t1", &["--may-receive-otp"]);
    let server = Server::start(&env);
    let native = server.api(&t1);
    native
        .send(
            reqwest::Method::PUT,
            "/v1/users/anna",
            Some(json!({"phone": "+467012345678"})),
        )
        .await;
    native
        .send(
            reqwest::Method::PUT,
            "/v1/users/twin",
            Some(json!({"phone": "+467099999999"})),
        )
        .await;
    native
        .send(
            reqwest::Method::PUT,
            "/v1/users/twin2",
            Some(json!({"phone": "+467099999999"})),
        )
        .await;
    let app_key = env.channel_key.clone();
    let cases = [
        (
            Some("t1"),
            Some(basic("t1", &t1)),
            "+467000000000",
            "no user with that number",
        ),
        (
            Some("t1"),
            Some(basic("t1", &t1)),
            "+467099999999",
            "two users share the number",
        ),
        (
            Some("app"),
            Some(basic("app", &app_key)),
            "+467012345678",
            "channel may not receive codes",
        ),
        (
            Some("t1"),
            Some(basic("t1", "hok_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")),
            "+467012345678",
            "wrong key",
        ),
        (
            Some("app"),
            Some(basic("t1", &t1)),
            "+467012345678",
            "tenant is not the channel",
        ),
        (None, Some(basic("t1", &t1)), "+467012345678", "no tenant"),
        (Some("t1"), None, "+467012345678", "no Authorization"),
    ];
    for (tenant, auth, phone, why) in cases {
        let (status, _) = get_otp(&native, tenant, auth, phone).await;
        assert_eq!(status, 403, "{why}");
    }
}
