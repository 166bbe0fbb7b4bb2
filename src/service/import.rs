//! Bulk enrolment from a seed file: how a security officer brings a fleet of hardware or
//! pre-provisioned tokens in (the fast path for hundreds of thousands of tokens).
//!
//! A seed file is CSV with a header line naming its columns: `user`, `seed_hex` (both
//! required), `type` (`hotp`, the default, or `totp`), `algorithm` (`SHA1`), `digits` (6),
//! `period` (30), `counter` (0), `issuer`. Blank lines and lines starting with `#` are
//! skipped; fields hold no commas. A seed is in process memory only while it is put into the
//! HSM, and is zeroized at once; no error names a field's value.

use uuid::Uuid;

use super::token::{check, enrol_audit, new_token, Enrolment, SeedInput};
use super::{Caller, Channel, Error, Missing, Services};
use crate::domain::{Algorithm, Digits, SecretBytes, TokenKind};
use crate::hsm::SeedRef;
use crate::oath::Period;
use crate::store::ImportMark;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    User,
    SeedHex,
    Type,
    Algorithm,
    Digits,
    Period,
    Counter,
    Issuer,
}

impl Column {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "user" => Self::User,
            "seed_hex" => Self::SeedHex,
            "type" => Self::Type,
            "algorithm" => Self::Algorithm,
            "digits" => Self::Digits,
            "period" => Self::Period,
            "counter" => Self::Counter,
            "issuer" => Self::Issuer,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::SeedHex => "seed_hex",
            Self::Type => "type",
            Self::Algorithm => "algorithm",
            Self::Digits => "digits",
            Self::Period => "period",
            Self::Counter => "counter",
            Self::Issuer => "issuer",
        }
    }
}

/// The columns of a seed file, read from its header line.
#[derive(Clone, Debug)]
pub struct SeedFile {
    columns: Vec<Column>,
}

/// Whether a line of a seed file holds a token.
pub fn is_record(line: &str) -> bool {
    let line = line.trim();
    !line.is_empty() && !line.starts_with('#')
}

impl SeedFile {
    /// Reads the header line; the message names what is wrong with it.
    pub fn header(line: &str) -> Result<Self, String> {
        let mut columns = Vec::new();
        for (i, name) in line.trim().split(',').map(str::trim).enumerate() {
            // The name is not repeated: a file without a header would show its first record.
            let column = Column::parse(name).ok_or_else(|| {
                format!(
                    "the header's column {} is not one of user, seed_hex, type, algorithm, \
                     digits, period, counter, issuer (is the header line missing?)",
                    i + 1
                )
            })?;
            if columns.contains(&column) {
                return Err(format!("column {:?} appears twice", column.name()));
            }
            columns.push(column);
        }
        for required in [Column::User, Column::SeedHex] {
            if !columns.contains(&required) {
                return Err(format!("the header has no {:?} column", required.name()));
            }
        }
        Ok(Self { columns })
    }

    /// Reads one record; the error names the column at fault, never its value.
    pub fn record(&self, line: &str) -> Result<Enrolment, String> {
        let fields: Vec<&str> = line.trim().split(',').map(str::trim).collect();
        if fields.len() != self.columns.len() {
            return Err(format!(
                "{} fields where the header has {}",
                fields.len(),
                self.columns.len()
            ));
        }
        let mut e = Enrolment {
            user: String::new(),
            kind: TokenKind::Hotp,
            algorithm: Algorithm::Sha1,
            digits: Digits::SIX,
            period: Period::DEFAULT,
            counter: 0,
            seed: SeedInput::Import(SecretBytes::new(Vec::new())),
            issuer: None,
        };
        for (column, field) in self.columns.iter().zip(fields) {
            let bad = || format!("invalid {}", column.name());
            match column {
                Column::User => e.user = field.to_owned(),
                Column::SeedHex => {
                    let seed = hex::decode(field).map_err(|_| bad())?;
                    e.seed = SeedInput::Import(SecretBytes::new(seed));
                }
                Column::Type => e.kind = TokenKind::parse(field).ok_or_else(bad)?,
                Column::Algorithm => e.algorithm = Algorithm::parse(field).ok_or_else(bad)?,
                Column::Digits => {
                    e.digits = field.parse().ok().and_then(Digits::new).ok_or_else(bad)?;
                }
                Column::Period => {
                    e.period = field.parse().ok().and_then(Period::new).ok_or_else(bad)?;
                }
                Column::Counter => e.counter = field.parse().map_err(|_| bad())?,
                Column::Issuer => e.issuer = (!field.is_empty()).then(|| field.to_owned()),
            }
        }
        check(&e).map_err(|err| match err {
            Error::InvalidSeed => "invalid seed_hex (16 to 128 bytes)".to_owned(),
            Error::InvalidRequest(field) => format!("invalid {field}"),
            other => other.to_string(),
        })?;
        Ok(e)
    }
}

/// Where a seed file's import into a channel stands.
#[derive(Debug)]
pub struct ImportProgress {
    mark: ImportMark,
    total: i64,
}

impl ImportProgress {
    /// The file's tokens imported so far (by this run and earlier ones).
    pub fn imported(&self) -> usize {
        usize::try_from(self.mark.imported).unwrap_or(0)
    }

    /// The file's tokens.
    pub fn total(&self) -> usize {
        usize::try_from(self.total).unwrap_or(0)
    }
}

impl Services {
    /// The caller an import acts as: the channel `name`, with `import_id` as request id.
    pub fn import_caller(&self, name: &str, import_id: Uuid) -> Result<Caller, Error> {
        let row = self
            .store
            .channel_by_name(name)?
            .ok_or(Error::NotFound(Missing::Channel))?;
        Ok(Caller {
            channel: Channel {
                id: row.id,
                name: row.name,
                may_receive_otp: row.may_receive_otp,
                account_number: row.account_number,
            },
            request_id: format!("import-{import_id}"),
        })
    }

    /// Where the import of a seed file into `caller`'s channel stands, the file known by its
    /// SHA-256; records its start if it never started. The database keeps an HSM MAC of the
    /// SHA-256, not the SHA-256 itself.
    pub fn import_progress(
        &self,
        caller: &Caller,
        file_sha256: &[u8; 32],
        total: usize,
    ) -> Result<ImportProgress, Error> {
        let message = format!("hsm-otp seed file|{}", hex::encode(file_sha256));
        let file_mac = self.hsm.channel_key_mac(message.as_bytes())?;
        let total = i64::try_from(total).map_err(|_| Error::InvalidRequest("file"))?;
        let imported = match self.store.import_progress(caller.channel.id, &file_mac)? {
            Some(imported) => imported,
            None => {
                self.store
                    .begin_import(caller.channel.id, &file_mac, total)?;
                0
            }
        };
        Ok(ImportProgress {
            mark: ImportMark {
                channel_id: caller.channel.id,
                file_mac,
                imported,
            },
            total,
        })
    }

    /// Enrols a batch of checked records for `caller`'s channel: the seeds go into the HSM
    /// on `threads` sessions at once, then every row and its `import` audit row are written
    /// in one transaction, with the file's count of imported tokens (`progress`, moved on
    /// past the batch; `Conflict` if another run moved it meanwhile). Returns how many were
    /// enrolled.
    pub fn import_tokens(
        &self,
        caller: &Caller,
        records: Vec<Enrolment>,
        threads: usize,
        progress: &mut ImportProgress,
    ) -> Result<usize, Error> {
        let storage = self.policy.seed_storage;
        let part = records.len().div_ceil(threads.max(1)).max(1);
        // Each worker returns the seeds it stored, and the error that stopped it, if any, so
        // that a failure undoes every seed stored so far.
        let stored: Vec<(Vec<SeedRef>, Option<Error>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = records
                .chunks(part)
                .map(|chunk| {
                    scope.spawn(move || {
                        let mut refs = Vec::with_capacity(chunk.len());
                        for e in chunk {
                            let stored = match &e.seed {
                                SeedInput::Import(seed) => {
                                    self.hsm.store_seed(seed, e.algorithm, storage)
                                }
                                SeedInput::Generate => return (refs, Some(Error::InvalidSeed)),
                            };
                            match stored {
                                Ok(seed_ref) => refs.push(seed_ref),
                                Err(err) => return (refs, Some(err.into())),
                            }
                        }
                        (refs, None)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        (
                            Vec::new(),
                            Some(Error::Internal("import worker failed".into())),
                        )
                    })
                })
                .collect()
        });
        let mut refs = Vec::with_capacity(records.len());
        let mut failure = None;
        for (part, error) in stored {
            refs.extend(part);
            failure = failure.or(error);
        }
        let written = match failure {
            Some(e) => Err(e),
            None => self.write_imported(caller, &records, &refs, &progress.mark),
        };
        if let Err(e) = written {
            // Undo: no orphan seed object in the HSM.
            for seed in &refs {
                if let Err(undo) = self.hsm.destroy_seed(seed) {
                    tracing::error!(error = %undo, "could not destroy the seed of a failed import");
                }
            }
            return Err(e);
        }
        progress.mark.imported += records.len() as i64;
        Ok(records.len())
    }

    fn write_imported(
        &self,
        caller: &Caller,
        records: &[Enrolment],
        refs: &[SeedRef],
        mark: &ImportMark,
    ) -> Result<(), Error> {
        let rows = records
            .iter()
            .zip(refs)
            .map(|(e, seed)| new_token(caller, e, seed))
            .collect::<Result<Vec<_>, _>>()?;
        let entries: Vec<_> = rows
            .iter()
            .map(|row| enrol_audit(caller, row, "import"))
            .collect();
        Ok(self.store.insert_tokens(&rows, &entries, Some(mark))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_needs_user_and_seed_and_known_columns() {
        assert!(SeedFile::header("user,seed_hex").is_ok());
        assert!(SeedFile::header(" user , type , seed_hex , digits ").is_ok());
        assert!(SeedFile::header("user,type")
            .unwrap_err()
            .contains("seed_hex"));
        assert!(SeedFile::header("user,seed_hex,colour")
            .unwrap_err()
            .contains("column 3 is not one of"));
        let seed = "3132333435363738393031323334353637383930";
        let no_header = SeedFile::header(&format!("{seed},alice")).unwrap_err();
        assert!(!no_header.contains(seed) && no_header.contains("header line missing"));
        assert!(SeedFile::header("user,seed_hex,user")
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn records_take_defaults_and_name_the_bad_column_not_its_value() {
        let file = SeedFile::header("user,type,seed_hex,algorithm,digits,period").unwrap();
        let seed = "3132333435363738393031323334353637383930";
        let e = file
            .record(&format!("alice,totp,{seed},SHA256,8,60"))
            .unwrap();
        assert_eq!(
            (e.kind, e.algorithm, e.digits.get(), e.period.seconds()),
            (TokenKind::Totp, Algorithm::Sha256, 8, 60)
        );
        let plain = SeedFile::header("user,seed_hex").unwrap();
        let e = plain.record(&format!("bob,{seed}")).unwrap();
        assert_eq!((e.kind, e.digits.get(), e.counter), (TokenKind::Hotp, 6, 0));

        let secret = "zz3435363738393031323334353637383930zz";
        let err = plain.record(&format!("bob,{secret}")).unwrap_err();
        assert_eq!(err, "invalid seed_hex");
        assert!(!err.contains(secret));
        assert_eq!(
            plain.record("bob,3132").unwrap_err(),
            "invalid seed_hex (16 to 128 bytes)"
        );
        assert!(file
            .record(&format!("a,totp,{seed},MD5,6,30"))
            .unwrap_err()
            .contains("algorithm"));
        assert!(file
            .record(&format!("a,totp,{seed},SHA1,9,30"))
            .unwrap_err()
            .contains("digits"));
        assert!(file
            .record(&format!("a,totp,{seed},SHA1,6,0"))
            .unwrap_err()
            .contains("period"));
        assert!(file.record("a,totp").unwrap_err().contains("fields"));
        assert!(plain
            .record(&format!(",{seed}"))
            .unwrap_err()
            .contains("user"));
    }

    #[test]
    fn comments_and_blank_lines_are_not_records() {
        assert!(!is_record("  "));
        assert!(!is_record("# exported 2026-11-23"));
        assert!(is_record("alice,00"));
    }
}
