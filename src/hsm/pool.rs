//! A pool of logged-in PKCS#11 sessions, and recovery when the device goes away.
//!
//! One PKCS#11 context per pool, initialised with `CKF_OS_LOCKING_OK`; one login per context
//! (login state is shared by all of an application's sessions). Sessions are leased to one
//! blocking operation at a time and returned afterwards. When an operation reports the
//! device or session gone, the pool is *reset*: once every lease is back, all sessions are
//! closed and the context finalised; the next lease loads and logs in afresh. That recovers
//! from a restarted network HSM without restarting the service.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Limit, Slot};
use cryptoki::types::AuthPin;

use super::HsmError;
use crate::domain::SecretString;

/// How long a caller waits for a free session before the HSM counts as unavailable.
const LEASE_WAIT: Duration = Duration::from_secs(5);

/// Where and how to reach the token.
#[derive(Clone, Debug)]
pub struct HsmSettings {
    /// Path of the PKCS#11 module (`libsofthsm2.so`, `p11-kit-client.so`, a vendor's).
    pub module: PathBuf,
    /// Label of the token holding the service's keys.
    pub token_label: String,
    /// The token's user PIN.
    pub user_pin: SecretString,
    /// Upper bound on concurrent sessions (also capped by the token's own maximum).
    pub max_sessions: usize,
    /// Unwrapped seeds kept as session objects for reuse (wrapped storage); 0: none.
    pub hot_seeds: usize,
    /// After this many session objects made (unwrapped seeds, copies), the pool is reset at
    /// its next quiet moment, between two operations: every session closed and the module
    /// finalised, which is when SoftHSM 2.6 frees the memory of the session objects destroyed
    /// meanwhile. 0: never.
    pub recycle_after: u64,
}

/// Why the pool is reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reset {
    /// An operation found the device or its session gone.
    Unavailable,
    /// [`HsmSettings::recycle_after`] session objects were made.
    Recycle,
}

impl Reset {
    /// Its name in the resets metric.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Recycle => "recycle",
        }
    }
}

struct Device {
    context: Pkcs11,
    slot: Slot,
    max_sessions: usize,
}

struct State {
    device: Option<Device>,
    generation: u64,
}

pub(crate) struct Pool {
    settings: HsmSettings,
    state: RwLock<State>,
    idle: Mutex<Idle>,
    returned: Condvar,
}

struct Idle {
    sessions: Vec<Session>,
    leased: usize,
}

/// A session leased for one operation. Holding it keeps the pool from being reset under it.
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    session: Option<Session>,
    generation: u64,
    _state: RwLockReadGuard<'a, State>,
}

impl Pool {
    pub(crate) fn new(settings: HsmSettings) -> Self {
        Self {
            settings,
            state: RwLock::new(State {
                device: None,
                generation: 0,
            }),
            idle: Mutex::new(Idle {
                sessions: Vec::new(),
                leased: 0,
            }),
            returned: Condvar::new(),
        }
    }

    /// Leases a logged-in session, connecting to the device first if needed.
    pub(crate) fn lease(&self) -> Result<Lease<'_>, HsmError> {
        let state = self.connected_state()?;
        let generation = state.generation;
        let max = state.device.as_ref().map_or(1, |d| d.max_sessions);
        let mut idle = self.idle.lock().map_err(|_| poisoned())?;
        loop {
            if let Some(session) = idle.sessions.pop() {
                idle.leased += 1;
                return Ok(self.lease_of(session, generation, state));
            }
            if idle.leased < max {
                idle.leased += 1;
                drop(idle);
                return match self.open_session(&state) {
                    Ok(session) => Ok(self.lease_of(session, generation, state)),
                    Err(e) => {
                        self.release_slot();
                        Err(e)
                    }
                };
            }
            let (guard, timeout) = self
                .returned
                .wait_timeout(idle, LEASE_WAIT)
                .map_err(|_| poisoned())?;
            idle = guard;
            if timeout.timed_out() && idle.sessions.is_empty() && idle.leased >= max {
                return Err(HsmError::Unavailable("no HSM session free in time".into()));
            }
        }
    }

    /// Closes every session and finalises the context, if `generation` is still current (once
    /// every lease is back); the next lease connects afresh. Returns whether this call reset.
    pub(crate) fn reset(&self, generation: u64, why: Reset) -> bool {
        let Ok(mut state) = self.state.write() else {
            return false;
        };
        if state.generation != generation {
            return false; // someone else already reset
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.sessions.clear(); // dropping a Session closes it
        }
        if let Some(device) = state.device.take() {
            let _ = device.context.finalize();
        }
        state.generation += 1;
        match why {
            Reset::Unavailable => {
                tracing::warn!(generation = state.generation, "HSM sessions reset");
            }
            Reset::Recycle => {
                tracing::info!(generation = state.generation, "HSM sessions recycled");
            }
        }
        true
    }

    /// (idle, leased) session counts, for the pool gauges.
    pub(crate) fn usage(&self) -> (usize, usize) {
        self.idle
            .lock()
            .map(|i| (i.sessions.len(), i.leased))
            .unwrap_or((0, 0))
    }

    fn lease_of<'a>(
        &'a self,
        session: Session,
        generation: u64,
        state: RwLockReadGuard<'a, State>,
    ) -> Lease<'a> {
        Lease {
            pool: self,
            session: Some(session),
            generation,
            _state: state,
        }
    }

    fn release_slot(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.leased = idle.leased.saturating_sub(1);
        }
        self.returned.notify_one();
    }

    /// A read guard on a state with a device, connecting under the write lock if needed.
    fn connected_state(&self) -> Result<RwLockReadGuard<'_, State>, HsmError> {
        {
            let state = self.state.read().map_err(|_| poisoned())?;
            if state.device.is_some() {
                return Ok(state);
            }
        }
        {
            let mut state = self.state.write().map_err(|_| poisoned())?;
            if state.device.is_none() {
                state.device = Some(self.connect()?);
            }
        }
        self.state.read().map_err(|_| poisoned())
    }

    fn connect(&self) -> Result<Device, HsmError> {
        let s = &self.settings;
        let context = Pkcs11::new(&s.module).map_err(|e| {
            HsmError::Config(format!(
                "cannot load PKCS#11 module {}: {e}",
                s.module.display()
            ))
        })?;
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(e.into()),
        }
        let (slot, max_sessions, session) = match self.log_in(&context) {
            Ok(found) => found,
            Err(e) => {
                // Leave the module uninitialised, so that the next attempt starts clean.
                let _ = context.finalize();
                return Err(e);
            }
        };
        if let Ok(mut idle) = self.idle.lock() {
            idle.sessions.push(session);
        }
        tracing::info!(token = %s.token_label, max_sessions, "HSM connected");
        Ok(Device {
            context,
            slot,
            max_sessions,
        })
    }

    /// Finds the token, opens a first session and logs in (once for all sessions).
    fn log_in(&self, context: &Pkcs11) -> Result<(Slot, usize, Session), HsmError> {
        let s = &self.settings;
        let (slot, max_sessions) = find_token(context, &s.token_label, s.max_sessions)?;
        let session = context.open_rw_session(slot)?;
        let pin = AuthPin::from(s.user_pin.expose().to_owned());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok((slot, max_sessions, session))
    }

    fn open_session(&self, state: &State) -> Result<Session, HsmError> {
        let device = state
            .device
            .as_ref()
            .ok_or_else(|| HsmError::Unavailable("not connected".into()))?;
        Ok(device.context.open_rw_session(device.slot)?)
    }
}

fn find_token(context: &Pkcs11, label: &str, wanted: usize) -> Result<(Slot, usize), HsmError> {
    for slot in context.get_slots_with_initialized_token()? {
        let info = context.get_token_info(slot)?;
        if info.label().trim_end() == label {
            let limit = match info.max_session_count() {
                Limit::Max(n) => usize::try_from(n).unwrap_or(usize::MAX),
                _ => usize::MAX,
            };
            return Ok((slot, wanted.clamp(1, limit.max(1))));
        }
    }
    Err(HsmError::Config(format!(
        "no token labelled {label:?} in the PKCS#11 module"
    )))
}

fn poisoned() -> HsmError {
    HsmError::Internal("HSM pool lock poisoned".into())
}

impl Lease<'_> {
    /// The pool generation this session belongs to (for [`Pool::reset`]).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Drops the session instead of returning it to the pool.
    pub(crate) fn discard(&mut self) {
        self.session = None;
    }

    pub(crate) fn session(&self) -> Result<&Session, HsmError> {
        self.session
            .as_ref()
            .ok_or_else(|| HsmError::Internal("lease used after discard".into()))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Ok(mut idle) = self.pool.idle.lock() {
            if let Some(session) = self.session.take() {
                idle.sessions.push(session);
            }
            idle.leased = idle.leased.saturating_sub(1);
        }
        self.pool.returned.notify_one();
    }
}
