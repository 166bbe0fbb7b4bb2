//! Work done for many callers at once. A caller queues its job; the group's runner thread
//! takes everything queued (one batch), does it, and answers each caller. A caller from a
//! blocking thread waits for its answer; a caller from an async task awaits it, so that a
//! request handled on the HTTP workers needs no blocking thread of its own.
//!
//! One runner per group, started at the first job, runs one batch at a time: while it waits
//! for PostgreSQL the next batch gathers. Under load it is always busy, so it is woken once
//! per batch at most, and answering a batch wakes each waiting thread or HTTP worker once —
//! on a busy machine, thread switches are the server's largest cost.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::sync::oneshot;
use uuid::Uuid;

use super::{Store, StoreError};

/// At most this many jobs in one batch.
pub(super) const MAX_BATCH: usize = 256;

/// A kind of job that can be done in batches.
pub(super) trait Job: Sized + Send + 'static {
    /// What one job gives back.
    type Output: Send + 'static;
    /// The rows (tokens, challenges) this job changes, by id: a batch never holds two jobs
    /// that change one row, so each sees the state the previous batch left.
    fn rows(&self) -> &[Uuid];
    /// Does a batch: one result per job, in order.
    fn run(store: &Store, jobs: &[&Self]) -> Vec<Result<Self::Output, StoreError>>;
}

type Reply<J> = oneshot::Sender<Result<<J as Job>::Output, StoreError>>;

/// The queue of one kind of job.
pub(super) struct Group<J: Job> {
    shared: Arc<Shared<J>>,
    /// Whether the runner could be started (at the first job).
    runner: OnceLock<bool>,
}

struct Shared<J: Job> {
    state: Mutex<State<J>>,
    /// Signalled when a job is queued or the group is dropped.
    queued: Condvar,
}

struct State<J: Job> {
    queued: Vec<(Reply<J>, J)>,
    closed: bool,
}

impl<J: Job> Default for Group<J> {
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queued: Vec::new(),
                    closed: false,
                }),
                queued: Condvar::new(),
            }),
            runner: OnceLock::new(),
        }
    }
}

impl<J: Job> std::fmt::Debug for Group<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").finish_non_exhaustive()
    }
}

impl<J: Job> Drop for Group<J> {
    /// Stops the runner once it has done what is queued.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.queued.notify_all();
    }
}

impl<J: Job> Group<J> {
    /// Does `job`, together with whatever else is queued; returns once it is done (from a
    /// blocking thread). With grouping off (`group_commit = false`, for comparison runs) the
    /// job is done alone, on this thread.
    pub(super) fn submit(&self, store: &Store, job: J) -> Result<J::Output, StoreError> {
        if !store.group_commit {
            return run_alone(store, &job);
        }
        self.queue(store, job)
            .blocking_recv()
            .unwrap_or_else(|_| Err(abandoned()))
    }

    /// [`Self::submit`] for an async task: the task is woken when its job is done. With
    /// grouping off, the job is done alone on the blocking pool.
    pub(super) async fn submit_async(
        &self,
        store: &Store,
        job: J,
    ) -> Result<J::Output, StoreError> {
        if !store.group_commit {
            let store = store.clone();
            return tokio::task::spawn_blocking(move || run_alone(&store, &job))
                .await
                .unwrap_or_else(|_| Err(abandoned()));
        }
        self.queue(store, job)
            .await
            .unwrap_or_else(|_| Err(abandoned()))
    }

    fn queue(&self, store: &Store, job: J) -> oneshot::Receiver<Result<J::Output, StoreError>> {
        let (reply, answer) = oneshot::channel();
        if !*self.runner.get_or_init(|| self.start_runner(store)) {
            let _ = reply.send(Err(StoreError::Internal("no batch runner".into())));
            return answer;
        }
        self.shared.lock().queued.push((reply, job));
        self.shared.queued.notify_one();
        answer
    }

    /// The runner holds the group's queue and a copy of the store without its groups (so it
    /// keeps neither them nor itself alive). If it cannot be started, every job of the group
    /// fails at once (never waits in vain).
    fn start_runner(&self, store: &Store) -> bool {
        let shared = self.shared.clone();
        let store = store.detached();
        let started = std::thread::Builder::new()
            .name("hsm-otp-batch".into())
            .spawn(move || shared.run(&store));
        if let Err(e) = &started {
            tracing::error!(error = %e, "cannot start a batch runner");
        }
        started.is_ok()
    }

    #[cfg(test)]
    fn is_idle(&self) -> bool {
        self.shared.lock().queued.is_empty()
    }
}

impl<J: Job> Shared<J> {
    fn lock(&self) -> MutexGuard<'_, State<J>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The runner: one batch at a time until the group is dropped and its queue is empty.
    fn run(&self, store: &Store) {
        loop {
            let batch = {
                let mut state = self.lock();
                while state.queued.is_empty() && !state.closed {
                    state = self
                        .queued
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if state.queued.is_empty() {
                    return;
                }
                take_batch(&mut state.queued)
            };
            let jobs: Vec<&J> = batch.iter().map(|(_, job)| job).collect();
            // A job that panics fails its batch, not the runner (the callers get an error,
            // never a hang).
            let mut results = catch_unwind(AssertUnwindSafe(|| J::run(store, &jobs)))
                .unwrap_or_default()
                .into_iter();
            for (reply, _) in batch {
                // A caller that went away (its request dropped) needs no answer.
                let _ = reply.send(results.next().unwrap_or_else(|| Err(abandoned())));
            }
        }
    }
}

fn run_alone<J: Job>(store: &Store, job: &J) -> Result<J::Output, StoreError> {
    J::run(store, &[job])
        .pop()
        .unwrap_or_else(|| Err(abandoned()))
}

fn abandoned() -> StoreError {
    StoreError::Internal("batch abandoned".into())
}

/// Takes, in arrival order, up to [`MAX_BATCH`] queued jobs that change distinct rows; the
/// others stay queued for the next batch.
pub(super) fn take_batch<R, J: Job>(queued: &mut Vec<(R, J)>) -> Vec<(R, J)> {
    let mut touched = HashSet::new();
    let mut batch = Vec::new();
    let mut rest = Vec::new();
    for (id, job) in queued.drain(..) {
        let free = job.rows().iter().all(|t| !touched.contains(t));
        if batch.len() < MAX_BATCH && free {
            touched.extend(job.rows().iter().copied());
            batch.push((id, job));
        } else {
            rest.push((id, job));
        }
    }
    *queued = rest;
    batch
}

/// Each job's answer from a batch done as a whole: `jobs` answers, or the batch's error for
/// every job.
pub(super) fn each<T>(jobs: usize, done: Result<Vec<T>, StoreError>) -> Vec<Result<T, StoreError>> {
    match done {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(e) => (0..jobs).map(|_| Err(e.clone())).collect(),
    }
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
    let answers = rows.map(|rows| {
        let by_key: HashMap<K, R> = rows.into_iter().map(|r| (key(&r), r)).collect();
        reads.iter().map(|read| pick(read, &by_key)).collect()
    });
    each(reads.len(), answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    /// Doubles its number; counts the batches and remembers the largest.
    struct Double(u64);

    static BATCHES: AtomicUsize = AtomicUsize::new(0);
    static LARGEST: AtomicUsize = AtomicUsize::new(0);

    impl Job for Double {
        type Output = u64;

        fn rows(&self) -> &[Uuid] {
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
        assert!(group.is_idle());
    }

    /// Tasks on two async workers, answered without a blocking thread each; their jobs are
    /// batched with each other (the same runner as blocking callers).
    #[test]
    fn async_callers_get_their_own_answers_from_the_runner() {
        let metrics = Arc::new(crate::metrics::Metrics::new().unwrap());
        let store = Store::new("postgres://127.0.0.1:1/none", 1, metrics);
        let group = Arc::new(Group::<Triple>::default());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(async {
            let tasks: Vec<_> = (0..32u64)
                .map(|t| {
                    let (group, store) = (group.clone(), store.clone());
                    tokio::spawn(async move {
                        for n in 0..50u64 {
                            let x = t * 1_000 + n;
                            assert_eq!(group.submit_async(&store, Triple(x)).await.unwrap(), x * 3);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        assert!(TRIPLE_LARGEST.load(Ordering::SeqCst) > 1, "never batched");
        assert!(group.is_idle());
    }

    /// Triples its number; remembers the largest batch.
    struct Triple(u64);

    static TRIPLE_LARGEST: AtomicUsize = AtomicUsize::new(0);

    impl Job for Triple {
        type Output = u64;

        fn rows(&self) -> &[Uuid] {
            &[]
        }

        fn run(_: &Store, jobs: &[&Self]) -> Vec<Result<u64, StoreError>> {
            TRIPLE_LARGEST.fetch_max(jobs.len(), Ordering::SeqCst);
            thread::sleep(Duration::from_micros(200));
            jobs.iter().map(|j| Ok(j.0 * 3)).collect()
        }
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
