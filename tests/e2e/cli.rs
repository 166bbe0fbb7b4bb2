//! The admin CLI and `hsm-otp dev`.

use serde_json::Value;

use crate::helpers::Env;

fn json_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn channel_create_shows_the_key_once_and_stores_only_its_mac() {
    let env = Env::new();
    let created = json_of(&env.cli(&[
        "channel",
        "create",
        "mobile-app",
        "--json",
        "--allow-ip",
        "10.1.2.3",
    ]));
    let key = created["channel_key"].as_str().unwrap();
    assert!(key.starts_with("hok_") && key.len() >= 36, "{key}");
    assert_eq!(created["allowed_networks"][0], "10.1.2.3/32");
    let listed = json_of(&env.cli(&["channel", "list", "--json"]));
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "mobile-app"]);
    assert!(!listed.to_string().contains(key), "list never shows a key");
    let stored = env.sql("SELECT encode(key_mac, 'hex') FROM channels WHERE name = 'mobile-app'");
    assert_eq!(stored.len(), 64, "an HMAC-SHA256");
    assert!(!stored.contains(&hex::encode(key.as_bytes())[..16]));
    let audit = env.sql("SELECT count(*) FROM audit_log WHERE action = 'channel.create'");
    assert_eq!(audit, "2");
}

#[test]
fn channel_commands_refuse_bad_input_with_a_clear_message() {
    let env = Env::new();
    for (args, needle) in [
        (vec!["channel", "create", "bad name"], "name"),
        (
            vec!["channel", "create", "x", "--allow-ip", "not-a-network"],
            "allow_ip",
        ),
        (
            vec!["channel", "create", "x", "--client-cert-sha256", "abc"],
            "client_cert_sha256",
        ),
        (vec!["channel", "create", "app"], "exists"),
        (vec!["channel", "rotate-key", "nobody"], "not found"),
    ] {
        let out = env.cli(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn serve_without_tls_settings_exits_2_naming_the_missing_keys() {
    let env = Env::new();
    let out = env
        .command()
        .arg("serve")
        .env_remove("HSM_OTP_TLS_CERT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HSM_OTP_TLS_CERT"));
    let out = env
        .command()
        .arg("serve")
        .env("HSM_OTP_SEEDSTORAGE", "object")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a misspelt setting is an error, not ignored"
    );
}

#[test]
fn dev_sets_up_a_complete_environment_once_and_reuses_it() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = || {
        let out = env
            .command()
            .current_dir(dir.path())
            .args(["dev", "--no-serve"])
            .env_remove("HSM_OTP_TOKEN_LABEL")
            .env_remove("HSM_OTP_USER_PIN")
            .env_remove("HSM_OTP_TLS_CERT")
            .env_remove("HSM_OTP_TLS_KEY")
            .env_remove("HSM_OTP_CLIENT_CA")
            .env_remove("SOFTHSM2_CONF")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = dev();
    assert!(
        first.contains("curl") && first.contains("X-Channel-Key"),
        "{first}"
    );
    let state = dir.path().join(".hsm-otp-dev");
    for file in [
        "ca.pem",
        "client.pem",
        "client.key",
        "server.pem",
        "server.key",
        "user.pin",
        "demo.channel-key",
    ] {
        assert!(state.join(file).exists(), "{file}");
    }
    let key = std::fs::read_to_string(state.join("demo.channel-key")).unwrap();
    let second = dev();
    assert_eq!(first, second, "a second run reuses everything");
    assert_eq!(
        key,
        std::fs::read_to_string(state.join("demo.channel-key")).unwrap()
    );
    let channels = env.sql("SELECT string_agg(name, ',' ORDER BY name) FROM channels");
    assert_eq!(channels, "app,demo");
}

#[test]
fn migrate_needs_only_the_database_url_and_is_idempotent() {
    let env = Env::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hsm-otp"))
        .args(["migrate", "--json"])
        .env_clear()
        .env("DATABASE_URL", &env.database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["applied"], serde_json::json!([]), "already up to date");
    // Token pages keep room for the next version of a row, so that counting a use or a
    // failure does not write an index entry (docs/performance.md, run H).
    assert_eq!(
        env.sql("SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = 'tokens'"),
        "fillfactor=90"
    );
}
