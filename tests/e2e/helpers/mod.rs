//! The test harness: environments (token + database + PKI), servers and clients.

pub mod app;
mod env;
pub mod peers;
mod proxy;

pub use app::{Server, ServerOptions};
pub use env::{Env, EnvOptions};
pub use proxy::TcpProxy;

use hsm_otp::domain::{Algorithm, Digits};
use hsm_otp::oath::{self, soft::SoftMac, Period};

/// The RFC 4226 seed in hex.
pub const RFC_SEED_HEX: &str = "3132333435363738393031323334353637383930";

/// Both seed storage modes, for tests that must hold in each.
pub const MODES: [&str; 2] = ["wrapped", "object"];

/// The HOTP code of `seed` at `counter`, computed in software (the test's own reference).
pub fn hotp(seed: &[u8], alg: Algorithm, counter: u64, digits: u8) -> String {
    let mut mac = SoftMac::new(alg, seed);
    oath::hotp(&mut mac, counter, Digits::new(digits).unwrap())
        .unwrap()
        .expose()
        .to_owned()
}

/// The TOTP code of `seed` now.
pub fn totp_now(seed: &[u8], alg: Algorithm, digits: u8, period: u32) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    hotp(
        seed,
        alg,
        oath::time_step(now, Period::new(period).unwrap()),
        digits,
    )
}

/// A fresh environment in seed storage `mode`, its server, and a client of channel `app`.
/// (Bound in this order, they are dropped client first and environment last.)
pub fn start(mode: &'static str) -> (Env, Server, app::Api) {
    let env = Env::in_mode(mode);
    let server = Server::start(&env);
    let api = server.api(&env.channel_key);
    (env, server, api)
}

/// The base32 `secret` parameter of an `otpauth://` URI.
pub fn otpauth_secret(uri: &str) -> String {
    uri.split("secret=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .expect("an otpauth URI carries a secret")
        .to_owned()
}

/// Runs `f` once per seed storage mode.
pub async fn in_both_modes<F, Fut>(f: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for mode in MODES {
        f(mode).await;
    }
}
