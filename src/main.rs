//! The `hsm-otp` binary: parse the command line, run it, map the outcome to an exit code.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = hsm_otp::cli::Cli::parse();
    if let Err(e) = hsm_otp::cli::run(cli) {
        eprintln!("hsm-otp: {e}");
        std::process::exit(e.exit_code());
    }
}
