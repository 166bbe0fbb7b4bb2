//! The OATH core with the software reference MAC: the cost of the math alone.

use criterion::{criterion_group, criterion_main, Criterion};
use hsm_otp::domain::{Algorithm, Digits, Otp};
use hsm_otp::oath::soft::SoftMac;
use hsm_otp::oath::{hotp, window};

fn bench(c: &mut Criterion) {
    let mut mac = SoftMac::new(Algorithm::Sha1, b"12345678901234567890");
    c.bench_function("oath/hotp_sha1", |b| {
        let mut counter = 0u64;
        b.iter(|| {
            counter += 1;
            hotp(&mut mac, counter, Digits::SIX)
        })
    });
    let miss = Otp::from_value(999_999, Digits::SIX);
    c.bench_function("oath/window_miss_11_candidates", |b| {
        b.iter(|| {
            window::find(
                &mut mac,
                &miss,
                Digits::SIX,
                window::hotp_window(1000, 10, 0),
                1000,
            )
        })
    });
    let mut mac512 = SoftMac::new(Algorithm::Sha512, &[7u8; 64]);
    c.bench_function("oath/hotp_sha512", |b| {
        b.iter(|| hotp(&mut mac512, 42, Digits::SIX))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
