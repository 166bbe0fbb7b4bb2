//! Black-box tests: the real `hsm-otp` binary against a fresh SoftHSM token, a fresh
//! PostgreSQL database and a real mTLS client, one environment per test.
#![allow(unreachable_pub)]
// Tests compute TOTP codes for the real current time, as an authenticator app does.
#![allow(clippy::disallowed_methods)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod helpers;

mod bad_input;
mod challenges;
mod cli;
mod compat_mosip;
mod compat_mpass;
mod compat_phenixid;
mod compat_unityvox;
mod concurrency;
mod fail_closed;
mod hsm_secrets;
mod import;
mod metrics;
mod mtls;
mod native_verify;
mod no_secrets;
