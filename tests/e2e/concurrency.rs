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
