//! The operators' listener: Prometheus metrics that pass promtool, health and readiness.

use std::io::Write;
use std::process::{Command, Stdio};

use hsm_otp::oath::vectors::RFC4226_CODES;

use crate::helpers::{start, Env, Server};

#[tokio::test]
async fn metrics_pass_promtool_and_count_verifications_by_result() {
    let (_env, server, api) = start("wrapped");
    let id = api.enrol_rfc_hotp("alice").await;
    api.verify(&id, RFC4226_CODES[0]).await;
    api.verify(&id, RFC4226_CODES[0]).await;
    api.verify(&id, "000000").await;
    api.verify_user("alice", RFC4226_CODES[1]).await;

    let (status, text) = server.operator_get("/metrics").await;
    assert_eq!(status.as_u16(), 200);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed by .ci/install-deps");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        r#"hsm_otp_verifications_total{result="accept",target="token"} 1"#,
        r#"hsm_otp_verifications_total{result="replay",target="token"} 1"#,
        r#"hsm_otp_verifications_total{result="reject",target="token"} 1"#,
        r#"hsm_otp_verifications_total{result="accept",target="user"} 1"#,
        r#"hsm_otp_http_request_duration_seconds_count{method="POST",route="/v1/tokens/{id}/verify",status="200"} 3"#,
        r#"hsm_otp_hsm_operation_duration_seconds_count{operation="seed_hmac",outcome="ok"}"#,
        r#"hsm_otp_db_operation_duration_seconds_count{operation="settle_batch",outcome="ok"}"#,
        // Four verifications settled (alone or grouped), so four outcomes in the batches.
        "hsm_otp_commit_batch_size_sum 4",
        r#"hsm_otp_pool_connections{pool="hsm",state="idle"}"#,
        r#"hsm_otp_pool_connections{pool="database",state="busy"}"#,
    ] {
        assert!(text.contains(expected), "missing {expected}\n{text}");
    }
    assert!(!text.contains(&id), "no token id in a label");
}

#[tokio::test]
async fn health_and_readiness_answer_when_everything_is_up() {
    let env = Env::new();
    let server = Server::start(&env);
    let (status, body) = server.operator_get("/healthz").await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, r#"{"status":"alive"}"#)
    );
    let (status, body) = server.operator_get("/readyz").await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, r#"{"status":"ready"}"#)
    );
}
