//! The HSM: the only module that talks PKCS#11 (crate `cryptoki`).
//!
//! It owns the service's long-lived keys (the seed key-encryption key and the channel-key MAC
//! key, each labelled with a version so it can be rotated), stores seeds in either of the two
//! modes of promise 1, computes every HMAC, and draws every secret random number. No function
//! here returns a seed or key value: seeds go in, MACs come out.

mod error;
mod hot;
mod messages;
mod pool;
mod template;

pub use error::HsmError;
pub use pool::HsmSettings;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use serde::{Deserialize, Serialize};

use crate::domain::{Algorithm, SecretBytes};
use crate::metrics::Metrics;
use crate::oath::Mac;
use pool::{Pool, Reset};

/// Label of the current seed key-encryption key.
pub const KEK_LABEL: &str = "hsm-otp.seed-kek.v1";
/// Version of the current seed key-encryption key, stored beside each wrapped seed.
pub const KEK_VERSION: i32 = 1;
/// Label of the current channel-key MAC key.
pub const CHANNEL_MAC_LABEL: &str = "hsm-otp.channel-key-mac.v1";
/// Version of the current channel-key MAC key, stored beside each channel key MAC.
pub const CHANNEL_MAC_VERSION: i32 = 1;
/// Label of the current challenge-code MAC key.
pub const CHALLENGE_MAC_LABEL: &str = "hsm-otp.challenge-mac.v1";
/// Version of the current challenge-code MAC key, stored beside each challenge.
pub const CHALLENGE_MAC_VERSION: i32 = 1;
/// Label of the current outbox (message encryption) key.
pub const OUTBOX_KEY_LABEL: &str = "hsm-otp.outbox-key.v1";
/// Version of the current outbox key, stored beside each sealed message.
pub const OUTBOX_KEY_VERSION: i32 = 1;
/// Prefix of every seed object's label in `object` storage.
pub const SEED_LABEL_PREFIX: &str = "hsm-otp.seed.";

/// How seeds are kept (promise 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedStorage {
    /// In the database, wrapped under the HSM's KEK (`CKM_AES_KEY_WRAP_PAD`).
    #[default]
    Wrapped,
    /// As one persistent, non-extractable secret-key object per seed.
    Object,
}

impl SeedStorage {
    /// The stable name used in configuration and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Object => "object",
            Self::Wrapped => "wrapped",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "object" => Some(Self::Object),
            "wrapped" => Some(Self::Wrapped),
            _ => None,
        }
    }
}

/// Where a token's seed is: what the database stores instead of the seed.
#[derive(Clone, PartialEq, Eq)]
pub enum SeedRef {
    /// Wrapped under the KEK of `kek_version`.
    Wrapped {
        /// The `CKM_AES_KEY_WRAP_PAD` output.
        blob: Vec<u8>,
        /// Which KEK wrapped it.
        kek_version: i32,
    },
    /// A persistent token object with this label.
    Object {
        /// The object's `CKA_LABEL`.
        label: String,
    },
}

impl std::fmt::Debug for SeedRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Wrapped { kek_version, .. } => write!(f, "Wrapped(kek v{kek_version})"),
            Self::Object { label } => write!(f, "Object({label})"),
        }
    }
}

/// The HSM facade shared by all workers.
pub struct Hsm {
    pool: Pool,
    handles: Mutex<HashMap<String, (u64, ObjectHandle)>>,
    key_macs: Mutex<HashMap<[u8; 32], Vec<u8>>>,
    /// The pool generation whose seed objects were all indexed, once indexing is on.
    indexed: Mutex<Option<Option<u64>>>,
    /// The session copy of each long-lived key, by label, with the pool generation it was made
    /// in; `None`: the HSM refused to copy it, so the token object (from the handle cache) is
    /// used.
    key_copies: Mutex<HashMap<String, (u64, Option<ObjectHandle>)>>,
    hot: Mutex<hot::HotSeeds<ObjectHandle>>,
    /// Session objects made since the pool was last reset; see [`HsmSettings::recycle_after`].
    session_objects: AtomicU64,
    recycle_after: u64,
    metrics: Arc<Metrics>,
}

/// Channel-key MACs remembered, by the SHA-256 of the key (never the key itself).
const KEY_MAC_CACHE: usize = 1_024;

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm").finish_non_exhaustive()
    }
}

/// A MAC bound to one key in one leased session: the HSM's implementation of [`Mac`].
pub struct HsmMac<'a> {
    session: &'a Session,
    key: ObjectHandle,
    algorithm: Algorithm,
}

impl Mac for HsmMac<'_> {
    type Error = HsmError;

    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn mac(&mut self, message: &[u8]) -> Result<Vec<u8>, HsmError> {
        Ok(self
            .session
            .sign(&hmac_mechanism(self.algorithm), self.key, message)?)
    }
}

impl HsmMac<'_> {
    /// The attributes of the seed's key that bear on its safety (for inspection: an unwrapped
    /// seed is a session object, which cannot be read from another process).
    pub fn flags(&self) -> Result<KeyFlags, HsmError> {
        key_flags(self.session, self.key)
    }
}

/// The service's long-lived keys: label, how to generate, template.
fn service_keys() -> [(&'static str, Mechanism<'static>, Vec<Attribute>); 4] {
    [
        (KEK_LABEL, Mechanism::AesKeyGen, template::kek(KEK_LABEL)),
        (
            CHANNEL_MAC_LABEL,
            Mechanism::GenericSecretKeyGen,
            template::mac_key(CHANNEL_MAC_LABEL),
        ),
        (
            CHALLENGE_MAC_LABEL,
            Mechanism::GenericSecretKeyGen,
            template::mac_key(CHALLENGE_MAC_LABEL),
        ),
        (
            OUTBOX_KEY_LABEL,
            Mechanism::AesKeyGen,
            template::data_key(OUTBOX_KEY_LABEL),
        ),
    ]
}

impl Hsm {
    /// Prepares the pool. Nothing is loaded until the first operation (or [`Hsm::ensure_keys`]).
    pub fn new(settings: HsmSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            hot: Mutex::new(hot::HotSeeds::new(settings.hot_seeds)),
            session_objects: AtomicU64::new(0),
            recycle_after: settings.recycle_after,
            pool: Pool::new(settings),
            handles: Mutex::new(HashMap::new()),
            key_macs: Mutex::new(HashMap::new()),
            indexed: Mutex::new(None),
            key_copies: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Finds the service's long-lived keys, creating any that are missing. PKCS#11 has no
    /// lock: two processes doing this at once on a fresh token could each create a key, so
    /// callers take turns (`Services::ensure_keys` holds a database lock).
    pub fn ensure_keys(&self) -> Result<(), HsmError> {
        self.run("ensure_keys", |s, generation| {
            for (label, mechanism, template) in service_keys() {
                match self.handle(s, generation, label) {
                    Ok(_) => {}
                    Err(HsmError::NotFound(_)) => {
                        let handle = s.generate_key(&mechanism, &template)?;
                        self.remember(label, generation, handle);
                        tracing::info!(label, "created HSM key");
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    /// Whether every long-lived key of the service is on the token (none is created).
    pub fn has_keys(&self) -> Result<bool, HsmError> {
        self.run("has_keys", |s, generation| {
            for (label, _, _) in service_keys() {
                match self.handle(s, generation, label) {
                    Ok(_) => {}
                    Err(HsmError::NotFound(_)) => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            Ok(true)
        })
    }

    /// Stores a throw-away seed the configured way and computes one HMAC with it, so that an
    /// HSM lacking a mechanism (`CKM_AES_KEY_WRAP_PAD` for wrapped storage) is found at start.
    pub fn self_test(&self, storage: SeedStorage) -> Result<(), HsmError> {
        let seed = self.random(Algorithm::Sha1.output_len())?;
        let stored = self
            .store_seed(&seed, Algorithm::Sha1, storage)
            .map_err(|e| {
                HsmError::Config(format!(
                    "{} seed storage does not work with this HSM: {e}",
                    storage.as_str()
                ))
            })?;
        let mac = self.with_seed(&stored, Algorithm::Sha1, |mac| mac.mac(b"self-test"));
        self.destroy_seed(&stored)?;
        mac.map(|_| ())
    }

    /// `n` random bytes from the HSM's generator.
    pub fn random(&self, n: usize) -> Result<SecretBytes, HsmError> {
        self.run("random", |s, _| {
            let mut buf = SecretBytes::new(vec![0u8; n]);
            s.generate_random_slice(buf.expose_mut())?;
            Ok(buf)
        })
    }

    /// Puts `seed` into the HSM for use with `algorithm`; the caller zeroizes its own copy.
    pub fn store_seed(
        &self,
        seed: &SecretBytes,
        algorithm: Algorithm,
        storage: SeedStorage,
    ) -> Result<SeedRef, HsmError> {
        let value = padded_seed(seed, algorithm);
        self.run("store_seed", |s, generation| match storage {
            SeedStorage::Wrapped => {
                let kek = self.working_kek(s, generation, KEK_VERSION)?;
                let mut t = template::seed_to_wrap(value.expose().to_vec());
                let created = s.create_object(&t);
                template::scrub(&mut t);
                let object = created?;
                self.made_session_object();
                let wrapped = s.wrap_key(&Mechanism::AesKeyWrapPad, kek, object);
                s.destroy_object(object)?;
                Ok(SeedRef::Wrapped {
                    blob: wrapped?,
                    kek_version: KEK_VERSION,
                })
            }
            SeedStorage::Object => {
                let label = format!("{SEED_LABEL_PREFIX}{}", uuid::Uuid::new_v4());
                let mut t = template::seed_object(&label, value.expose().to_vec());
                let created = s.create_object(&t);
                template::scrub(&mut t);
                self.remember(&label, generation, created?);
                Ok(SeedRef::Object { label })
            }
        })
    }

    /// Runs `f` with a [`Mac`] keyed by the seed `seed`; the clear seed exists only inside
    /// the HSM. The HMACs are computed with a session object made for the purpose, kept in the
    /// bounded hot-seed cache for the next use or destroyed: a wrapped seed unwrapped into a
    /// non-extractable, sign-only object, or a session copy of a seed object (a token object
    /// costs SoftHSM a re-read of its file at every use).
    pub fn with_seed<R>(
        &self,
        seed: &SeedRef,
        algorithm: Algorithm,
        f: impl FnOnce(&mut HsmMac<'_>) -> Result<R, HsmError>,
    ) -> Result<R, HsmError> {
        self.run("seed_hmac", |s, generation| {
            let id = hot_id(seed);
            let cached = lock(&self.hot).check_out(&id, generation);
            self.metrics
                .hot_seeds
                .with_label_values(&[if cached.is_some() { "hit" } else { "miss" }])
                .inc();
            let mac = |key| HsmMac {
                session: s,
                key,
                algorithm,
            };
            if let Some(key) = cached {
                let result = f(&mut mac(key));
                let broken = matches!(&result, Err(HsmError::NotFound(_)));
                if let Some(doomed) = lock(&self.hot).check_in(&id, broken) {
                    destroy_session_seed(s, doomed);
                }
                return result;
            }
            let key = match seed {
                SeedRef::Wrapped { blob, kek_version } => {
                    let kek = self.working_kek(s, generation, *kek_version)?;
                    let key = s.unwrap_key(
                        &Mechanism::AesKeyWrapPad,
                        kek,
                        blob,
                        &template::unwrapped_seed(),
                    )?;
                    self.made_session_object();
                    key
                }
                SeedRef::Object { label } => {
                    let object = self.handle(s, generation, label)?;
                    if !lock(&self.hot).keeps_any() {
                        // A copy made for one use would cost more than it saves.
                        return f(&mut mac(object));
                    }
                    match s.copy_object(object, &template::session_copy()) {
                        Ok(copy) => {
                            self.made_session_object();
                            copy
                        }
                        Err(e) => {
                            let e = HsmError::from(e);
                            if e.is_unavailable() {
                                return Err(e);
                            }
                            // No copy (the HSM refuses them, or the handle is stale): the
                            // token object itself, neither cached nor destroyed.
                            return f(&mut mac(object));
                        }
                    }
                }
            };
            let result = f(&mut mac(key));
            let destroy = if result.is_ok() {
                lock(&self.hot).offer(id, generation, key)
            } else {
                vec![key]
            };
            for key in destroy {
                destroy_session_seed(s, key);
            }
            result
        })
    }

    /// Destroys a seed object (`object` storage; a wrapped seed is gone with its row), and
    /// the seed's session object in the hot-seed cache, if any.
    pub fn destroy_seed(&self, seed: &SeedRef) -> Result<(), HsmError> {
        let hot = lock(&self.hot).forget(&hot_id(seed));
        if hot.is_none() && matches!(seed, SeedRef::Wrapped { .. }) {
            return Ok(()); // nothing in the HSM to destroy
        }
        self.run("destroy_seed", |s, generation| {
            if let Some(key) = hot {
                destroy_session_seed(s, key);
            }
            if let SeedRef::Object { label } = seed {
                let handle = self.handle(s, generation, label)?;
                s.destroy_object(handle)?;
                self.forget(label);
            }
            Ok(())
        })
    }

    /// HMAC-SHA256 of a channel key under the channel-key MAC key (promise 2).
    ///
    /// The MACs of the last keys presented are remembered, under the SHA-256 of the key, so
    /// that a caller's every request does not cost an HSM operation; the caller still compares
    /// the MAC with the database's, so a rotated or disabled key is refused at once.
    pub fn channel_key_mac(&self, key: &[u8]) -> Result<Vec<u8>, HsmError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(key).into();
        if let Some(mac) = lock(&self.key_macs).get(&digest) {
            return Ok(mac.clone());
        }
        let mac = self.run("channel_key_mac", |s, generation| {
            let handle = self.working_key(s, generation, CHANNEL_MAC_LABEL)?;
            Ok(s.sign(&Mechanism::Sha256Hmac, handle, key)?)
        })?;
        let mut cache = lock(&self.key_macs);
        if cache.len() >= KEY_MAC_CACHE {
            cache.clear();
        }
        cache.insert(digest, mac.clone());
        Ok(mac)
    }

    /// Checks that a logged-in session can be had and answers (for `/readyz`).
    pub fn ping(&self) -> Result<(), HsmError> {
        self.run("ping", |s, _| {
            s.get_session_info()?;
            Ok(())
        })
    }

    /// (idle, leased) sessions, for the pool gauges.
    pub fn pool_usage(&self) -> (usize, usize) {
        self.pool.usage()
    }

    /// Leases a session, runs `op`, records its latency, and resets the pool when the device
    /// turned out to be gone, so that a later call starts afresh.
    fn run<R>(
        &self,
        name: &'static str,
        op: impl FnOnce(&Session, u64) -> Result<R, HsmError>,
    ) -> Result<R, HsmError> {
        let started = Instant::now();
        let mut reset = None;
        let result = match self.pool.lease() {
            Ok(mut lease) => {
                let generation = lease.generation();
                let result = lease.session().and_then(|s| op(s, generation));
                if matches!(&result, Err(e) if e.is_unavailable()) {
                    lease.discard();
                    reset = Some((generation, Reset::Unavailable));
                } else if self.claim_recycle() {
                    reset = Some((generation, Reset::Recycle));
                }
                result
            }
            Err(e) => Err(e),
        };
        // The lease is back: a reset waits for the others to be returned.
        if let Some((generation, why)) = reset {
            self.forget_all();
            if self.pool.reset(generation, why) {
                if why == Reset::Unavailable {
                    self.session_objects.store(0, Ordering::Relaxed);
                }
                self.metrics
                    .hsm_resets
                    .with_label_values(&[why.as_str()])
                    .inc();
            }
        } else if matches!(&result, Err(HsmError::NotFound(_))) {
            // A cached handle may have gone stale (an object destroyed by another process):
            // look everything up afresh next time.
            self.forget_all();
        }
        if let Err(e) = &result {
            tracing::warn!(operation = name, error = %e, "HSM operation failed");
        }
        self.metrics
            .observe_hsm(name, result.is_ok(), started.elapsed());
        result
    }

    /// Counts a session object made (see [`HsmSettings::recycle_after`]).
    fn made_session_object(&self) {
        self.session_objects.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether enough session objects were made since the last reset that the pool should be
    /// recycled, and this caller is the one to do it (the count starts again from 0, so that
    /// callers finishing at the same moment do not recycle twice): SoftHSM 2.6 frees a
    /// destroyed session object's memory only when the module is finalised (about 240 bytes
    /// each, measured), so a server that unwraps a seed per verification would grow without
    /// bound.
    fn claim_recycle(&self) -> bool {
        let due = |n| self.recycle_after > 0 && n >= self.recycle_after;
        due(self.session_objects.load(Ordering::Relaxed))
            && due(self.session_objects.swap(0, Ordering::Relaxed))
    }

    /// Finds every seed object on the token in one search and caches their handles, so that
    /// no verification searches the token (object storage; a search by label costs more the
    /// more objects the token holds). From now on the index is rebuilt the same way whenever
    /// the pool has been reset. Returns how many seed objects there are.
    pub fn index_seed_objects(&self) -> Result<usize, HsmError> {
        *lock(&self.indexed) = Some(None);
        self.run("index_seed_objects", |s, generation| {
            self.index(s, generation)
        })
    }

    fn index(&self, s: &Session, generation: u64) -> Result<usize, HsmError> {
        let mut found = Vec::new();
        for handle in s.find_objects(&on_token())? {
            for attribute in s.get_attributes(handle, &[AttributeType::Label])? {
                if let Attribute::Label(label) = attribute {
                    match String::from_utf8(label) {
                        Ok(label) if label.starts_with(SEED_LABEL_PREFIX) => {
                            found.push((label, handle));
                        }
                        _ => {}
                    }
                }
            }
        }
        let n = found.len();
        let mut cache = lock(&self.handles);
        for (label, handle) in found {
            cache.insert(label, (generation, handle));
        }
        drop(cache);
        *lock(&self.indexed) = Some(Some(generation));
        Ok(n)
    }

    /// The key that wraps and unwraps seeds for the KEK of `kek_version`: its working copy.
    fn working_kek(
        &self,
        s: &Session,
        generation: u64,
        kek_version: i32,
    ) -> Result<ObjectHandle, HsmError> {
        self.working_key(s, generation, &kek_label(kek_version))
    }

    /// The long-lived key labelled `label` as used for operations: a session copy of it
    /// (`C_CopyObject` with `CKA_TOKEN` false), made once per pool generation.
    ///
    /// The copy is the same key inside the HSM, still sensitive, private and not extractable
    /// (a copy inherits them and can only tighten them), gone when its session closes (a pool
    /// reset). It exists because a token object costs more to use than a session object:
    /// SoftHSM re-reads a token object's file to see whether another process changed it, at
    /// every use. An HSM that refuses the copy (`CKA_COPYABLE` false) gets the token object
    /// itself.
    fn working_key(
        &self,
        s: &Session,
        generation: u64,
        label: &str,
    ) -> Result<ObjectHandle, HsmError> {
        // Held while a copy is made (once per generation), so that only one is.
        let mut copies = lock(&self.key_copies);
        match copies.get(label) {
            Some((g, Some(copy))) if *g == generation => return Ok(*copy),
            // Refused before: the token object, whose cached handle is dropped if it goes stale.
            Some((g, None)) if *g == generation => return self.handle(s, generation, label),
            _ => {}
        }
        let key = self.handle(s, generation, label)?;
        match s.copy_object(key, &template::session_copy()) {
            Ok(copy) => {
                self.made_session_object();
                copies.insert(label.to_owned(), (generation, Some(copy)));
                Ok(copy)
            }
            Err(e) => {
                let e = HsmError::from(e);
                if e.is_unavailable() {
                    return Err(e);
                }
                tracing::info!(label, error = %e, "no session copy of the key: using the token object");
                copies.insert(label.to_owned(), (generation, None));
                Ok(key)
            }
        }
    }

    /// The attributes of the working copy of the long-lived key labelled `label` that bear on
    /// its safety (for inspection: a session object cannot be read from another process).
    pub fn working_key_flags(&self, label: &str) -> Result<KeyFlags, HsmError> {
        self.run("inspect", |s, generation| {
            key_flags(s, self.working_key(s, generation, label)?)
        })
    }

    /// The handle of the secret key labelled `label`, from the cache or one search.
    fn handle(&self, s: &Session, generation: u64, label: &str) -> Result<ObjectHandle, HsmError> {
        let cached = |label: &str| {
            lock(&self.handles)
                .get(label)
                .filter(|(g, _)| *g == generation)
                .map(|(_, h)| *h)
        };
        if let Some(h) = cached(label) {
            return Ok(h);
        }
        let stale_index = matches!(*lock(&self.indexed), Some(g) if g != Some(generation));
        if stale_index && label.starts_with(SEED_LABEL_PREFIX) {
            self.index(s, generation)?;
            if let Some(h) = cached(label) {
                return Ok(h);
            }
        }
        let mut search = on_token();
        search.push(Attribute::Label(label.as_bytes().to_vec()));
        let found = s.find_objects(&search)?;
        match found.as_slice() {
            [h] => {
                self.remember(label, generation, *h);
                Ok(*h)
            }
            [] => Err(HsmError::NotFound(format!("no key labelled {label}"))),
            _ => Err(HsmError::Internal(format!(
                "more than one key labelled {label}"
            ))),
        }
    }

    fn remember(&self, label: &str, generation: u64, handle: ObjectHandle) {
        lock(&self.handles).insert(label.to_owned(), (generation, handle));
    }

    fn forget(&self, label: &str) {
        lock(&self.handles).remove(label);
    }

    fn forget_all(&self) {
        lock(&self.handles).clear();
        let mut indexed = lock(&self.indexed);
        if indexed.is_some() {
            // Indexing is on: the next miss rebuilds the whole index at once.
            *indexed = Some(None);
        }
    }
}

/// A search for the secret keys on the token. Session objects are left out: a session copy
/// keeps its original's label (see [`Hsm::working_key`]), and a label must name the object
/// on the token, the one a deletion destroys.
fn on_token() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Token(true),
    ]
}

/// Reads `key`'s [`KeyFlags`].
fn key_flags(s: &Session, key: ObjectHandle) -> Result<KeyFlags, HsmError> {
    let mut flags = KeyFlags::default();
    for attribute in s.get_attributes(
        key,
        &[
            AttributeType::Token,
            AttributeType::Private,
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::Wrap,
            AttributeType::Unwrap,
            AttributeType::Sign,
            AttributeType::Encrypt,
            AttributeType::Decrypt,
            AttributeType::Derive,
        ],
    )? {
        match attribute {
            Attribute::Token(b) => flags.token = b,
            Attribute::Private(b) => flags.private = b,
            Attribute::Sensitive(b) => flags.sensitive = b,
            Attribute::Extractable(b) => flags.extractable = b,
            Attribute::Wrap(b) => flags.wrap = b,
            Attribute::Unwrap(b) => flags.unwrap = b,
            Attribute::Sign(b) => flags.sign = b,
            Attribute::Encrypt(b) => flags.encrypt = b,
            Attribute::Decrypt(b) => flags.decrypt = b,
            Attribute::Derive(b) => flags.derive = b,
            _ => {}
        }
    }
    Ok(flags)
}

/// The boolean attributes of a key that decide what it can be used for and who can read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // one per PKCS#11 attribute
pub struct KeyFlags {
    /// `CKA_TOKEN`: stored on the token (false: a session object).
    pub token: bool,
    /// `CKA_PRIVATE`: visible only to sessions that have logged in.
    pub private: bool,
    /// `CKA_SENSITIVE`.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`.
    pub extractable: bool,
    /// `CKA_WRAP`.
    pub wrap: bool,
    /// `CKA_UNWRAP`.
    pub unwrap: bool,
    /// `CKA_SIGN`.
    pub sign: bool,
    /// `CKA_ENCRYPT`.
    pub encrypt: bool,
    /// `CKA_DECRYPT`.
    pub decrypt: bool,
    /// `CKA_DERIVE`.
    pub derive: bool,
}

/// Destroys an unwrapped seed's session object. A failure is logged, not returned: the answer
/// does not depend on it, and the object, which no row refers to, goes with its session at
/// the latest (a pool reset).
fn destroy_session_seed(s: &Session, key: ObjectHandle) {
    if let Err(e) = s.destroy_object(key) {
        tracing::warn!(error = %e, "a seed's session object was not destroyed at once");
    }
}

/// What identifies a seed in the hot-seed cache: the SHA-256 of its KEK version and blob, or
/// of its object's label (neither is secret, but a digest keeps the key small).
fn hot_id(seed: &SeedRef) -> hot::SeedId {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    match seed {
        SeedRef::Wrapped { blob, kek_version } => {
            digest.update([1]);
            digest.update(kek_version.to_be_bytes());
            digest.update(blob);
        }
        SeedRef::Object { label } => {
            digest.update([2]);
            digest.update(label.as_bytes());
        }
    }
    digest.finalize().into()
}

/// The label of the KEK of a given version.
fn kek_label(version: i32) -> String {
    if version == KEK_VERSION {
        KEK_LABEL.to_owned()
    } else {
        format!("hsm-otp.seed-kek.v{version}")
    }
}

fn hmac_mechanism(algorithm: Algorithm) -> Mechanism<'static> {
    match algorithm {
        Algorithm::Sha1 => Mechanism::Sha1Hmac,
        Algorithm::Sha256 => Mechanism::Sha256Hmac,
        Algorithm::Sha512 => Mechanism::Sha512Hmac,
    }
}

/// Zero-pads a seed shorter than the hash output up to it.
///
/// Some HSMs (SoftHSM among them) refuse HMAC keys shorter than the hash output. HMAC pads
/// any key shorter than the block size with zeros (RFC 2104 section 2), and the output length
/// never exceeds the block size, so the padded key computes exactly the same MACs.
fn padded_seed(seed: &SecretBytes, algorithm: Algorithm) -> SecretBytes {
    let mut value = seed.expose().to_vec();
    if value.len() < algorithm.output_len() {
        value.resize(algorithm.output_len(), 0);
    }
    SecretBytes::new(value)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
