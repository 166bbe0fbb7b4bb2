//! Promise 4: every code is accepted at most once, under concurrency and across processes.

use hsm_otp::oath::vectors::RFC4226_CODES;

use crate::helpers::{in_both_modes, start, Env, Server};

/// Sends `n` verifications of `code` at once through the given clients; counts results.
async fn race(apis: &[crate::helpers::app::Api], id: &str, code: &str, n: usize) -> (usize, usize) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let api = apis[i % apis.len()].clone();
        let (id, code) = (id.to_owned(), code.to_owned());
        tasks.push(tokio::spawn(async move { api.verify(&id, &code).await }));
    }
    let mut accepts = 0;
    let mut replays = 0;
    for t in tasks {
        match t.await.unwrap().as_str() {
            "accept" => accepts += 1,
            "replay" => replays += 1,
            other => panic!("unexpected result {other}"),
        }
    }
    (accepts, replays)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_verifications_of_one_code_accept_exactly_once() {
    in_both_modes(|mode| async move {
        let (env, _server, api) = start(mode);
        let id = api.enrol_rfc_hotp("alice").await;
        for code in &RFC4226_CODES[..3] {
            let (accepts, replays) = race(std::slice::from_ref(&api), &id, code, 32).await;
            assert_eq!((accepts, replays), (1, 31), "{mode}");
        }
        let accepted = env.sql(&format!(
            "SELECT count(*) FROM audit_log WHERE token_id = '{id}' AND result = 'accept'"
        ));
        assert_eq!(accepted, "3", "one audit row per accept");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_server_processes_on_one_database_and_token_accept_a_code_once() {
    in_both_modes(|mode| async move {
        let env = Env::in_mode(mode);
        let first = Server::start(&env);
        let second = Server::start(&env);
        let apis = [first.api(&env.channel_key), second.api(&env.channel_key)];
        // Enrolled through one process, verified through both.
        let id = apis[0].enrol_rfc_hotp("bob").await;
        for code in &RFC4226_CODES[..3] {
            let (accepts, replays) = race(&apis, &id, code, 32).await;
            assert_eq!((accepts, replays), (1, 31), "{mode}");
        }
    })
    .await;
}

/// Group commit: many verifications in flight at once are settled together, yet each token
/// accepts its code once, and every accept is already committed, with its audit row, when
/// its answer arrives (promises 4 and 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifications_of_many_tokens_are_each_durable_when_answered() {
    let (env, _server, api) = start("wrapped");
    let mut ids = Vec::new();
    for n in 0..24 {
        ids.push(api.enrol_rfc_hotp(&format!("user{n}")).await);
    }
    let env = std::sync::Arc::new(env);
    let mut tasks = Vec::new();
    for id in &ids {
        // Two requests per token, the right code each time: one accepts, one is a replay.
        for _ in 0..2 {
            let (api, env, id) = (api.clone(), env.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                let result = api.verify(&id, RFC4226_CODES[0]).await;
                if result == "accept" {
                    // Read at once, from another connection: the accept is already committed.
                    let seen = tokio::task::spawn_blocking(move || {
                        env.sql(&format!(
                            "SELECT t.next_factor || ':' || count(a.id) FROM tokens t \
                             JOIN audit_log a ON a.token_id = t.id AND a.result = 'accept' \
                             WHERE t.id = '{id}' GROUP BY t.next_factor"
                        ))
                    })
                    .await
                    .unwrap();
                    assert_eq!(seen, "1:1", "durable before the answer");
                }
                result
            }));
        }
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let accepts = results.iter().filter(|r| *r == "accept").count();
    let replays = results.iter().filter(|r| *r == "replay").count();
    assert_eq!((accepts, replays), (24, 24));
    assert_eq!(
        env.sql("SELECT count(*) FROM audit_log WHERE action = 'verify'"),
        "48",
        "an audit row for every answer"
    );
}

/// With group commit switched off (`group_commit = false`, for comparison runs), each
/// verification commits alone, with the same guarantees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_group_commit_a_code_is_still_accepted_once() {
    let env = Env::with(crate::helpers::EnvOptions {
        settings: vec![("HSM_OTP_GROUP_COMMIT".into(), "false".into())],
        ..Default::default()
    });
    let server = Server::start(&env);
    let api = server.api(&env.channel_key);
    let id = api.enrol_rfc_hotp("carol").await;
    let (accepts, replays) = race(std::slice::from_ref(&api), &id, RFC4226_CODES[0], 16).await;
    assert_eq!((accepts, replays), (1, 15));
    let (_, metrics) = server.operator_get("/metrics").await;
    let batches = metrics
        .lines()
        .find(|l| l.starts_with("hsm_otp_commit_batch_size_bucket{le=\"1\"}"))
        .unwrap();
    assert!(
        batches.ends_with(" 16"),
        "every outcome committed alone: {batches}"
    );
}

/// Callers are authenticated together (one channel lookup for every request ready), yet each
/// is answered as its own channel: its own tokens verify, another channel's are not found, an
/// unknown key is refused — all in flight at once (promise 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_of_two_channels_each_act_as_their_own_channel() {
    let env = Env::new();
    let other_key = env.create_channel("other", &[]);
    let server = Server::start(&env);
    let apis = [server.api(&env.channel_key), server.api(&other_key)];
    let stranger = server.api("hok_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let mut ids: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for (side, api) in apis.iter().enumerate() {
        for n in 0..8 {
            ids[side].push(api.enrol_rfc_hotp(&format!("user{n}")).await);
        }
    }
    let mut tasks = Vec::new();
    for (side, own) in ids.iter().enumerate() {
        for id in own {
            for (caller, api) in apis.iter().chain([&stranger]).enumerate() {
                let (api, id) = (api.clone(), id.clone());
                tasks.push(tokio::spawn(async move {
                    let (status, v) = api
                        .post(
                            &format!("/v1/tokens/{id}/verify"),
                            serde_json::json!({"otp": RFC4226_CODES[0]}),
                        )
                        .await;
                    let answer = v["result"]
                        .as_str()
                        .or(v["error"]["code"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                    (side, caller, status.as_u16(), answer)
                }));
            }
        }
    }
    for t in tasks {
        let (side, caller, status, answer) = t.await.unwrap();
        let expected = match caller {
            2 => (401, "unauthenticated"),
            c if c == side => (200, "accept"),
            _ => (404, "token_not_found"),
        };
        assert_eq!(
            (status, answer.as_str()),
            expected,
            "token of channel {side} verified by caller {caller}"
        );
    }
    assert_eq!(
        env.sql(
            "SELECT count(*) FROM audit_log a JOIN tokens t ON t.id = a.token_id \
             WHERE a.action = 'verify' AND a.channel_id = t.channel_id AND a.result = 'accept'"
        ),
        "16",
        "each accept recorded under the token's own channel"
    );
}

/// A challenge's code, sent many times at once through two server processes, by challenge id
/// and by user id (the form the wire-compatible APIs use), is accepted once: the conditional
/// update in the group commit decides (promise 4), and one audit row records the accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_challenge_code_sent_at_once_by_id_and_by_user_through_two_processes_is_accepted_once() {
    let env = Env::new();
    let ivr = env.create_channel("ivr", &["--may-receive-otp"]);
    let (first, second) = (Server::start(&env), Server::start(&env));
    let apis = [first.api(&ivr), second.api(&ivr)];
    for round in 0..3 {
        let body = serde_json::json!({"user": "bob", "destination": format!("+1415555010{round}"),
                                      "delivery": "response"});
        let (status, c) = apis[0].post("/v1/challenges", body).await;
        assert_eq!(status.as_u16(), 201, "{c}");
        let (id, code) = (c["id"].as_str().unwrap(), c["otp"].as_str().unwrap());
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let api = apis[i % 2].clone();
                let path = if i % 4 < 2 {
                    format!("/v1/challenges/{id}/verify")
                } else {
                    "/v1/users/bob/verify".to_owned()
                };
                let body = serde_json::json!({"otp": code});
                tokio::spawn(async move { api.post(&path, body).await })
            })
            .collect();
        let mut accepts = 0;
        for task in tasks {
            let (status, v) = task.await.unwrap();
            match (
                status.as_u16(),
                v["result"].as_str(),
                v["error"]["code"].as_str(),
            ) {
                (200, Some("accept"), _) => accepts += 1,
                (200, Some("used"), _) => {}
                // Once the code is used, bob (not in the directory) has nothing open.
                (404, _, Some("user_not_found")) => {}
                other => panic!("round {round}: unexpected {other:?}: {v}"),
            }
        }
        assert_eq!(accepts, 1, "round {round}");
        let accepted = env.sql(&format!(
            "SELECT count(*) FROM audit_log WHERE challenge_id = '{id}' AND result = 'accept'"
        ));
        assert_eq!(accepted, "1", "round {round}: one audit row for the accept");
    }
}
