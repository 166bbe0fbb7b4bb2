//! Out-of-band challenges through real peers: an HTTP SMS provider and an SMTP server on
//! 127.0.0.1. Promises 3, 5, 7, 8, 9 and 10 for codes sent to a phone or a mailbox.

use serde_json::{json, Value};

use crate::helpers::app::Api;
use crate::helpers::peers::{code_in, HttpPeer, SmtpPeer};
use crate::helpers::{Env, Server};

/// An environment whose SMS route is `routes` over these gateway tables.
fn env_with(gateways: &str, routes: &str, extra: &str) -> Env {
    Env::with_config(format!(
        "{gateways}\n[delivery]\n{routes}\nbackoff_ms = 50\npoll_ms = 50\n{extra}"
    ))
}

fn text_of(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An SMS peer, an environment routing SMS to it (plus `extra` TOML), its server and client.
async fn with_sms(extra: &str) -> (HttpPeer, Env, Server, Api) {
    let sms = HttpPeer::start().await;
    let env = env_with(&sms.gateway_toml("sms"), "sms = [\"sms\"]", extra);
    let server = Server::start(&env);
    let api = server.api(&env.channel_key);
    (sms, env, server, api)
}

/// The challenge's delivery status once it is no longer `pending` (bounded wait).
async fn settled_delivery(api: &Api, id: &str) -> Value {
    let path = format!("/v1/challenges/{id}");
    for _ in 0..200 {
        let state = api.get(&path).await.1;
        if state["delivery_status"] != "pending" {
            return state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("delivery of {id} never settled");
}

async fn challenge(api: &Api, body: Value) -> Value {
    let (status, v) = api.post("/v1/challenges", body).await;
    assert_eq!(status.as_u16(), 201, "{v}");
    v
}

async fn verify(api: &Api, id: &str, otp: &str) -> String {
    let (status, v) = api
        .post(&format!("/v1/challenges/{id}/verify"), json!({"otp": otp}))
        .await;
    assert_eq!(status.as_u16(), 200, "{v}");
    v["result"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_code_reaches_the_phone_and_is_accepted_once() {
    let sms = HttpPeer::start().await;
    let env = env_with(&sms.gateway_toml("sms-main"), "sms = [\"sms-main\"]", "");
    let server = Server::start(&env);
    let api = server.api(&env.channel_key);
    let (status, user) = api
        .send(
            reqwest::Method::PUT,
            "/v1/users/alice",
            Some(json!({"phone": "+34 600 123 456"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), user["phone"].as_str()),
        (201, Some("+34600123456"))
    );
    let c = challenge(
        &api,
        json!({"user": "alice", "delivery": "sms", "app": "Acme Pay"}),
    )
    .await;
    assert_eq!(c["delivery_status"], "pending");
    assert!(c.get("otp").is_none(), "never in the answer for sms");
    let id = c["id"].as_str().unwrap();

    let delivered = sms.wait_delivered(1).await;
    let body: Value = serde_json::from_str(&delivered[0]).unwrap();
    assert_eq!(body["to"], "+34600123456");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("Your Acme Pay verification code is "),
        "{text}"
    );
    assert!(text.ends_with("It expires in 10 minutes."), "{text}");
    let code = code_in(text, 6);

    let state = settled_delivery(&api, id).await;
    assert_eq!(state["delivery_status"], "sent", "{state}");
    assert!(!state.to_string().contains(&code));

    let wrong = if code == "000000" { "000001" } else { "000000" };
    assert_eq!(verify(&api, id, wrong).await, "reject");
    assert_eq!(verify(&api, id, &code).await, "accept");
    assert_eq!(verify(&api, id, &code).await, "used");
    let audit = env.sql(&format!(
        "SELECT string_agg(action || ':' || result, ',' ORDER BY id) FROM audit_log \
         WHERE challenge_id = '{id}'"
    ));
    assert_eq!(
        audit,
        "challenge.create:ok,challenge.verify:reject,challenge.verify:accept,challenge.verify:used"
    );
    // Promise 9 on the delivery path: no code, message text or provider credential logged.
    let log = server.log_text();
    assert!(
        log.contains("message delivered"),
        "the worker logs its work"
    );
    for secret in [
        code.as_str(),
        "verification code is",
        "provider-secret-token",
    ] {
        assert!(!log.contains(secret), "the log contains {secret:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_codes_lock_a_challenge_and_a_short_ttl_expires_it() {
    let (sms, _env, _server, api) = with_sms("").await;
    let c = challenge(
        &api,
        json!({"destination": "+14155550100", "delivery": "sms"}),
    )
    .await;
    let id = c["id"].as_str().unwrap();
    let code = code_in(&text_of(&sms.wait_delivered(1).await[0]), 6);
    let wrong = if code == "999999" { "999998" } else { "999999" };
    for _ in 0..5 {
        assert_eq!(verify(&api, id, wrong).await, "reject");
    }
    assert_eq!(verify(&api, id, &code).await, "locked");

    let short = challenge(
        &api,
        json!({"destination": "+14155550101", "delivery": "sms", "ttl_seconds": 2}),
    )
    .await;
    let code = code_in(&text_of(&sms.wait_delivered(2).await[1]), 6);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        verify(&api, short["id"].as_str().unwrap(), &code).await,
        "expired"
    );
}

/// A challenge lives its whole lifetime, whatever the fraction of the second it was made
/// in. (Its expiry was once counted from the start of that second, so a 1 s code lived
/// between 0 and 1 s, and its message could expire before the worker picked it up.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_expires_no_sooner_than_its_lifetime_after_the_request() {
    let (sms, _env, _server, api) = with_sms("").await;
    for ttl in [1, 7, 60] {
        let before = chrono::Utc::now();
        let c = challenge(
            &api,
            json!({"destination": "+14155550100", "delivery": "sms", "ttl_seconds": ttl}),
        )
        .await;
        let after = chrono::Utc::now();
        let expires: chrono::DateTime<chrono::Utc> =
            c["expires_at"].as_str().unwrap().parse().unwrap();
        let lifetime = chrono::Duration::seconds(ttl);
        assert!(
            expires >= before + lifetime,
            "{expires} < {before} + {ttl} s"
        );
        assert!(expires <= after + lifetime, "{expires} > {after} + {ttl} s");
    }
    assert_eq!(sms.wait_delivered(3).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_answering_503_twice_then_200_delivers_the_message_once() {
    let (sms, _env, server, api) = with_sms("").await;
    sms.script(&[503, 503]);
    let c = challenge(
        &api,
        json!({"destination": "+14155550100", "delivery": "sms"}),
    )
    .await;
    let delivered = sms.wait_delivered(1).await;
    let statuses: Vec<u16> = sms.requests.lock().unwrap().iter().map(|r| r.0).collect();
    assert_eq!(statuses, [503, 503, 200]);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        sms.requests.lock().unwrap().len(),
        3,
        "delivered once, not again"
    );
    let code = code_in(&text_of(&delivered[0]), 6);
    assert_eq!(
        verify(&api, c["id"].as_str().unwrap(), &code).await,
        "accept"
    );
    let (_, metrics) = server.operator_get("/metrics").await;
    assert!(
        metrics.contains(r#"hsm_otp_deliveries_total{gateway="sms",outcome="retry"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"hsm_otp_deliveries_total{gateway="sms",outcome="sent"} 1"#));
    assert!(metrics.contains(r#"hsm_otp_challenges_created_total{delivery="sms"} 1"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_first_gateway_is_down_the_second_delivers() {
    let backup = HttpPeer::start().await;
    let down = "[gateways.primary]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/send\"\n\
                body = '{\"to\": \"{to}\", \"text\": \"{message}\"}'\n";
    let env = env_with(
        &format!("{down}\n{}", backup.gateway_toml("backup")),
        "sms = [\"primary\", \"backup\"]",
        "",
    );
    let server = Server::start(&env);
    let api = server.api(&env.channel_key);
    challenge(
        &api,
        json!({"destination": "+14155550100", "delivery": "sms"}),
    )
    .await;
    backup.wait_delivered(1).await;
    let sent_via = env.sql("SELECT sent_via || ':' || attempts FROM outbox");
    assert_eq!(sent_via, "backup:2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_by_the_only_gateway_is_recorded_as_failed() {
    let (sms, env, _server, api) = with_sms("").await;
    sms.script(&[400]);
    let c = challenge(
        &api,
        json!({"destination": "+14155550100", "delivery": "sms"}),
    )
    .await;
    let state = settled_delivery(&api, c["id"].as_str().unwrap()).await;
    assert_eq!(state["delivery_status"], "failed");
    assert_eq!(env.sql("SELECT last_error FROM outbox"), "sms: HTTP 400");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_pending_when_the_service_is_killed_are_delivered_after_a_restart() {
    let (sms, env, mut server, api) = with_sms("").await;
    sms.answer_always(503);
    for n in 0..3 {
        challenge(
            &api,
            json!({"destination": format!("+1415555010{n}"), "delivery": "sms"}),
        )
        .await;
    }
    sms.wait_requests(3).await;
    server.stop(); // SIGKILL
    assert_eq!(
        env.sql("SELECT count(*) FROM outbox WHERE status = 'pending'"),
        "3"
    );
    // A message whose attempt was in flight at the kill stays claimed for the lease (60 s)
    // before another node may try it: the test ends those leases instead of waiting them
    // out (under a loaded machine the kill often lands mid-attempt).
    env.sql("UPDATE outbox SET next_attempt_at = now() WHERE next_attempt_at > now()");
    sms.recover();
    let _restarted = Server::start(&env);
    let delivered = sms.wait_delivered(3).await;
    let mut to: Vec<String> = delivered
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["to"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    to.sort();
    to.dedup();
    assert_eq!(to, ["+14155550100", "+14155550101", "+14155550102"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dump_holds_neither_the_code_nor_the_message_text() {
    let (sms, env, _server, api) = with_sms("").await;
    sms.answer_always(503);
    challenge(
        &api,
        json!({"destination": "+14155550100", "delivery": "sms", "digits": 10}),
    )
    .await;
    // The provider sees the text even while it refuses it.
    let text = text_of(&sms.wait_requests(1).await[0].1);
    let code = code_in(&text, 10);
    let dump = || env.pg_dump();
    let pending = dump();
    assert!(
        pending.contains("+14155550100"),
        "the dump holds the challenge"
    );
    assert!(
        !pending.contains(&code) && !pending.contains("verification code"),
        "while pending"
    );
    sms.recover();
    sms.wait_delivered(1).await;
    crate::helpers::peers::wait_for(|| {
        (env.sql("SELECT count(*) FROM outbox WHERE sealed_message IS NULL") == "1").then_some(())
    })
    .await;
    let sent = dump();
    assert!(
        !sent.contains(&code) && !sent.contains("verification code"),
        "once sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_challenges_for_one_destination_are_refused_429() {
    let (_sms, _env, _server, api) = with_sms("[challenges]\nper_destination_limit = 2\n").await;
    let body = json!({"destination": "+14155550100", "delivery": "sms"});
    challenge(&api, body.clone()).await;
    challenge(&api, body.clone()).await;
    let (status, v) = api.post("/v1/challenges", body).await;
    assert_eq!(
        (status.as_u16(), v["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    // Another destination is not affected.
    challenge(
        &api,
        json!({"destination": "+14155550199", "delivery": "sms"}),
    )
    .await;
}

/// Both limits hold when creations arrive at once, through two server processes: one
/// channel's creations take turns, so no count misses a creation still in flight. Each of
/// three channels, one after the other, gets its own count (and the race three chances).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creations_through_two_processes_stop_at_the_limits() {
    let env = Env::with_config(
        "[challenges]\nper_destination_limit = 3\nper_channel_limit = 7\n".to_owned(),
    );
    let keys: Vec<_> = (0..3)
        .map(|n| env.create_channel(&format!("ivr{n}"), &["--may-receive-otp"]))
        .collect();
    let (first, second) = (Server::start(&env), Server::start(&env));
    for (n, key) in keys.iter().enumerate() {
        let apis = [first.api(key), second.api(key)];
        // 12 for one destination, 24 for a destination each.
        let tasks: Vec<_> = (0..36)
            .map(|i| {
                let api = apis[i % 2].clone();
                let destination = if i % 3 == 0 {
                    "+14155550100".to_owned()
                } else {
                    format!("+141555502{i:02}")
                };
                let body = json!({"destination": destination.clone(), "delivery": "response"});
                tokio::spawn(async move { (destination, api.post("/v1/challenges", body).await) })
            })
            .collect();
        let (mut created, mut shared) = (0, 0);
        for task in tasks {
            let (destination, (status, v)) = task.await.unwrap();
            match (status.as_u16(), v["error"]["code"].as_str()) {
                (201, _) => {
                    created += 1;
                    shared += usize::from(destination == "+14155550100");
                }
                (429, Some("rate_limited")) => {}
                other => panic!("channel {n}: unexpected {other:?}: {v}"),
            }
        }
        assert_eq!(created, 7, "channel {n}: the channel's limit");
        assert!(
            shared <= 3,
            "channel {n}: the destination's limit: {shared} created"
        );
        assert_eq!(
            env.sql(&format!(
                "SELECT count(*) FROM challenges c JOIN channels ch ON ch.id = c.channel_id \
                 WHERE ch.name = 'ivr{n}'"
            )),
            "7"
        );
    }
}

/// The channel's window slides: a creation counts against the limit for the window (and
/// less than a second more, its counting interval), then no longer.
#[tokio::test]
async fn a_channel_creates_again_once_its_window_has_passed() {
    let env = Env::with_config(
        "[challenges]\nper_channel_limit = 2\nper_channel_window_seconds = 2\n".to_owned(),
    );
    let key = env.create_channel("ivr", &["--may-receive-otp"]);
    let server = Server::start(&env);
    let api = server.api(&key);
    let create = |n: u32| {
        let api = api.clone();
        async move {
            let body = json!({"destination": format!("+1415555010{n}"), "delivery": "response"});
            api.post("/v1/challenges", body).await.0.as_u16()
        }
    };
    assert_eq!(
        (create(0).await, create(1).await, create(2).await),
        (201, 201, 429)
    );
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    assert_eq!(
        (create(3).await, create(4).await, create(5).await),
        (201, 201, 429)
    );
}

/// A creation the destination's limit refuses spends neither the channel's count nor its
/// message budget: both are taken first, and given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_refused_for_its_destination_costs_the_channel_nothing() {
    let sms = HttpPeer::start().await;
    let env = env_with(
        &sms.gateway_toml("sms"),
        "sms = [\"sms\"]",
        "[challenges]\nper_destination_limit = 1\nper_channel_limit = 2\n",
    );
    let key = env.create_channel("metered", &["--message-budget", "2"]);
    let server = Server::start(&env);
    let api = server.api(&key);
    let mut answers = Vec::new();
    for destination in [
        "+14155550100",
        "+14155550100",
        "+14155550100",
        "+14155550101",
        "+14155550102",
    ] {
        let body = json!({"destination": destination, "delivery": "sms"});
        let (status, v) = api.post("/v1/challenges", body).await;
        answers.push((
            status.as_u16(),
            v["error"]["code"].as_str().map(str::to_owned),
        ));
    }
    let limited = || (429, Some("rate_limited".to_owned()));
    assert_eq!(
        answers,
        [(201, None), limited(), limited(), (201, None), limited()],
        "the second destination is created with the channel's second count and budget unit; \
         the third is over the channel's limit"
    );
    assert_eq!(
        env.sql("SELECT message_budget FROM channels WHERE name = 'metered'"),
        "0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_message_budget_is_refused() {
    let sms = HttpPeer::start().await;
    let env = env_with(&sms.gateway_toml("sms"), "sms = [\"sms\"]", "");
    let key = env.create_channel("metered", &["--message-budget", "1"]);
    let server = Server::start(&env);
    let api = server.api(&key);
    challenge(
        &api,
        json!({"destination": "+14155550100", "delivery": "sms"}),
    )
    .await;
    let (status, v) = api
        .post(
            "/v1/challenges",
            json!({"destination": "+14155550101", "delivery": "sms"}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), v["error"]["code"].as_str()),
        (429, Some("budget_exhausted"))
    );
}

#[tokio::test]
async fn codes_are_returned_only_to_channels_allowed_to_receive_them() {
    let env = Env::new();
    let ivr = env.create_channel("ivr", &["--may-receive-otp"]);
    let server = Server::start(&env);
    let body = json!({"user": "bob", "destination": "+14155550100", "delivery": "response"});
    let (status, v) = server
        .api(&env.channel_key)
        .post("/v1/challenges", body.clone())
        .await;
    assert_eq!(
        (status.as_u16(), v["error"]["code"].as_str()),
        (403, Some("otp_not_allowed"))
    );
    let api = server.api(&ivr);
    let c = challenge(&api, body).await;
    let otp = c["otp"].as_str().unwrap().to_owned();
    assert_eq!(
        (otp.len(), c["delivery_status"].as_str()),
        (6, Some("returned"))
    );
    // The user logs in with the code: the user verification accepts it once.
    assert_eq!(api.verify_user("bob", &otp).await, "accept");
    let (_, again) = api.post("/v1/users/bob/verify", json!({"otp": otp})).await;
    assert_ne!(again["result"], "accept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_code_arrives_by_smtp_and_is_verified_by_destination() {
    let smtp = SmtpPeer::start().await;
    let env = env_with(&smtp.gateway_toml("mail"), "email = [\"mail\"]", "");
    let server = Server::start(&env);
    let api = server.api(&env.channel_key);
    api.send(
        reqwest::Method::PUT,
        "/v1/users/carol",
        Some(json!({"email": "Carol@Example.ORG"})),
    )
    .await;
    challenge(
        &api,
        json!({"user": "carol", "delivery": "email", "app": "Portal"}),
    )
    .await;
    let (rcpt, data) = smtp.wait_messages(1).await.remove(0);
    assert!(rcpt.contains("carol@example.org"), "{rcpt}");
    assert!(data.contains("Subject: Verification code"), "{data}");
    let code = code_in(data.split("\r\n\r\n").nth(1).unwrap(), 6);
    let verify = |otp: String| {
        let api = api.clone();
        async move {
            api.post(
                "/v1/challenges/verify",
                json!({"destination": "carol@example.org", "otp": otp}),
            )
            .await
            .1["result"]
                .clone()
        }
    };
    assert_eq!(verify(code.clone()).await, "accept");
    assert_eq!(verify(code).await, "used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_template_and_the_spanish_built_in_shape_the_message() {
    let sms = HttpPeer::start().await;
    let env = env_with(&sms.gateway_toml("sms"), "sms = [\"sms\"]", "");
    let ref_id = env.create_template("app", "en_US", "{app}: {otp} ({minutes} min)");
    let server = Server::start(&env);
    let api = server.api(&env.channel_key);
    challenge(&api, json!({"destination": "+14155550100", "delivery": "sms", "template": ref_id, "app": "Acme", "ttl_seconds": 300})).await;
    let text = text_of(&sms.wait_delivered(1).await[0]);
    assert_eq!(text, format!("Acme: {} (5 min)", code_in(&text, 6)));
    challenge(
        &api,
        json!({"destination": "+14155550101", "delivery": "sms", "lang": "es_ES"}),
    )
    .await;
    let text = text_of(&sms.wait_delivered(2).await[1]);
    assert!(text.starts_with("Su código de verificación es "), "{text}");
}

#[tokio::test]
async fn the_user_directory_normalises_and_refuses_bad_contacts() {
    let env = Env::new();
    let server = Server::start(&env);
    let api = server.api(&env.channel_key);
    let put = |body: Value| {
        let api = api.clone();
        async move {
            api.send(reqwest::Method::PUT, "/v1/users/dan", Some(body))
                .await
        }
    };
    let (status, v) = put(json!({"phone": "966501234567"})).await;
    assert_eq!(
        (status.as_u16(), v["phone"].as_str()),
        (201, Some("+966501234567"))
    );
    let (status, _) = put(json!({"phone": "+966501234567", "email": "dan@example.com"})).await;
    assert_eq!(status.as_u16(), 200, "replaced");
    for bad in [
        json!({"phone": "12ab"}),
        json!({"email": "not-an-address"}),
        json!({"fax": "1"}),
    ] {
        let (status, v) = put(bad.clone()).await;
        assert_eq!(
            (status.as_u16(), v["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{bad}"
        );
    }
    let (_, v) = api.get("/v1/users/dan").await;
    assert_eq!(v["email"], "dan@example.com");
    let (status, _) = api
        .send(reqwest::Method::DELETE, "/v1/users/dan", None)
        .await;
    assert_eq!(status.as_u16(), 204);
    let (status, v) = api.get("/v1/users/dan").await;
    assert_eq!(
        (status.as_u16(), v["error"]["code"].as_str()),
        (404, Some("user_not_found"))
    );
    let (status, v) = api
        .post("/v1/challenges", json!({"user": "dan", "delivery": "sms"}))
        .await;
    assert_eq!(
        (status.as_u16(), v["error"]["code"].as_str()),
        (404, Some("user_not_found"))
    );
}

/// Challenge verifications run on the HTTP workers and read their challenge with other
/// verifications' lookups (one grouped statement): sent at once from two channels with the
/// same destinations, each finds its own channel's challenge, by id and by destination, and
/// by destination the newest of the app it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_challenge_verifications_each_find_their_own_challenge() {
    const DESTINATIONS: usize = 6;
    let env = Env::new();
    let (a_key, b_key) = (
        env.create_channel("a", &["--may-receive-otp"]),
        env.create_channel("b", &["--may-receive-otp"]),
    );
    let server = Server::start(&env);
    let (a, b) = (server.api(&a_key), server.api(&b_key));
    let destination = |n: usize| format!("+1415555020{n}");
    // In a: an "x" challenge, then a newer "y" one, per destination; in b: one without app.
    let mut issued = Vec::new();
    for n in 0..DESTINATIONS {
        let mut codes = Vec::new();
        for (api, app) in [(&a, Some("x")), (&a, Some("y")), (&b, None)] {
            let mut body = json!({"destination": destination(n), "delivery": "response"});
            if let Some(app) = app {
                body["app"] = json!(app);
            }
            let c = challenge(api, body).await;
            let (id, otp) = (c["id"].as_str().unwrap(), c["otp"].as_str().unwrap());
            codes.push((id.to_owned(), otp.to_owned()));
        }
        issued.push(codes);
    }
    // (client, path, body, expected status, expected result)
    let mut cases: Vec<(Api, String, Value, u16, &str)> = Vec::new();
    for (n, codes) in issued.iter().enumerate() {
        let [(_, x_code), (y_id, y_code), (b_id, b_code)] = codes.as_slice() else {
            unreachable!()
        };
        let by_destination = "/v1/challenges/verify".to_owned();
        cases.push((
            a.clone(),
            by_destination.clone(),
            json!({"destination": destination(n), "app": "x", "otp": x_code}),
            200,
            "accept",
        ));
        cases.push((
            b.clone(),
            by_destination,
            json!({"destination": destination(n), "otp": b_code}),
            200,
            "accept",
        ));
        cases.push((
            a.clone(),
            format!("/v1/challenges/{y_id}/verify"),
            json!({"otp": y_code}),
            200,
            "accept",
        ));
        // Another channel's challenge, by id: not found, whatever the code.
        cases.push((
            a.clone(),
            format!("/v1/challenges/{b_id}/verify"),
            json!({"otp": b_code}),
            404,
            "",
        ));
    }
    let tasks: Vec<_> = cases
        .into_iter()
        .map(|(api, path, body, status, result)| {
            tokio::spawn(async move {
                let (got, v) = api.post(&path, body).await;
                let got_result = v["result"].as_str().unwrap_or_default().to_owned();
                assert_eq!(
                    (got.as_u16(), got_result.as_str()),
                    (status, result),
                    "{path}: {v}"
                );
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Each code was used once: again by destination, b's newest is used.
    let (_, v) = b
        .post(
            "/v1/challenges/verify",
            json!({"destination": destination(0), "otp": issued[0][2].1}),
        )
        .await;
    assert_eq!(v["result"], "used", "{v}");
}
