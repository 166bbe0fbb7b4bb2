//! Work done for many callers at once. A caller queues its job and, if no batch is running,
//! runs everything queued (it leads); otherwise it waits for the leader, and leads the next
//! batch itself if its job is still queued. Each caller returns once its own job is done.
//!
//! A waiting caller sleeps until its own job is done or it is the next to lead: a leader wakes
//! the callers of its batch and the first still queued, never every waiter (most of whom would
//! only go back to sleep: a wasted thread switch each, on a busy machine the largest cost).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};

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
}

struct State<J: Job> {
    next_id: u64,
    queued: Vec<(u64, J)>,
    /// The thread waiting for each job not yet answered.
    waiting: HashMap<u64, Thread>,
    done: HashMap<u64, Result<J::Output, StoreError>>,
    running: bool,
}

impl<J: Job> Default for Group<J> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                next_id: 0,
                queued: Vec::new(),
                waiting: HashMap::new(),
                done: HashMap::new(),
                running: false,
            }),
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
        state.waiting.insert(id, thread::current());
        loop {
            if let Some(done) = state.done.remove(&id) {
                state.waiting.remove(&id);
                return done;
            }
            if state.running {
                // Woken when this job is done or it may lead; a stray wake-up only loops.
                drop(state);
                thread::park();
                state = self.lock();
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

/// The leader's batch: on drop, its results are handed over and its callers woken, with the
/// first caller still queued (to lead next), even if the leader unwound before it had results
/// (they then get an error, never a hang).
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
        let next = state.queued.first().map(|(id, _)| *id);
        let wake: Vec<Thread> = self
            .ids
            .iter()
            .chain(&next)
            .filter_map(|id| state.waiting.get(id).cloned())
            .collect();
        drop(state);
        for waiter in wake {
            waiter.unpark();
        }
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Doubles its number; counts the batches and remembers the largest.
    struct Double(u64);

    static BATCHES: AtomicUsize = AtomicUsize::new(0);
    static LARGEST: AtomicUsize = AtomicUsize::new(0);

    impl Job for Double {
        type Output = u64;

        fn tokens(&self) -> &[Uuid] {
            &[]
        }

        fn run(_: &Store, jobs: &[&Self]) -> Vec<Result<u64, StoreError>> {
            BATCHES.fetch_add(1, Ordering::SeqCst);
            LARGEST.fetch_max(jobs.len(), Ordering::SeqCst);
            thread::sleep(Duration::from_micros(200));
            jobs.iter().map(|j| Ok(j.0 * 2)).collect()
        }
    }

    #[test]
    fn every_caller_gets_its_own_answer_and_waiting_callers_are_batched() {
        // The store is never connected to: the jobs do not use it.
        let metrics = Arc::new(crate::metrics::Metrics::new().unwrap());
        let store = Store::new("postgres://127.0.0.1:1/none", 1, metrics);
        let group = Arc::new(Group::<Double>::default());
        let callers: Vec<_> = (0..16u64)
            .map(|t| {
                let (group, store) = (group.clone(), store.clone());
                thread::spawn(move || {
                    for n in 0..200u64 {
                        let x = t * 1_000 + n;
                        assert_eq!(group.submit(&store, Double(x)).unwrap(), x * 2);
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.join().unwrap();
        }
        let batches = BATCHES.load(Ordering::SeqCst);
        assert!(batches < 3_200, "{batches} batches for 3,200 jobs");
        assert!(LARGEST.load(Ordering::SeqCst) > 1);
        let state = group.lock();
        assert!(state.queued.is_empty() && state.waiting.is_empty() && state.done.is_empty());
    }

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
