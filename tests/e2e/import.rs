//! Bulk enrolment: `hsm-otp token import` of a seed file (the fast path for large fleets).

use hsm_otp::domain::Algorithm;
use serde_json::Value;

use crate::helpers::{hotp, in_both_modes, totp_now, Env, Server, RFC_SEED_HEX};

const SEED_256: &str = "3132333435363738393031323334353637383930313233343536373839303132";

fn import(env: &Env, contents: &str) -> std::process::Output {
    let file = env.dir.path().join("seeds.csv");
    std::fs::write(&file, contents).unwrap();
    env.import_seed_file(&file)
}

/// Asserts that an import failed, saying `needle`.
fn refused(out: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(needle), "{err}");
}

/// A seed file of `size` HOTP tokens, users `u0000`, `u0001`, ... (one seed for all).
fn fleet(env: &Env, size: usize) -> std::path::PathBuf {
    let file = env.dir.path().join("fleet.csv");
    let mut contents = String::from("user,seed_hex\n");
    for n in 0..size {
        contents.push_str(&format!("u{n:04},{RFC_SEED_HEX}\n"));
    }
    std::fs::write(&file, &contents).unwrap();
    file
}

fn token_id(env: &Env, user: &str) -> String {
    env.sql(&format!("SELECT id FROM tokens WHERE user_id = '{user}'"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_seed_file_enrols_tokens_whose_codes_verify_once() {
    in_both_modes(|mode| async move {
        let env = Env::in_mode(mode);
        let out = import(
            &env,
            &format!(
                "# exported by the token vendor\n\
                 user,type,seed_hex,algorithm,digits,period,counter\n\
                 alice,hotp,{RFC_SEED_HEX},SHA1,6,30,0\n\
                 \n\
                 bob,totp,{SEED_256},SHA256,8,60,0\n\
                 carol,hotp,{RFC_SEED_HEX},SHA1,6,30,5\n"
            ),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["imported"], 3, "{mode}");
        let request_id = report["request_id"].as_str().unwrap();

        let server = Server::start(&env);
        if mode == "object" {
            // Found in one search at start, so that no verification searches the token.
            let log = server.log_text();
            assert!(
                log.contains("seed objects indexed") && log.contains(r#""seed_objects":3"#),
                "{log}"
            );
        }
        let api = server.api(&env.channel_key);
        let rfc = hex::decode(RFC_SEED_HEX).unwrap();
        let alice = token_id(&env, "alice");
        let code = hotp(&rfc, Algorithm::Sha1, 0, 6);
        assert_eq!(api.verify(&alice, &code).await, "accept", "{mode}");
        assert_eq!(api.verify(&alice, &code).await, "replay", "{mode}");
        let seed = hex::decode(SEED_256).unwrap();
        let bob = token_id(&env, "bob");
        let code = totp_now(&seed, Algorithm::Sha256, 8, 60);
        assert_eq!(api.verify(&bob, &code).await, "accept", "{mode}");
        let carol = token_id(&env, "carol");
        let early = hotp(&rfc, Algorithm::Sha1, 2, 6);
        assert_eq!(
            api.verify(&carol, &early).await,
            "reject",
            "counter starts at 5"
        );
        let code = hotp(&rfc, Algorithm::Sha1, 5, 6);
        assert_eq!(api.verify(&carol, &code).await, "accept", "{mode}");

        let audited = env.sql(&format!(
            "SELECT count(*) FROM audit_log WHERE action = 'import' AND request_id = '{request_id}'"
        ));
        assert_eq!(audited, "3", "one audit row per imported token");
        let dump = env.pg_dump();
        assert!(!dump.contains(RFC_SEED_HEX) && !dump.contains(SEED_256));
        assert!(!dump.contains("12345678901234567890"));
    })
    .await;
}

#[test]
fn a_seed_file_with_a_bad_line_imports_nothing_and_never_echoes_a_seed() {
    let env = Env::new();
    let bad_seed = "c0ffee00c0ffee00c0ffee00c0ffee00zz";
    let out = import(
        &env,
        &format!(
            "user,seed_hex,digits\n\
             alice,{RFC_SEED_HEX},6\n\
             bob,{bad_seed},6\n\
             carol,{RFC_SEED_HEX},9\n\
             dave,{RFC_SEED_HEX}\n"
        ),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3: invalid seed_hex"), "{err}");
    assert!(err.contains("line 4: invalid digits"), "{err}");
    assert!(
        err.contains("line 5: 2 fields where the header has 3"),
        "{err}"
    );
    assert!(
        !err.contains("c0ffee") && !err.contains(RFC_SEED_HEX),
        "{err}"
    );
    assert_eq!(env.sql("SELECT count(*) FROM tokens"), "0");

    for (contents, needle) in [
        ("user,type\nalice,hotp\n", "seed_hex"),
        ("# only a comment\n", "empty"),
        ("user,seed_hex\n", "no tokens"),
    ] {
        let out = import(&env, contents);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{contents:?}: {err}");
    }
    let out = env.cli(&[
        "token",
        "import",
        "--channel",
        "nobody",
        "--file",
        "/nonexistent",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent"));
}

/// A seed file is imported once: run again, it is refused (two tokens with one seed would
/// each accept the same code). A run that stopped midway — here the database refuses a row
/// of the second transaction of 1,000 — is refused too, unless `--resume`, which imports the
/// rest: every user of the file ends with exactly one token.
#[test]
fn a_seed_file_is_imported_once_and_a_stopped_import_resumes_where_it_stopped() {
    let env = Env::new();
    let file = fleet(&env, 1_500);
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();
    let tokens = || env.sql("SELECT count(*) || ' ' || count(DISTINCT user_id) FROM tokens");
    env.sql(
        "CREATE FUNCTION refuse_u1199() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.user_id = 'u1199' THEN RAISE EXCEPTION 'refused for the test'; END IF; \
           RETURN NEW; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON tokens \
           FOR EACH ROW EXECUTE FUNCTION refuse_u1199()",
    );
    let out = env.import_seed_file(&file);
    refused(&out, "1000 of 1500 tokens are imported");
    refused(&out, "--resume");
    assert_eq!(tokens(), "1000 1000");
    env.sql("DROP TRIGGER refuse ON tokens");

    // Run again as before: refused, nothing written.
    refused(
        &env.import_seed_file(&file),
        "stopped after 1000 of 1500 tokens",
    );
    assert_eq!(tokens(), "1000 1000");

    // Resumed: the rest.
    let path = file.to_str().unwrap();
    let out = env.cli(&[
        "token",
        "import",
        "--channel",
        "app",
        "--file",
        path,
        "--resume",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["imported"].as_u64(), report["skipped"].as_u64()),
        (Some(500), Some(1000))
    );
    assert_eq!(tokens(), "1500 1500");

    // Done: refused, with or without --resume.
    for args in [&["--json"][..], &["--resume", "--json"][..]] {
        let mut all = vec!["token", "import", "--channel", "app", "--file", path];
        all.extend_from_slice(args);
        refused(&env.cli(&all), "imported into app before");
    }
    assert_eq!(tokens(), "1500 1500");
    let dump = env.pg_dump();
    assert!(
        !dump.contains(RFC_SEED_HEX),
        "the file is known by an HSM MAC only"
    );
}

/// Two runs of one import at once: one enrols the file, the other stops without enrolling a
/// token twice (the count each transaction moves is the arbiter).
#[test]
fn two_imports_of_one_file_at_once_enrol_each_token_once() {
    let env = Env::new();
    let file = fleet(&env, 3_000);
    let runs: Vec<std::process::Output> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| env.import_seed_file(&file)))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let succeeded = runs.iter().filter(|o| o.status.success()).count();
    assert_eq!(
        succeeded,
        1,
        "{:?}",
        runs.iter()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        env.sql("SELECT count(*) || ' ' || count(DISTINCT user_id) FROM tokens"),
        "3000 3000"
    );
}
