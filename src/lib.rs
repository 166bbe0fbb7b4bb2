//! hsm-otp: an OATH (HOTP/TOTP) validation service whose seeds and keys live in a PKCS#11 HSM.
//!
//! See `README.md` for running it and `../shared/DESIGN.md` for the promises it keeps.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod hsm;
pub mod metrics;
pub mod oath;
pub mod pki;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
