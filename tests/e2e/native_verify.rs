//! Verification through the native API: RFC vectors through the HSM, replay, TOTP, users,
//! resync, lockout, enrolment with a generated seed.

use hsm_otp::domain::Algorithm;
use hsm_otp::oath::vectors::{rfc6238_seed, RFC4226_CODES};
use serde_json::json;

use crate::helpers::{hotp, in_both_modes, start, totp_now, Env, Server};

#[tokio::test]
async fn every_rfc4226_code_is_accepted_in_order_and_each_only_once() {
    in_both_modes(|mode| async move {
        let (_env, _server, api) = start(mode);
        let id = api.enrol_rfc_hotp("alice").await;
        for (counter, code) in RFC4226_CODES.iter().enumerate() {
            assert_eq!(
                api.verify(&id, code).await,
                "accept",
                "{mode}: counter {counter}"
            );
            assert_eq!(
                api.verify(&id, code).await,
                "replay",
                "{mode}: counter {counter} again"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn hotp_accepts_within_the_look_ahead_and_never_goes_back() {
    let (_env, _server, api) = start("wrapped");
    let id = api.enrol_rfc_hotp("alice").await;
    // Counter 7 is within the default look-ahead of 10 from 0.
    assert_eq!(api.verify(&id, RFC4226_CODES[7]).await, "accept");
    // Codes before the accepted one are now superseded.
    assert_ne!(api.verify(&id, RFC4226_CODES[5]).await, "accept");
    assert_eq!(api.verify(&id, RFC4226_CODES[8]).await, "accept");
    let seed = hex::decode(crate::helpers::RFC_SEED_HEX).unwrap();
    // Counter 9 + 11 = 20 is beyond the window from 9.
    assert_eq!(
        api.verify(&id, &hotp(&seed, Algorithm::Sha1, 20, 6)).await,
        "reject"
    );
    let (_, token) = api.get(&format!("/v1/tokens/{id}")).await;
    assert_eq!(token["counter"], 9);
}

#[tokio::test]
async fn totp_codes_of_every_hash_and_length_are_accepted_once() {
    in_both_modes(|mode| async move {
        let (_env, _server, api) = start(mode);
        for (alg, digits) in [
            (Algorithm::Sha1, 6),
            (Algorithm::Sha256, 7),
            (Algorithm::Sha512, 8),
        ] {
            let seed = rfc6238_seed(alg);
            let token = api
                .enrol(json!({
                    "user": "bob", "type": "totp", "algorithm": alg.as_str(),
                    "digits": digits, "seed_hex": hex::encode(seed)
                }))
                .await;
            let id = token["id"].as_str().unwrap();
            let code = totp_now(seed, alg, digits, 30);
            assert_eq!(api.verify(id, &code).await, "accept", "{mode} {alg:?}");
            assert_eq!(api.verify(id, &code).await, "replay", "{mode} {alg:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_totp_code_from_far_in_the_past_is_rejected() {
    let (_env, _server, api) = start("wrapped");
    let seed = rfc6238_seed(Algorithm::Sha1);
    let token = api
        .enrol(json!({"user": "bob", "type": "totp", "seed_hex": hex::encode(seed), "digits": 8}))
        .await;
    // The RFC's own vector for t = 59 is right for 1970, not for now.
    assert_eq!(
        api.verify(token["id"].as_str().unwrap(), "94287082").await,
        "reject"
    );
}

#[tokio::test]
async fn a_user_verification_accepts_a_code_of_any_of_the_users_tokens() {
    let (_env, _server, api) = start("wrapped");
    api.enrol_rfc_hotp("carol").await;
    let other = [0x42u8; 20];
    api.enrol(json!({"user": "carol", "type": "totp", "seed_hex": hex::encode(other)}))
        .await;
    assert_eq!(api.verify_user("carol", RFC4226_CODES[0]).await, "accept");
    let code = totp_now(&other, Algorithm::Sha1, 6, 30);
    assert_eq!(api.verify_user("carol", &code).await, "accept");
    assert_eq!(api.verify_user("carol", &code).await, "replay");
    let (status, v) = api
        .post("/v1/users/nobody/verify", json!({"otp": "123456"}))
        .await;
    assert_eq!(
        (status.as_u16(), v["error"]["code"].as_str()),
        (404, Some("user_not_found"))
    );
}

/// Verifications by user id read their users' tokens and open challenges together with
/// other verifications' (one grouped read for all that are ready). Two channels with users of
/// the same names, sent at once: each request sees only its own channel's user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_user_verifications_each_see_only_their_own_channel_and_user() {
    const USERS: usize = 12;
    let env = Env::new();
    let ivr_key = env.create_channel("ivr", &["--may-receive-otp"]);
    let server = Server::start(&env);
    let (app, ivr) = (server.api(&env.channel_key), server.api(&ivr_key));
    // Same user names in both channels, different seeds.
    let seed = |channel: u8, n: usize| {
        let mut s = [0x5a_u8; 20];
        s[..2].copy_from_slice(&[channel, n as u8]);
        s
    };
    for n in 0..USERS {
        for (api, channel) in [(&app, 1), (&ivr, 2)] {
            let body = json!({"user": format!("u{n}"), "type": "hotp",
                              "seed_hex": hex::encode(seed(channel, n))});
            api.enrol(body).await;
        }
    }
    // In ivr only: a user with an open challenge and no token, and a directory user with
    // nothing to try.
    let body = json!({"user": "bob", "destination": "+14155550100", "delivery": "response"});
    let (status, c) = ivr.post("/v1/challenges", body).await;
    assert_eq!(status.as_u16(), 201, "{c}");
    let bob_code = c["otp"].as_str().unwrap().to_owned();
    let (status, _) = ivr
        .send(
            reqwest::Method::PUT,
            "/v1/users/dora",
            Some(json!({"phone": "+14155550101"})),
        )
        .await;
    assert!(status.is_success());

    // (api, user, code, expected status, expected result)
    let mut cases: Vec<(crate::helpers::app::Api, String, String, u16, &str)> = Vec::new();
    for n in 0..USERS {
        let (user, mine, theirs) = (
            format!("u{n}"),
            hotp(&seed(1, n), Algorithm::Sha1, 0, 6),
            hotp(&seed(2, n), Algorithm::Sha1, 0, 6),
        );
        cases.push((app.clone(), user.clone(), mine.clone(), 200, "accept"));
        cases.push((ivr.clone(), user.clone(), theirs, 200, "accept"));
        // The other channel's code for a user of the same name: wrong here.
        cases.push((ivr.clone(), user, mine, 200, "reject"));
    }
    cases.push((ivr.clone(), "bob".into(), bob_code.clone(), 200, "accept"));
    cases.push((app.clone(), "bob".into(), bob_code, 404, ""));
    cases.push((ivr.clone(), "dora".into(), "123456".into(), 200, "reject"));
    cases.push((app.clone(), "dora".into(), "123456".into(), 404, ""));
    let tasks: Vec<_> = cases
        .into_iter()
        .map(|(api, user, code, status, result)| {
            tokio::spawn(async move {
                let path = format!("/v1/users/{user}/verify");
                let (got, v) = api.post(&path, json!({"otp": code})).await;
                let got_result = v["result"].as_str().unwrap_or_default().to_owned();
                assert_eq!(
                    (got.as_u16(), got_result.as_str()),
                    (status, result),
                    "{user}: {v}"
                );
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Each accepted code was used once, in its own channel only.
    for n in 0..USERS {
        let code = hotp(&seed(1, n), Algorithm::Sha1, 0, 6);
        assert_eq!(app.verify_user(&format!("u{n}"), &code).await, "replay");
    }
}

#[tokio::test]
async fn resync_with_two_consecutive_codes_far_ahead_moves_the_counter() {
    let (_env, _server, api) = start("wrapped");
    let id = api.enrol_rfc_hotp("dave").await;
    let seed = hex::decode(crate::helpers::RFC_SEED_HEX).unwrap();
    let code = |c| hotp(&seed, Algorithm::Sha1, c, 6);
    // Counter 50 is beyond the verification window but within the resync window.
    assert_eq!(api.verify(&id, &code(50)).await, "reject");
    let path = format!("/v1/tokens/{id}/resync");
    let (_, v) = api
        .post(&path, json!({"otp1": code(50), "otp2": code(52)}))
        .await;
    assert_eq!(v["result"], "reject", "not consecutive");
    let (_, v) = api
        .post(&path, json!({"otp1": code(50), "otp2": code(51)}))
        .await;
    assert_eq!(v["result"], "accept");
    assert_eq!(api.verify(&id, &code(51)).await, "replay");
    assert_eq!(api.verify(&id, &code(52)).await, "accept");
}

#[tokio::test]
async fn totp_resync_learns_the_clock_drift_of_the_token() {
    let (_env, _server, api) = start("wrapped");
    let seed = [7u8; 20];
    let token = api
        .enrol(json!({"user": "erin", "type": "totp", "seed_hex": hex::encode(seed)}))
        .await;
    let id = token["id"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30;
    // A token whose clock runs five steps (2.5 minutes) fast.
    let ahead = |k: u64| hotp(&seed, Algorithm::Sha1, now + 5 + k, 6);
    assert_eq!(api.verify(id, &ahead(0)).await, "reject");
    let (_, v) = api
        .post(
            &format!("/v1/tokens/{id}/resync"),
            json!({"otp1": ahead(0), "otp2": ahead(1)}),
        )
        .await;
    assert_eq!(v["result"], "accept");
    // With the drift learnt, the token's next code is accepted.
    assert_eq!(api.verify(id, &ahead(2)).await, "accept");
}

#[tokio::test]
async fn five_wrong_codes_lock_the_token_until_it_is_unlocked() {
    in_both_modes(|mode| async move {
        let (env, _server, api) = start(mode);
        let id = api.enrol_rfc_hotp("frank").await;
        for _ in 0..5 {
            assert_eq!(api.verify(&id, "000000").await, "reject");
        }
        // Locked: even the right code is refused.
        assert_eq!(api.verify(&id, RFC4226_CODES[0]).await, "locked");
        let (_, t) = api.get(&format!("/v1/tokens/{id}")).await;
        assert_eq!(t["locked"], true);
        let (status, t) = api
            .post(&format!("/v1/tokens/{id}/unlock"), json!({}))
            .await;
        assert_eq!((status.as_u16(), &t["locked"]), (200, &json!(false)));
        assert_eq!(api.verify(&id, RFC4226_CODES[0]).await, "accept");
        // The audit trail shows the lock and every verification.
        let audit = env.sql(&format!(
            "SELECT string_agg(action || ':' || result, ',' ORDER BY id) FROM audit_log \
             WHERE token_id = '{id}'"
        ));
        assert_eq!(
            audit,
            "enrol:ok,verify:reject,verify:reject,verify:reject,verify:reject,verify:reject,\
             lock:ok,verify:locked,unlock:ok,verify:accept"
        );
    })
    .await;
}

#[tokio::test]
async fn a_user_id_with_quotes_backslashes_and_non_ascii_reaches_the_audit_trail_intact() {
    // A batch of audit rows travels to PostgreSQL as one JSON parameter: every character a
    // user id may hold must come out as it went in.
    let (env, _server, api) = start("wrapped");
    let user = r#"o'brien "ü" \ 😀 {x},[y]"#;
    let id = api.enrol_rfc_hotp(user).await;
    assert_eq!(api.verify(&id, "000000").await, "reject");
    let stored = env.sql(&format!(
        "SELECT user_id FROM audit_log WHERE token_id = '{id}' AND action = 'verify'"
    ));
    assert_eq!(stored, user);
}

#[tokio::test]
async fn the_failure_limit_is_configurable() {
    let env = Env::with(crate::helpers::EnvOptions {
        settings: vec![("HSM_OTP_MAX_FAILURES".into(), "2".into())],
        ..Default::default()
    });
    let server = Server::start(&env);
    let api = server.api(&env.channel_key);
    let id = api.enrol_rfc_hotp("gina").await;
    assert_eq!(api.verify(&id, "111111").await, "reject");
    assert_eq!(api.verify(&id, "111111").await, "reject");
    assert_eq!(api.verify(&id, RFC4226_CODES[0]).await, "locked");
}

#[tokio::test]
async fn a_generated_seed_is_shown_once_as_a_working_otpauth_uri() {
    in_both_modes(|mode| async move {
        let (_env, _server, api) = start(mode);
        let token = api
            .enrol(json!({"user": "hank", "type": "hotp", "issuer": "Acme Bank", "digits": 8}))
            .await;
        let uri = token["otpauth_uri"].as_str().unwrap();
        assert!(
            uri.starts_with("otpauth://hotp/Acme%20Bank:hank?secret="),
            "{uri}"
        );
        assert!(
            uri.contains("&digits=8") && uri.contains("&counter=0"),
            "{uri}"
        );
        let secret = crate::helpers::otpauth_secret(uri);
        let seed = data_encoding::BASE32_NOPAD
            .decode(secret.as_bytes())
            .unwrap();
        assert_eq!(seed.len(), 20, "a full-length seed from the HSM's RNG");
        let id = token["id"].as_str().unwrap();
        assert_eq!(
            api.verify(id, &hotp(&seed, Algorithm::Sha1, 0, 8)).await,
            "accept"
        );
        let (_, shown) = api.get(&format!("/v1/tokens/{id}")).await;
        assert!(shown.get("otpauth_uri").is_none(), "{shown}");
        assert!(!shown.to_string().contains(&secret));
    })
    .await;
}

#[tokio::test]
async fn an_imported_seed_never_appears_in_an_answer() {
    let (_env, _server, api) = start("wrapped");
    let token = api
        .enrol(json!({"user": "ivy", "type": "totp", "seed_base32": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}))
        .await;
    assert!(token.get("otpauth_uri").is_none());
    let text = token.to_string();
    assert!(
        !text.contains("GEZDGNBV") && !text.contains("3132333435"),
        "{text}"
    );
}

#[tokio::test]
async fn a_short_imported_seed_still_gives_the_right_codes() {
    // 16 bytes: shorter than SoftHSM's minimum HMAC-SHA1 key; the HSM layer pads it.
    let (_env, _server, api) = start("object");
    let seed = [0xA5u8; 16];
    let token = api
        .enrol(json!({"user": "jo", "type": "hotp", "seed_hex": hex::encode(seed)}))
        .await;
    let id = token["id"].as_str().unwrap();
    assert_eq!(
        api.verify(id, &hotp(&seed, Algorithm::Sha1, 0, 6)).await,
        "accept"
    );
}

#[tokio::test]
async fn deleting_a_token_removes_it_and_its_hsm_object() {
    in_both_modes(|mode| async move {
        let (env, _server, api) = start(mode);
        let id = api.enrol_rfc_hotp("kim").await;
        let objects = || env.pkcs11_tool(&["--list-objects", "--type", "secrkey"]);
        assert_eq!(
            objects().contains("hsm-otp.seed."),
            mode == "object",
            "{mode}"
        );
        let (status, _) = api
            .send(reqwest::Method::DELETE, &format!("/v1/tokens/{id}"), None)
            .await;
        assert_eq!(status.as_u16(), 204);
        let (status, v) = api.get(&format!("/v1/tokens/{id}")).await;
        assert_eq!(
            (status.as_u16(), v["error"]["code"].as_str()),
            (404, Some("token_not_found"))
        );
        assert!(
            !objects().contains("hsm-otp.seed."),
            "{mode}: seed object destroyed"
        );
    })
    .await;
}

/// `hsm_otp_hot_seeds_total{outcome}` from the server's metrics.
async fn hot_seed_uses(server: &Server, outcome: &str) -> u64 {
    let (_, text) = server.operator_get("/metrics").await;
    let prefix = format!("hsm_otp_hot_seeds_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.parse().unwrap())
}

/// Recently used seeds are kept in the HSM as session objects (the hot-seed cache): in
/// wrapped storage a token used again costs no unwrap, in object storage no use of the token
/// object; either way its codes still count once.
#[tokio::test]
async fn a_token_used_again_is_served_from_the_hot_seed_cache_and_still_accepts_once() {
    for mode in ["wrapped", "object"] {
        let (_env, server, api) = start(mode);
        let id = api.enrol_rfc_hotp("alice").await;
        let before = (
            hot_seed_uses(&server, "miss").await,
            hot_seed_uses(&server, "hit").await,
        );
        for code in &RFC4226_CODES[..4] {
            assert_eq!(api.verify(&id, code).await, "accept", "{mode}");
        }
        assert_eq!(api.verify(&id, RFC4226_CODES[3]).await, "replay", "{mode}");
        assert_eq!(api.verify(&id, "000000").await, "reject", "{mode}");
        let after = (
            hot_seed_uses(&server, "miss").await,
            hot_seed_uses(&server, "hit").await,
        );
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (1, 5),
            "{mode}: one unwrap or copy, then the cached object"
        );
        // Deleting the token destroys its cached object too: in wrapped storage the same seed
        // enrolled again wraps to the same blob (key wrap is deterministic), yet its first use
        // unwraps afresh.
        let (status, _) = api
            .send(reqwest::Method::DELETE, &format!("/v1/tokens/{id}"), None)
            .await;
        assert_eq!(status.as_u16(), 204, "{mode}");
        let id = api.enrol_rfc_hotp("alice").await;
        assert_eq!(api.verify(&id, RFC4226_CODES[0]).await, "accept", "{mode}");
        assert_eq!(hot_seed_uses(&server, "miss").await, after.0 + 1, "{mode}");
        assert_eq!(hot_seed_uses(&server, "hit").await, after.1, "{mode}");
    }
}

/// `hot_seeds = 0`: every use unwraps the seed and destroys it afterwards (wrapped storage),
/// or uses the seed object itself (object storage).
#[tokio::test]
async fn without_hot_seeds_every_use_unwraps() {
    for mode in ["wrapped", "object"] {
        let env = Env::with(crate::helpers::EnvOptions {
            seed_storage: mode,
            settings: vec![("HSM_OTP_HOT_SEEDS".into(), "0".into())],
            ..Default::default()
        });
        let server = Server::start(&env);
        let api = server.api(&env.channel_key);
        let id = api.enrol_rfc_hotp("bob").await;
        for code in &RFC4226_CODES[..3] {
            assert_eq!(api.verify(&id, code).await, "accept", "{mode}");
        }
        assert_eq!(api.verify(&id, RFC4226_CODES[2]).await, "replay", "{mode}");
        assert_eq!(hot_seed_uses(&server, "hit").await, 0, "{mode}");
        assert!(hot_seed_uses(&server, "miss").await >= 4, "{mode}");
    }
}
