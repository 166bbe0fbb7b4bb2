//! Promise 10: bad input gets a clear 4xx with a stable code — never a 5xx, a hang or a crash.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::start;

#[tokio::test]
async fn malformed_requests_are_answered_4xx_with_a_stable_code() {
    let (_env, _server, api) = start("wrapped");
    let id = api.enrol_rfc_hotp("alice").await;
    let verify = format!("/v1/tokens/{id}/verify");
    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        (
            "POST",
            verify.clone(),
            json!({"otp": "12a456"}),
            400,
            "invalid_otp",
        ),
        (
            "POST",
            verify.clone(),
            json!({"otp": "12345"}),
            400,
            "invalid_otp",
        ),
        (
            "POST",
            verify.clone(),
            json!({"otp": "1234567"}),
            400,
            "invalid_otp",
        ),
        (
            "POST",
            verify.clone(),
            json!({"otp": ""}),
            400,
            "invalid_otp",
        ),
        (
            "POST",
            verify.clone(),
            json!({"otp": 123456}),
            400,
            "invalid_request",
        ),
        (
            "POST",
            verify.clone(),
            json!({"otp": "123456", "extra": 1}),
            400,
            "invalid_request",
        ),
        ("POST", verify.clone(), json!({}), 400, "invalid_request"),
        (
            "POST",
            "/v1/tokens".into(),
            json!({"user": "a", "type": "motp"}),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/tokens".into(),
            json!({"user": "a", "type": "hotp", "digits": 9}),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/tokens".into(),
            json!({"user": "a", "type": "totp", "period": 0}),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/tokens".into(),
            json!({"user": "a", "type": "totp", "counter": 5}),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/tokens".into(),
            json!({"user": "a", "type": "hotp", "algorithm": "MD5"}),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/tokens".into(),
            json!({"user": "", "type": "hotp"}),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/tokens".into(),
            json!({"user": "a\u{0}b", "type": "hotp"}),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/tokens".into(),
            json!({"user": "a", "type": "hotp", "seed_hex": "xyz"}),
            400,
            "invalid_seed",
        ),
        (
            "POST",
            "/v1/tokens".into(),
            json!({"user": "a", "type": "hotp", "seed_hex": "0011223344556677"}),
            400,
            "invalid_seed",
        ),
        (
            "POST",
            "/v1/tokens".into(),
            json!({"user": "a", "type": "hotp", "seed_base32": "!!!!"}),
            400,
            "invalid_seed",
        ),
        (
            "POST",
            "/v1/tokens".into(),
            json!({"user": "a", "type": "hotp", "seed_hex": "00", "seed_base32": "AA"}),
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/tokens/not-a-uuid".into(),
            Value::Null,
            404,
            "token_not_found",
        ),
        ("GET", "/nowhere".into(), Value::Null, 404, "not_found"),
        (
            "PUT",
            "/v1/tokens".into(),
            Value::Null,
            405,
            "method_not_allowed",
        ),
        (
            "GET",
            verify.clone(),
            Value::Null,
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let method: Method = method.parse().unwrap();
        let body = (!body.is_null()).then_some(body);
        let (got, v) = api.send(method.clone(), &path, body.clone()).await;
        assert_eq!(
            (got.as_u16(), v["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path} {body:?}: {v}"
        );
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn bodies_that_are_not_json_or_too_large_are_refused() {
    let (_env, _server, api) = start("wrapped");
    let url = format!("{}/v1/tokens", api.base);
    let send = |body: Vec<u8>, content_type: &'static str| {
        api.client
            .post(&url)
            .header("X-Channel-Key", &api.key)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let cases = [
        (
            b"{\"user\": ".to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (b"<xml/>".to_vec(), "application/json", 400, "invalid_json"),
        (
            b"user=a".to_vec(),
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        (
            vec![b' '; 64 * 1024],
            "application/json",
            413,
            "payload_too_large",
        ),
    ];
    for (body, content_type, status, code) in cases {
        let res = send(body, content_type).await.unwrap();
        let got = res.status().as_u16();
        let v: Value = res.json().await.unwrap();
        assert_eq!(
            (got, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{content_type}"
        );
    }
    // Still serving after all of that.
    api.enrol_rfc_hotp("bob").await;
}
