//! Promise 9: no PIN, seed, code or channel key in a log line, an error or a metric.

use hsm_otp::domain::Algorithm;
use serde_json::json;

use crate::helpers::{hotp, Env, Server};

#[tokio::test]
async fn the_server_log_and_metrics_hold_no_pin_seed_code_or_channel_key() {
    let env = Env::new();
    let mut server = Server::start(&env);
    let api = server.api(&env.channel_key);
    let seed_hex = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
    let seed = hex::decode(seed_hex).unwrap();
    let token = api
        .enrol(json!({"user": "alice", "type": "hotp", "digits": 8, "seed_hex": seed_hex}))
        .await;
    let id = token["id"].as_str().unwrap();
    let generated = api
        .enrol(json!({"user": "bob", "type": "totp", "digits": 8}))
        .await;
    let uri = generated["otpauth_uri"].as_str().unwrap();
    let gen_secret = crate::helpers::otpauth_secret(uri);

    // 8-digit codes so that no timestamp or request id can contain one by chance.
    let codes: Vec<String> = (0..4).map(|c| hotp(&seed, Algorithm::Sha1, c, 8)).collect();
    assert_eq!(api.verify(id, &codes[0]).await, "accept");
    assert_eq!(api.verify(id, &codes[0]).await, "replay");
    assert_eq!(api.verify(id, "87654321").await, "reject");
    let (_, v) = api
        .post(
            &format!("/v1/tokens/{id}/resync"),
            json!({"otp1": codes[2], "otp2": codes[3]}),
        )
        .await;
    assert_eq!(v["result"], "accept");
    // Malformed requests carrying secrets must not echo them either.
    let (status, v) = api
        .post(&format!("/v1/tokens/{id}/verify"), json!({"otp": 13572468}))
        .await;
    assert_eq!(status.as_u16(), 400);
    assert!(!v.to_string().contains("13572468"), "{v}");
    let (status, v) = api
        .post(
            "/v1/tokens",
            json!({"user": "x", "type": "hotp", "seed_hex": "zz99887766554433"}),
        )
        .await;
    assert_eq!(status.as_u16(), 400);
    assert!(!v.to_string().contains("99887766"), "{v}");
    let wrong_key = format!("{}x", &env.channel_key);
    assert_eq!(
        server
            .api(&wrong_key)
            .get(&format!("/v1/tokens/{id}"))
            .await
            .0
            .as_u16(),
        401
    );

    let (_, metrics) = server.operator_get("/metrics").await;
    server.stop();
    let log = server.log_text();
    assert!(
        log.contains("\"status\":200") && log.contains("request_id"),
        "the log is written"
    );
    let mut secrets = vec![
        env.user_pin.clone(),
        env.channel_key.clone(),
        seed_hex.to_owned(),
        gen_secret.clone(),
        data_encoding::BASE32_NOPAD.encode(&seed),
        "13572468".to_owned(),
        "87654321".to_owned(),
        "alice".to_owned(), // user ids are not secrets, but never belong in a metric label
    ];
    secrets.extend(codes.iter().cloned());
    for secret in &secrets[..secrets.len() - 1] {
        assert!(
            !log.contains(secret.as_str()),
            "the log contains a secret ({} chars)",
            secret.len()
        );
    }
    for secret in &secrets {
        assert!(
            !metrics.contains(secret.as_str()),
            "a metric contains a secret"
        );
    }
}

#[test]
fn a_refused_pin_is_reported_without_the_pin() {
    let env = Env::new();
    let out = env
        .command()
        .args(["channel", "list"])
        .env("HSM_OTP_USER_PIN", "wrong-pin-4242")
        .output()
        .unwrap();
    // Listing channels touches only the database; creating one needs the HSM.
    assert!(out.status.success());
    let out = env
        .command()
        .args(["channel", "create", "x"])
        .env("HSM_OTP_USER_PIN", "wrong-pin-4242")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("PIN"), "{text}");
    assert!(!text.contains("wrong-pin-4242"), "{text}");
}
