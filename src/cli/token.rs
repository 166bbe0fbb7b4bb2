//! `hsm-otp token import`: bulk enrolment from a seed file.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Subcommand;
use serde_json::json;

use super::CliError;
use crate::config::Config;
use crate::service::{is_record, Enrolment, Error, SeedFile};

/// Records per transaction.
const BATCH: usize = 1_000;
/// Bad lines reported before giving up on a file.
const MAX_REPORTED: usize = 20;

/// Token administration.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Enrol every token of a seed file (CSV) into a channel. The whole file is checked
    /// before anything is written; then the seeds go into the HSM and the tokens into the
    /// database in transactions of 1,000. Header columns: `user`, `seed_hex` (required),
    /// `type` (hotp|totp), `algorithm` (SHA1|SHA256|SHA512), `digits`, `period`, `counter`,
    /// `issuer`.
    Import {
        /// The channel the tokens belong to.
        #[arg(long)]
        channel: String,
        /// The seed file. It holds secrets: keep it off shared disks and destroy it after.
        #[arg(long)]
        file: PathBuf,
        /// Imports the rest of a file whose import into the channel stopped midway (the
        /// file is known by its content). Without it, a file imported before, wholly or in
        /// part, is refused: no token is enrolled twice.
        #[arg(long)]
        resume: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a token command.
pub(super) fn run(command: TokenCommand, config: &Config) -> Result<(), CliError> {
    let TokenCommand::Import {
        channel,
        file,
        resume,
        json,
    } = command;
    let services = crate::startup::services(config)?;
    services
        .ensure_keys()
        .map_err(|e| CliError::Other(e.to_string()))?;
    let started = Instant::now();
    let (total, digest) = check_file(&file)?;
    let caller = services.import_caller(&channel, uuid::Uuid::new_v4())?;
    let at_once = |e: Error| match e {
        Error::Conflict => CliError::Other(format!(
            "another import of this seed file into {channel} ran at the same time"
        )),
        other => CliError::Service(other),
    };
    let mut progress = services
        .import_progress(&caller, &digest, total)
        .map_err(at_once)?;
    let skipped = progress.imported();
    if skipped == progress.total() {
        return Err(CliError::Other(format!(
            "this seed file was imported into {channel} before ({skipped} tokens); \
             nothing was imported"
        )));
    }
    if skipped > 0 && !resume {
        return Err(CliError::Other(format!(
            "an import of this seed file into {channel} stopped after {skipped} of {total} \
             tokens; nothing was imported (--resume imports the rest)"
        )));
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(config.hsm.max_sessions)
        .max(1);
    let mut imported = 0usize;
    let result = each_batch(&file, skipped, |batch| {
        imported += services
            .import_tokens(&caller, batch, threads, &mut progress)
            .map_err(at_once)?;
        Ok(())
    });
    if let Err(e) = result {
        return Err(CliError::Other(format!(
            "{e}; {} of {total} tokens are imported (request id {}); --resume imports the rest",
            progress.imported(),
            caller.request_id
        )));
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = imported as f64 / seconds.max(1e-9);
    if json {
        println!(
            "{}",
            json!({"channel": channel, "imported": imported, "skipped": skipped,
                   "seconds": seconds, "tokens_per_second": rate,
                   "request_id": caller.request_id})
        );
    } else {
        println!("imported {imported} tokens into {channel} in {seconds:.1} s ({rate:.0}/s)");
        if skipped > 0 {
            println!("{skipped} tokens of the file were imported before");
        }
    }
    Ok(())
}

fn open(path: &Path) -> Result<impl Iterator<Item = (usize, std::io::Result<String>)>, CliError> {
    let file = File::open(path).map_err(|e| CliError::Other(format!("{}: {e}", path.display())))?;
    Ok(BufReader::new(file)
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l)))
}

/// Reads the header of a seed file.
fn header(
    lines: &mut impl Iterator<Item = (usize, std::io::Result<String>)>,
) -> Result<SeedFile, CliError> {
    for (n, line) in lines.by_ref() {
        let line = line.map_err(|e| CliError::Other(format!("line {n}: {e}")))?;
        if is_record(&line) {
            return SeedFile::header(&line).map_err(|e| CliError::Other(format!("line {n}: {e}")));
        }
    }
    Err(CliError::Other("the seed file is empty".into()))
}

/// Checks every record; returns how many there are and the file's SHA-256, or the first bad
/// lines.
fn check_file(path: &Path) -> Result<(usize, [u8; 32]), CliError> {
    let mut lines = open(path)?;
    let file = header(&mut lines)?;
    let (mut count, mut bad) = (0usize, Vec::new());
    for (n, line) in lines {
        let line = line.map_err(|e| CliError::Other(format!("line {n}: {e}")))?;
        if !is_record(&line) {
            continue;
        }
        match file.record(&line) {
            Ok(_) => count += 1,
            Err(e) if bad.len() < MAX_REPORTED => bad.push(format!("line {n}: {e}")),
            Err(_) => {}
        }
    }
    if !bad.is_empty() {
        return Err(CliError::Other(format!(
            "the seed file has errors; nothing was imported:\n{}",
            bad.join("\n")
        )));
    }
    if count == 0 {
        return Err(CliError::Other("the seed file holds no tokens".into()));
    }
    Ok((count, sha256(path)?))
}

/// The SHA-256 of the file at `path`, read in blocks.
fn sha256(path: &Path) -> Result<[u8; 32], CliError> {
    use sha2::Digest;
    let mut file =
        File::open(path).map_err(|e| CliError::Other(format!("{}: {e}", path.display())))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .map_err(|e| CliError::Other(format!("{}: {e}", path.display())))?;
    Ok(hasher.finalize().into())
}

/// Hands the records after the first `skip` to `f` in batches of [`BATCH`].
fn each_batch(
    path: &Path,
    mut skip: usize,
    mut f: impl FnMut(Vec<Enrolment>) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let mut lines = open(path)?;
    let file = header(&mut lines)?;
    let mut batch = Vec::with_capacity(BATCH);
    for (n, line) in lines {
        let line = line.map_err(|e| CliError::Other(format!("line {n}: {e}")))?;
        if !is_record(&line) {
            continue;
        }
        if skip > 0 {
            skip -= 1;
            continue;
        }
        batch.push(
            file.record(&line)
                .map_err(|e| CliError::Other(format!("line {n}: {e}")))?,
        );
        if batch.len() == BATCH {
            f(std::mem::take(&mut batch))?;
        }
    }
    if batch.is_empty() {
        Ok(())
    } else {
        f(batch)
    }
}
