//! Hot seeds: seeds kept in the HSM as session objects for reuse (promise 1's "bounded cache
//! of hot keys"), so that a token used again soon costs one HMAC instead of unwrap + HMAC +
//! destroy (wrapped storage) or HMACs with a token object (object storage, whose seeds are
//! used through session copies). Only handles are kept here, never a seed: the objects are
//! as locked down as the seeds they stand for (sensitive, not extractable, sign only) and
//! vanish with their session at a pool reset.
//!
//! Bounded: past `capacity` the least recently used seed no caller is using is evicted (its
//! object destroyed by the caller that evicted it). Keyed by a digest of the KEK version and
//! the wrapped blob, or of the seed object's label, so a re-enrolled or re-wrapped seed is a
//! different entry.
//!
//! Kept only while it pays: every object SoftHSM holds makes each new one dearer (unwrap +
//! HMAC + destroy: 43–53 µs with one object kept, 65–94 µs with 1,024; at 100,000 tokens,
//! where about 1 % of uses found their seed kept, the server verified 12–16 % fewer codes with
//! 1,024 hot seeds than with none). So the cache also notes which seeds a full cache would
//! hold (their ids only) and, judged over each [`EPOCH`] uses, stops keeping objects when
//! fewer than a third of the uses would find their seed there: it keeps none and gives back
//! the objects it holds, a few at each offer, and starts again once half of the uses would.

use std::collections::{BTreeMap, HashMap};

/// Identifies one wrapped seed.
pub(super) type SeedId = [u8; 32];

/// Uses over which the hit rate a full cache would have is judged.
pub(super) const EPOCH: u32 = 1_024;

/// Objects given back at each offer while the cache stands down.
const SHED_PER_OFFER: usize = 4;

/// The cache, generic over the handle type so its logic is tested without an HSM.
pub(super) struct HotSeeds<H> {
    capacity: usize,
    entries: HashMap<SeedId, Entry<H>>,
    /// The order in which the kept seeds were last used.
    order: UseOrder,
    /// The seeds a full cache would hold now: the last `capacity` distinct seeds used.
    recent: UseOrder,
    /// This epoch's uses, and how many of them found their seed among the recent ones.
    epoch: (u32, u32),
    /// Epochs judged so far (the first, while the recent seeds fill up, is not).
    epochs: u64,
    /// Whether offered objects are kept (the hit rate is high enough).
    keeping: bool,
}

/// Seeds in the order of their last use (ids only).
#[derive(Default)]
struct UseOrder {
    last_use: HashMap<SeedId, u64>,
    /// Last use → seed, oldest first.
    by_use: BTreeMap<u64, SeedId>,
    tick: u64,
}

impl UseOrder {
    /// Records a use of `id`, now the most recent; returns whether it was there already.
    fn touch(&mut self, id: &SeedId) -> bool {
        self.tick += 1;
        let known = match self.last_use.insert(*id, self.tick) {
            Some(before) => {
                self.by_use.remove(&before);
                true
            }
            None => false,
        };
        self.by_use.insert(self.tick, *id);
        known
    }

    fn remove(&mut self, id: &SeedId) {
        if let Some(last) = self.last_use.remove(id) {
            self.by_use.remove(&last);
        }
    }

    /// Drops the least recently used seeds beyond `capacity`.
    fn trim(&mut self, capacity: usize) {
        while self.last_use.len() > capacity {
            match self.by_use.pop_first() {
                Some((_, oldest)) => {
                    self.last_use.remove(&oldest);
                }
                None => break,
            }
        }
    }

    /// The seeds, least recently used first.
    fn oldest_first(&self) -> impl Iterator<Item = &SeedId> {
        self.by_use.values()
    }
}

struct Entry<H> {
    generation: u64,
    handle: H,
    users: u32,
    /// Its token is gone: destroyed once the last caller is done.
    doomed: bool,
}

impl<H: Copy> HotSeeds<H> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            order: UseOrder::default(),
            recent: UseOrder::default(),
            epoch: (0, 0),
            epochs: 0,
            keeping: true,
        }
    }

    /// Whether offered objects are kept now (see the module's documentation).
    #[cfg(test)]
    fn keeping(&self) -> bool {
        self.keeping
    }

    /// Notes a use of `id` for the hit rate, and judges it at the end of an epoch.
    fn note_use(&mut self, id: &SeedId) {
        if self.capacity == 0 {
            return;
        }
        let known = self.recent.touch(id);
        self.recent.trim(self.capacity);
        self.epoch.0 += 1;
        self.epoch.1 += u32::from(known);
        if self.epoch.0 >= EPOCH {
            let (uses, hits) = std::mem::take(&mut self.epoch);
            if self.epochs > 0 {
                // Hysteresis, so that a rate near the line does not flap: keeping stops below
                // a third, and starts again from a half.
                self.keeping = if self.keeping {
                    hits.saturating_mul(3) >= uses
                } else {
                    hits.saturating_mul(2) >= uses
                };
            }
            self.epochs += 1;
        }
    }

    /// Whether any object is kept at all (`hot_seeds` is not 0).
    pub(super) fn keeps_any(&self) -> bool {
        self.capacity > 0
    }

    /// The object of `id` made in pool `generation`, marked in use until [`Self::check_in`].
    /// An entry of an earlier generation is dropped: its session, and object, are gone. Called
    /// once for every use of a seed.
    pub(super) fn check_out(&mut self, id: &SeedId, generation: u64) -> Option<H> {
        self.note_use(id);
        let entry = self.entries.get(id)?;
        if entry.doomed {
            return None;
        }
        if entry.generation != generation {
            self.remove(id);
            return None;
        }
        let entry = self.entries.get_mut(id)?;
        entry.users += 1;
        let handle = entry.handle;
        self.order.touch(id);
        Some(handle)
    }

    /// A caller is done with the object it checked out; `broken`: the HSM no longer knows
    /// the handle, so the entry goes. Returns the object to destroy if its seed was forgotten
    /// meanwhile and this was the last caller.
    pub(super) fn check_in(&mut self, id: &SeedId, broken: bool) -> Option<H> {
        if broken {
            self.remove(id);
            return None;
        }
        let entry = self.entries.get_mut(id)?;
        entry.users = entry.users.saturating_sub(1);
        if entry.doomed && entry.users == 0 {
            return self.remove(id);
        }
        None
    }

    /// The seed's token is gone: returns its object to destroy now, or, while a caller still
    /// uses it, has the last one destroy it.
    pub(super) fn forget(&mut self, id: &SeedId) -> Option<H> {
        let entry = self.entries.get_mut(id)?;
        if entry.users == 0 {
            return self.remove(id);
        }
        entry.doomed = true;
        None
    }

    /// Offers a freshly unwrapped object. Returns the objects the caller must destroy: the
    /// offered one if it is not kept (no room, the seed is already cached, or the cache stands
    /// down), and any evicted or given back of this pool generation (an earlier generation's
    /// went with its sessions).
    pub(super) fn offer(&mut self, id: SeedId, generation: u64, handle: H) -> Vec<H> {
        if !self.keeping {
            let mut destroy = vec![handle];
            destroy.extend(self.shed(SHED_PER_OFFER, generation));
            return destroy;
        }
        if self.capacity == 0 || self.entries.contains_key(&id) {
            return vec![handle];
        }
        let mut destroy = Vec::new();
        while self.entries.len() >= self.capacity {
            let before = self.entries.len();
            destroy.extend(self.shed(1, generation));
            if self.entries.len() == before {
                return vec![handle]; // every cached seed is in use: keep none more
            }
        }
        self.order.touch(&id);
        self.entries.insert(
            id,
            Entry {
                generation,
                handle,
                users: 0,
                doomed: false,
            },
        );
        destroy
    }

    /// Drops up to `n` of the least recently used entries no caller is using; returns their
    /// objects of this pool generation, to destroy (an earlier generation's went with its
    /// sessions).
    fn shed(&mut self, n: usize, generation: u64) -> Vec<H> {
        let idle: Vec<SeedId> = self
            .order
            .oldest_first()
            .filter(|id| self.entries.get(*id).is_some_and(|e| e.users == 0))
            .take(n)
            .copied()
            .collect();
        idle.iter()
            .filter_map(|id| self.remove_entry(id))
            .filter(|e| e.generation == generation)
            .map(|e| e.handle)
            .collect()
    }

    fn remove(&mut self, id: &SeedId) -> Option<H> {
        self.remove_entry(id).map(|e| e.handle)
    }

    fn remove_entry(&mut self, id: &SeedId) -> Option<Entry<H>> {
        let entry = self.entries.remove(id)?;
        self.order.remove(id);
        Some(entry)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SeedId {
        [n; 32]
    }

    #[test]
    fn a_cached_seed_is_reused_and_the_least_recently_used_is_evicted() {
        let mut hot = HotSeeds::new(2);
        assert_eq!(hot.check_out(&id(1), 0), None);
        assert!(hot.offer(id(1), 0, 10).is_empty());
        assert!(hot.offer(id(2), 0, 20).is_empty());
        assert_eq!(hot.check_out(&id(1), 0), Some(10));
        hot.check_in(&id(1), false);
        // 2 is now the least recently used: it makes room for 3.
        assert_eq!(hot.offer(id(3), 0, 30), vec![20]);
        assert_eq!(hot.check_out(&id(2), 0), None);
        assert_eq!(hot.len(), 2);
    }

    #[test]
    fn a_seed_in_use_is_never_evicted_and_nothing_is_kept_twice() {
        let mut hot = HotSeeds::new(1);
        assert!(hot.offer(id(1), 0, 10).is_empty());
        assert_eq!(hot.check_out(&id(1), 0), Some(10));
        // 1 is in use: 2 is not kept (the caller destroys it), 1 stays.
        assert_eq!(hot.offer(id(2), 0, 20), vec![20]);
        assert_eq!(hot.offer(id(1), 0, 11), vec![11], "already cached");
        hot.check_in(&id(1), false);
        assert_eq!(hot.offer(id(2), 0, 21), vec![10]);
    }

    #[test]
    fn entries_of_an_earlier_pool_generation_or_with_a_stale_handle_are_dropped() {
        let mut hot = HotSeeds::new(4);
        assert!(hot.offer(id(1), 0, 10).is_empty());
        assert_eq!(hot.check_out(&id(1), 1), None, "the session is gone");
        assert_eq!(hot.len(), 0);
        assert!(hot.offer(id(2), 1, 20).is_empty());
        assert_eq!(hot.check_out(&id(2), 1), Some(20));
        hot.check_in(&id(2), true);
        assert_eq!(hot.len(), 0);
        // Evicting an entry of an earlier generation destroys nothing: its session is gone.
        let mut hot = HotSeeds::new(1);
        assert!(hot.offer(id(1), 0, 10).is_empty());
        assert!(hot.offer(id(2), 1, 20).is_empty());
        assert_eq!(hot.check_out(&id(2), 1), Some(20));
    }

    #[test]
    fn a_forgotten_seed_is_destroyed_now_or_by_its_last_user() {
        let mut hot = HotSeeds::new(4);
        assert!(hot.offer(id(1), 0, 10).is_empty());
        assert_eq!(hot.forget(&id(1)), Some(10), "unused: destroyed at once");
        assert_eq!(hot.check_out(&id(1), 0), None);
        assert!(hot.offer(id(2), 0, 20).is_empty());
        assert_eq!(hot.check_out(&id(2), 0), Some(20));
        assert_eq!(hot.check_out(&id(2), 0), Some(20));
        assert_eq!(hot.forget(&id(2)), None, "in use: later");
        assert_eq!(hot.check_out(&id(2), 0), None, "never handed out again");
        assert_eq!(hot.check_in(&id(2), false), None);
        assert_eq!(
            hot.check_in(&id(2), false),
            Some(20),
            "the last user destroys it"
        );
        assert_eq!(hot.len(), 0);
    }

    /// Uses `ids` in turn, each offered an object (handle = its number) when not cached;
    /// returns the objects the cache gave back.
    fn use_each(hot: &mut HotSeeds<u32>, ids: impl Iterator<Item = u32>) -> Vec<u32> {
        let mut destroyed = Vec::new();
        for n in ids {
            let key = {
                let mut k = [0; 32];
                k[..4].copy_from_slice(&n.to_be_bytes());
                k
            };
            match hot.check_out(&key, 0) {
                Some(_) => assert_eq!(hot.check_in(&key, false), None),
                None => destroyed.extend(hot.offer(key, 0, n)),
            }
        }
        destroyed
    }

    #[test]
    fn the_cache_stands_down_while_few_uses_would_find_their_seed_and_returns_after() {
        let mut hot = HotSeeds::new(64);
        // A fleet far larger than the cache, each seed used once: no use finds its seed.
        // The first epoch is not judged; at the end of the second the cache stands down.
        let fleet = 2 * EPOCH;
        use_each(&mut hot, 0..fleet - 1);
        assert!(hot.keeping());
        assert_eq!(hot.len(), 64);
        // Now nothing offered is kept, and the objects held are given back, a few at each offer
        // (beginning with the use that ended the epoch).
        let given_back = use_each(&mut hot, fleet - 1..fleet);
        assert!(!hot.keeping());
        assert_eq!(given_back.len(), 1 + SHED_PER_OFFER);
        assert_eq!(hot.len(), 64 - SHED_PER_OFFER);
        let given_back = use_each(&mut hot, fleet..fleet + 15);
        assert_eq!(given_back.len(), 15 + 64 - SHED_PER_OFFER);
        assert!((fleet..fleet + 15).all(|n| given_back.contains(&n)));
        assert_eq!(hot.len(), 0);
        // A small working set again: within an epoch the cache keeps objects once more.
        let working_set = (0..EPOCH).map(|i| 10_000 + i % 8);
        use_each(&mut hot, working_set);
        assert!(hot.keeping());
        let again = (0..64).map(|i| 10_000 + i % 8);
        assert!(
            use_each(&mut hot, again).is_empty(),
            "the working set is kept"
        );
        assert_eq!(hot.len(), 8);
    }

    #[test]
    fn a_rate_between_a_third_and_a_half_changes_nothing() {
        // Two seeds used again and again, three new ones in between: 40 % would be found.
        let mixed = |from: u32| (from..from + 2 * EPOCH).map(|i| if i % 5 < 2 { i % 5 } else { i });
        let mut hot = HotSeeds::new(64);
        use_each(&mut hot, mixed(100));
        assert!(hot.keeping(), "a keeping cache goes on keeping");
        use_each(&mut hot, 1_000_000..1_000_000 + EPOCH);
        assert!(!hot.keeping(), "stood down");
        use_each(&mut hot, mixed(2_000_000));
        assert!(!hot.keeping(), "and stays down until half would be found");
    }

    #[test]
    fn a_working_set_within_the_capacity_keeps_the_cache_on() {
        let mut hot = HotSeeds::new(64);
        let destroyed = use_each(&mut hot, (0..4 * EPOCH).map(|i| i % 60));
        assert!(hot.keeping());
        assert!(destroyed.is_empty(), "each seed unwrapped once and kept");
        assert_eq!(hot.len(), 60);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let mut hot = HotSeeds::new(0);
        assert_eq!(hot.offer(id(1), 0, 10), vec![10]);
        assert_eq!(hot.check_out(&id(1), 0), None);
    }
}
