//! Resolved series per label set, so recording a label set seen before is one hash and one read lock.
//!
//! Without it every record passes each client-supplied value through its [`LabelGuard`] (a lock and
//! a SipHash lookup per label) and then looks the label set up in the `prometheus-client` family
//! (another lock and SipHash over every label). The cache maps the raw values the caller passed
//! straight to the series handle, hashed with foldhash.
//!
//! It changes nothing observable: an entry is only added when every guard kept its value exactly
//! (no cleaning, no overflow to `_other`), so a hit records on the very series the slow path would
//! pick, and the slow path's side effects (admitting a new value, counting an overflow) happen on
//! every record that needs them. Raw values that need cleaning can never hit, because a cached
//! key is always a clean value. The cache is capped, so it is bounded whatever clients send.
//!
//! [`LabelGuard`]: crate::guard::LabelGuard

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use parking_lot::RwLock;

/// Most label sets one cache keeps. Past it, new label sets take the slow path (still correct);
/// well above what the guards' default limits produce in practice.
const MAX_ENTRIES: usize = 16_384;

/// Series handles of one family (or one fixed-label slice of it), keyed by `N` optional values.
#[derive(Debug)]
pub(crate) struct SeriesCache<const N: usize, M> {
    table: RwLock<HashTable<Entry<N, M>>>,
    hasher: DefaultHashBuilder,
}

#[derive(Debug)]
struct Entry<const N: usize, M> {
    key: [Option<Box<str>>; N],
    hash: u64,
    metric: M,
}

impl<const N: usize, M> SeriesCache<N, M> {
    pub(crate) fn new() -> Self {
        Self {
            table: RwLock::new(HashTable::new()),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// Applies `record` to the cached series for `key`, else to the one `resolve` finds, which is
    /// kept when `resolve` says every guard let its value through unchanged (`true`). A hit
    /// records under the read lock, so it costs no reference-count traffic on the handle.
    pub(crate) fn record(
        &self,
        key: [Option<&str>; N],
        resolve: impl FnOnce() -> (M, bool),
        record: impl Fn(&M),
    ) {
        let hash = self.hasher.hash_one(key);
        if let Some(entry) = self.table.read().find(hash, |e| same(&e.key, &key)) {
            record(&entry.metric);
            return;
        }
        let (metric, exact) = resolve();
        record(&metric);
        if exact {
            let mut table = self.table.write();
            // Another thread may have added it between the two locks.
            if table.len() < MAX_ENTRIES && table.find(hash, |e| same(&e.key, &key)).is_none() {
                table.insert_unique(
                    hash,
                    Entry {
                        key: key.map(|v| v.map(Box::from)),
                        hash,
                        metric,
                    },
                    |e| e.hash,
                );
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.read().len()
    }
}

fn same<const N: usize>(stored: &[Option<Box<str>>; N], key: &[Option<&str>; N]) -> bool {
    stored.iter().zip(key).all(|(a, b)| a.as_deref() == *b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_exact_label_sets() {
        let cache = SeriesCache::<2, u32>::new();
        let mut resolved = 0;
        let mut get = |key: [Option<&str>; 2], exact: bool| {
            let seen = std::cell::Cell::new(0);
            cache.record(
                key,
                || {
                    resolved += 1;
                    (resolved, exact)
                },
                |m| seen.set(*m),
            );
            seen.get()
        };
        assert_eq!(get([Some("a"), None], true), 1, "first sight resolves");
        assert_eq!(get([Some("a"), None], true), 1, "second sight hits");
        assert_eq!(
            get([Some("a"), Some("")], true),
            2,
            "absent and empty are different keys"
        );
        assert_eq!(get([Some("b"), None], false), 3, "inexact: resolved");
        assert_eq!(
            get([Some("b"), None], false),
            4,
            "inexact results are never cached, so side effects repeat"
        );
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn stays_bounded() {
        let cache = SeriesCache::<1, usize>::new();
        let get = |key: &str, resolved: usize| {
            let seen = std::cell::Cell::new(0);
            cache.record([Some(key)], || (resolved, true), |m| seen.set(*m));
            seen.get()
        };
        for i in 0..MAX_ENTRIES + 100 {
            assert_eq!(get(&i.to_string(), i), i);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert_eq!(
            get(&(MAX_ENTRIES + 50).to_string(), 7),
            7,
            "past the cap the slow path answers"
        );
    }
}
