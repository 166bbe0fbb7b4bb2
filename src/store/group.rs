//! Work done for many callers at once. A caller queues its job and, if no batch is running,
//! runs everything queued (it leads); otherwise it waits for the leader, and leads the next
//! batch itself if its job is still queued. Each caller returns once its own job is done.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use uuid::Uuid;

use super::{Store, StoreError};

/// At most this many jobs in one batch.
pub(super) const MAX_BATCH: usize = 256;

/// A kind of job that can be done in batches.
pub(super) trait Job: Sized {
    /// What one job gives back.
    type Output;
    /// The tokens this job changes: a batch never holds two jobs that change one token, so
    /// each sees the state the previous batch left.
    fn tokens(&self) -> &[Uuid];
    /// Does a batch: one result per job, in order.
    fn run(store: &Store, jobs: &[&Self]) -> Vec<Result<Self::Output, StoreError>>;
}

/// The queue of one kind of job.
pub(super) struct Group<J: Job> {
    state: Mutex<State<J>>,
    ready: Condvar,
}

struct State<J: Job> {
    next_id: u64,
    queued: Vec<(u64, J)>,
    done: HashMap<u64, Result<J::Output, StoreError>>,
    running: bool,
}

impl<J: Job> Default for Group<J> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                next_id: 0,
                queued: Vec::new(),
                done: HashMap::new(),
                running: false,
            }),
            ready: Condvar::new(),
        }
    }
}

impl<J: Job> std::fmt::Debug for Group<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").finish_non_exhaustive()
    }
}

impl<J: Job> Group<J> {
    /// Does `job`, together with whatever else is queued; returns once it is done. With
    /// grouping off (`group_commit = false`, for comparison runs) the job is done alone.
    pub(super) fn submit(&self, store: &Store, job: J) -> Result<J::Output, StoreError> {
        if !store.group_commit {
            return J::run(store, &[&job])
                .pop()
                .unwrap_or_else(|| Err(StoreError::Internal("batch without a result".into())));
        }
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id = state.next_id.wrapping_add(1);
        state.queued.push((id, job));
        loop {
            if let Some(done) = state.done.remove(&id) {
                return done;
            }
            if state.running {
                state = self
                    .ready
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let batch = take_batch(&mut state.queued);
            state.running = true;
            drop(state);
            let mut leading = Leading {
                group: self,
                ids: batch.iter().map(|(id, _)| *id).collect(),
                results: None,
            };
            let jobs: Vec<&J> = batch.iter().map(|(_, job)| job).collect();
            leading.results = Some(J::run(store, &jobs));
            drop(leading);
            state = self.lock();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<J>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The leader's batch: on drop, its results are handed over and the waiters woken, even if
/// the leader unwound before it had results (they then get an error, never a hang).
struct Leading<'a, J: Job> {
    group: &'a Group<J>,
    ids: Vec<u64>,
    results: Option<Vec<Result<J::Output, StoreError>>>,
}

impl<J: Job> Drop for Leading<'_, J> {
    fn drop(&mut self) {
        let mut results = self.results.take().unwrap_or_default().into_iter();
        let mut state = self.group.lock();
        for id in &self.ids {
            let done = results
                .next()
                .unwrap_or_else(|| Err(StoreError::Internal("batch abandoned".into())));
            state.done.insert(*id, done);
        }
        state.running = false;
        drop(state);
        self.group.ready.notify_all();
    }
}

/// Takes, in arrival order, up to [`MAX_BATCH`] queued jobs that change distinct tokens; the
/// others stay queued for the next batch.
pub(super) fn take_batch<J: Job>(queued: &mut Vec<(u64, J)>) -> Vec<(u64, J)> {
    let mut touched = HashSet::new();
    let mut batch = Vec::new();
    let mut rest = Vec::new();
    for (id, job) in queued.drain(..) {
        let free = job.tokens().iter().all(|t| !touched.contains(t));
        if batch.len() < MAX_BATCH && free {
            touched.extend(job.tokens().iter().copied());
            batch.push((id, job));
        } else {
            rest.push((id, job));
        }
    }
    *queued = rest;
    batch
}

/// Answers each of a batch's `reads` from the rows one statement loaded for all of them,
/// indexed by `key`: `pick` chooses a read's row (or none). A failed statement fails every
/// read.
pub(super) fn answer_each<Q, R: Clone, K: Eq + Hash>(
    reads: &[&Q],
    rows: Result<Vec<R>, StoreError>,
    key: impl Fn(&R) -> K,
    pick: impl Fn(&Q, &HashMap<K, R>) -> Option<R>,
) -> Vec<Result<Option<R>, StoreError>> {
    match rows {
        Ok(rows) => {
            let by_key: HashMap<K, R> = rows.into_iter().map(|r| (key(&r), r)).collect();
            reads.iter().map(|read| Ok(pick(read, &by_key))).collect()
        }
        Err(e) => reads.iter().map(|_| Err(e.clone())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_read_gets_its_own_row_and_a_failed_statement_fails_them_all() {
        let reads = [&("a", 1), &("b", 2), &("a", 3)];
        let rows = Ok(vec![("a", 10), ("c", 30)]);
        let answers = answer_each(&reads, rows, |r| r.0, |read, by| by.get(read.0).copied());
        let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
        assert_eq!(answers, [Some(("a", 10)), None, Some(("a", 10))]);

        let failed = answer_each(
            &reads,
            Err::<Vec<(&str, i32)>, _>(StoreError::Unavailable("gone".into())),
            |r| r.0,
            |read, by| by.get(read.0).copied(),
        );
        assert_eq!(failed.len(), 3);
        assert!(failed
            .iter()
            .all(|r| matches!(r, Err(StoreError::Unavailable(_)))));
    }
}
