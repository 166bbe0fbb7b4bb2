//! Promise 6: every caller is authenticated twice, and sees only its own channel.

use hsm_otp::pki::DevCa;
use serde_json::json;

use crate::helpers::{Env, Server};

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_at_the_tls_handshake() {
    let env = Env::new();
    let server = Server::start(&env);
    let api = server.api_with_identity(None, &env.channel_key);
    let err = api
        .client
        .get(format!("{}/v1/tokens/x", api.base))
        .send()
        .await
        .expect_err("no client certificate must fail TLS");
    assert!(err.is_connect() || err.is_request(), "{err:?}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_at_the_tls_handshake() {
    let env = Env::new();
    let server = Server::start(&env);
    let stranger = DevCa::generate("another CA")
        .unwrap()
        .client("intruder")
        .unwrap();
    let identity = format!("{}{}", stranger.cert_pem, stranger.key_pem);
    let api = server.api_with_identity(Some(&identity), &env.channel_key);
    let result = api
        .client
        .get(format!("{}/v1/tokens/x", api.base))
        .send()
        .await;
    assert!(
        result.is_err(),
        "a foreign certificate must fail TLS: {result:?}"
    );
}

#[tokio::test]
async fn a_missing_or_wrong_channel_key_is_answered_401() {
    let env = Env::new();
    let server = Server::start(&env);
    for key in [
        "",
        "hok_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "not-a-key",
        &env.channel_key[..20],
    ] {
        let api = server.api(key);
        let (status, v) = api
            .post("/v1/tokens", json!({"user": "a", "type": "hotp"}))
            .await;
        assert_eq!(status.as_u16(), 401, "key {key:?}");
        assert_eq!(v["error"]["code"], "unauthenticated");
    }
}

/// A caller is authenticated before anything about its request is answered: with a wrong key,
/// a malformed body or token id is still 401 (with the right key, the same requests get their
/// 4xx).
#[tokio::test]
async fn a_wrong_key_is_answered_401_before_the_request_is_looked_at() {
    let env = Env::new();
    let server = Server::start(&env);
    let id = server.api(&env.channel_key).enrol_rfc_hotp("alice").await;
    let requests = [
        (format!("/v1/tokens/{id}/verify"), "not json", 400),
        (format!("/v1/tokens/{id}/verify"), r#"{"otp": 7}"#, 400),
        (
            "/v1/tokens/not-an-id/verify".to_owned(),
            r#"{"otp": "755224"}"#,
            404,
        ),
        ("/v1/users/alice/verify".to_owned(), "{", 400),
    ];
    for (key, wrong) in [
        ("hok_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true),
        (env.channel_key.as_str(), false),
    ] {
        for (path, body, status) in &requests {
            let res = server
                .api(key)
                .bare(reqwest::Method::POST, path)
                .header("X-Channel-Key", key)
                .header("Content-Type", "application/json")
                .body(*body)
                .send()
                .await
                .unwrap();
            let expected = if wrong { 401 } else { *status };
            assert_eq!(
                res.status().as_u16(),
                expected,
                "{path} {body} (wrong key: {wrong})"
            );
        }
    }
    // Nothing was consumed along the way.
    assert_eq!(
        server.api(&env.channel_key).verify(&id, "755224").await,
        "accept"
    );
}

#[tokio::test]
async fn a_channel_bound_to_another_certificate_is_refused() {
    let env = Env::new();
    let other_fp = "ab".repeat(32);
    let bound_elsewhere = env.create_channel("elsewhere", &["--client-cert-sha256", &other_fp]);
    let bound_here = env.create_channel("here", &["--client-cert-sha256", &env.client.sha256]);
    let server = Server::start(&env);
    let (status, _) = server
        .api(&bound_elsewhere)
        .get("/v1/tokens/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(status.as_u16(), 401);
    let (status, v) = server
        .api(&bound_here)
        .get("/v1/tokens/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(
        (status.as_u16(), v["error"]["code"].as_str()),
        (404, Some("token_not_found"))
    );
}

#[tokio::test]
async fn a_channel_bound_to_another_network_is_refused() {
    let env = Env::new();
    let remote = env.create_channel("remote", &["--allow-ip", "10.0.0.0/8"]);
    let local = env.create_channel("local", &["--allow-ip", "127.0.0.0/8"]);
    let server = Server::start(&env);
    let (status, _) = server
        .api(&remote)
        .post("/v1/tokens", json!({"user": "u", "type": "hotp"}))
        .await;
    assert_eq!(status.as_u16(), 401);
    let (status, _) = server
        .api(&local)
        .post("/v1/tokens", json!({"user": "u", "type": "hotp"}))
        .await;
    assert_eq!(status.as_u16(), 201);
}

#[tokio::test]
async fn a_channel_sees_only_its_own_tokens_and_users() {
    let env = Env::new();
    let other_key = env.create_channel("other", &[]);
    let server = Server::start(&env);
    let mine = server.api(&env.channel_key);
    let theirs = server.api(&other_key);
    let id = mine.enrol_rfc_hotp("alice").await;
    for path in [format!("/v1/tokens/{id}")] {
        let (status, v) = theirs.get(&path).await;
        assert_eq!(
            (status.as_u16(), v["error"]["code"].as_str()),
            (404, Some("token_not_found"))
        );
    }
    let (status, _) = theirs
        .post(&format!("/v1/tokens/{id}/verify"), json!({"otp": "755224"}))
        .await;
    assert_eq!(status.as_u16(), 404);
    let (status, _) = theirs
        .post("/v1/users/alice/verify", json!({"otp": "755224"}))
        .await;
    assert_eq!(status.as_u16(), 404);
    let (status, _) = theirs
        .send(reqwest::Method::DELETE, &format!("/v1/tokens/{id}"), None)
        .await;
    assert_eq!(status.as_u16(), 404);
    // The code was never consumed by the other channel's attempts.
    assert_eq!(mine.verify(&id, "755224").await, "accept");
}

#[tokio::test]
async fn a_rotated_key_replaces_the_old_one_and_a_disabled_channel_is_refused() {
    let env = Env::new();
    let server = Server::start(&env);
    let out = env.cli(&["channel", "rotate-key", "app", "--json"]);
    assert!(out.status.success());
    let new_key = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["channel_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"user": "u", "type": "hotp"});
    assert_eq!(
        server
            .api(&env.channel_key)
            .post("/v1/tokens", body.clone())
            .await
            .0
            .as_u16(),
        401
    );
    assert_eq!(
        server
            .api(&new_key)
            .post("/v1/tokens", body.clone())
            .await
            .0
            .as_u16(),
        201
    );
    assert!(env.cli(&["channel", "disable", "app"]).status.success());
    let (status, v) = server.api(&new_key).post("/v1/tokens", body).await;
    assert_eq!(
        (status.as_u16(), v["error"]["code"].as_str()),
        (403, Some("channel_disabled"))
    );
}
