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

use std::collections::{BTreeMap, HashMap};

/// Identifies one wrapped seed.
pub(super) type SeedId = [u8; 32];

/// The cache, generic over the handle type so its logic is tested without an HSM.
pub(super) struct HotSeeds<H> {
    capacity: usize,
    entries: HashMap<SeedId, Entry<H>>,
    /// Last use → seed, oldest first.
    by_use: BTreeMap<u64, SeedId>,
    tick: u64,
}

struct Entry<H> {
    generation: u64,
    handle: H,
    users: u32,
    last_use: u64,
    /// Its token is gone: destroyed once the last caller is done.
    doomed: bool,
}

impl<H: Copy> HotSeeds<H> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
        }
    }

    /// Whether any object is kept at all (`hot_seeds` is not 0).
    pub(super) fn keeps_any(&self) -> bool {
        self.capacity > 0
    }

    /// The object of `id` made in pool `generation`, marked in use until [`Self::check_in`].
    /// An entry of an earlier generation is dropped: its session, and object, are gone.
    pub(super) fn check_out(&mut self, id: &SeedId, generation: u64) -> Option<H> {
        let entry = self.entries.get(id)?;
        if entry.doomed {
            return None;
        }
        if entry.generation != generation {
            self.remove(id);
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        let entry = self.entries.get_mut(id)?;
        self.by_use.remove(&entry.last_use);
        entry.last_use = tick;
        entry.users += 1;
        self.by_use.insert(tick, *id);
        Some(entry.handle)
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
    /// offered one if it is not kept (no room, or the seed is already cached), and any evicted
    /// of this pool generation (an earlier generation's went with its sessions).
    pub(super) fn offer(&mut self, id: SeedId, generation: u64, handle: H) -> Vec<H> {
        if self.capacity == 0 || self.entries.contains_key(&id) {
            return vec![handle];
        }
        let mut destroy = Vec::new();
        while self.entries.len() >= self.capacity {
            let idle = self
                .by_use
                .values()
                .find(|id| self.entries.get(*id).is_some_and(|e| e.users == 0))
                .copied();
            match idle.and_then(|id| self.remove_entry(&id)) {
                Some(evicted) if evicted.generation == generation => destroy.push(evicted.handle),
                Some(_) => {}
                None => return vec![handle], // every cached seed is in use: keep none more
            }
        }
        self.tick += 1;
        self.by_use.insert(self.tick, id);
        self.entries.insert(
            id,
            Entry {
                generation,
                handle,
                users: 0,
                last_use: self.tick,
                doomed: false,
            },
        );
        destroy
    }

    fn remove(&mut self, id: &SeedId) -> Option<H> {
        self.remove_entry(id).map(|e| e.handle)
    }

    fn remove_entry(&mut self, id: &SeedId) -> Option<Entry<H>> {
        let entry = self.entries.remove(id)?;
        self.by_use.remove(&entry.last_use);
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

    #[test]
    fn capacity_zero_keeps_nothing() {
        let mut hot = HotSeeds::new(0);
        assert_eq!(hot.offer(id(1), 0, 10), vec![10]);
        assert_eq!(hot.check_out(&id(1), 0), None);
    }
}
