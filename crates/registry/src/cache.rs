//! Bounded in-memory caches in front of storage: verified tokens, and serialised instance pages.
//!
//! Both take the time as an argument, so tests drive them with a manual clock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use time::{Duration, OffsetDateTime};

use crate::auth::TokenRecord;
use crate::storage::DataVersion;

/// How long a token looked up in storage is trusted without asking again. A token revoked with
/// `mcpulse registry token revoke` is refused by every replica at most this long afterwards.
pub const TOKEN_TTL: Duration = Duration::seconds(5);

/// Distinct tokens remembered; a fleet has a handful, so hitting this means something odd is going
/// on and the cache simply starts over rather than growing.
const TOKEN_ENTRIES: usize = 4096;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves only a cache behind, still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct CachedToken {
    record: TokenRecord,
    fetched_at: OffsetDateTime,
}

/// Live token records by id, each trusted for [`TOKEN_TTL`] after it was read from storage.
/// Only tokens storage returned are kept: an unknown id always asks storage again, so a token
/// created a moment ago works at once.
pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, CachedToken>>,
}

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The record read for `id` within the TTL before `now`. A clock that stepped back past
    /// the read also misses, so a wall-clock jump cannot stretch the TTL.
    pub fn get(&self, id: &str, now: OffsetDateTime) -> Option<TokenRecord> {
        let entries = lock(&self.entries);
        let cached = entries.get(id)?;
        let fresh = cached.fetched_at <= now && now < cached.fetched_at + self.ttl;
        fresh.then(|| cached.record.clone())
    }

    pub fn insert(&self, record: TokenRecord, now: OffsetDateTime) {
        let mut entries = lock(&self.entries);
        if entries.len() >= TOKEN_ENTRIES && !entries.contains_key(&record.id) {
            let ttl = self.ttl;
            entries.retain(|_, c| c.fetched_at <= now && now < c.fetched_at + ttl);
            if entries.len() >= TOKEN_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            record.id.clone(),
            CachedToken {
                record,
                fetched_at: now,
            },
        );
    }
}

/// Which instance page a list request asked for; requests filtering by health state are never
/// cached (time alone moves instances in and out of those).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub server_name: Option<String>,
    pub cursor: Option<String>,
    pub limit: u32,
}

impl PageKey {
    /// Keys are built from the query string; longer ones are not worth remembering.
    const MAX_LEN: usize = 512;

    fn len(&self) -> usize {
        self.server_name.as_ref().map_or(0, String::len)
            + self.cursor.as_ref().map_or(0, String::len)
    }
}

struct CachedPage {
    version: DataVersion,
    computed_at: OffsetDateTime,
    valid_until: OffsetDateTime,
    body: Bytes,
}

/// Serialised list pages, each valid while storage reports the data version it was read under
/// and until the first instant any instance on it could change health state by time alone.
pub struct PageCache {
    inner: Mutex<Pages>,
}

#[derive(Default)]
struct Pages {
    pages: HashMap<PageKey, CachedPage>,
    bytes: usize,
}

/// Pages remembered at once: the first pages and per-server pages dashboards poll.
const PAGE_ENTRIES: usize = 128;
/// Total body bytes remembered; a full page of 1000 instances is about 400 KiB.
const PAGE_BYTES: usize = 32 * 1024 * 1024;

impl Default for PageCache {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Pages::default()),
        }
    }
}

impl PageCache {
    /// The body stored for `key` if it was read under `version` and is still valid at `now`.
    pub fn get(&self, key: &PageKey, version: &DataVersion, now: OffsetDateTime) -> Option<Bytes> {
        let pages = lock(&self.inner);
        let page = pages.pages.get(key)?;
        let valid = page.version == *version && page.computed_at <= now && now < page.valid_until;
        valid.then(|| page.body.clone())
    }

    /// Remembers `body`, read under `version` at `computed_at` and valid before `valid_until`.
    pub fn insert(
        &self,
        key: PageKey,
        version: DataVersion,
        computed_at: OffsetDateTime,
        valid_until: OffsetDateTime,
        body: Bytes,
    ) {
        if key.len() > PageKey::MAX_LEN || body.len() > PAGE_BYTES / 4 || computed_at >= valid_until
        {
            return;
        }
        let mut pages = lock(&self.inner);
        if let Some(old) = pages.pages.remove(&key) {
            pages.bytes -= old.body.len();
        }
        if pages.pages.len() >= PAGE_ENTRIES || pages.bytes + body.len() > PAGE_BYTES {
            // Pages under another version can never be served again (versions only move on).
            pages.pages.retain(|_, p| p.version == version);
            pages.bytes = pages.pages.values().map(|p| p.body.len()).sum();
            if pages.pages.len() >= PAGE_ENTRIES || pages.bytes + body.len() > PAGE_BYTES {
                pages.pages.clear();
                pages.bytes = 0;
            }
        }
        pages.bytes += body.len();
        pages.pages.insert(
            key,
            CachedPage {
                version,
                computed_at,
                valid_until,
                body,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn t(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_700_000_000 + seconds)
    }

    fn record(id: &str) -> TokenRecord {
        TokenRecord {
            id: id.to_owned(),
            hash: "h".to_owned(),
            role: Role::Admin,
            namespace: None,
        }
    }

    #[test]
    fn tokens_expire_after_the_ttl() {
        let cache = TokenCache::new(Duration::seconds(5));
        cache.insert(record("a"), t(10));
        let cases = [
            (t(10), true, "just read"),
            (t(14), true, "inside the TTL"),
            (t(15), false, "the TTL is exclusive"),
            (
                t(9),
                false,
                "a clock that stepped back does not extend trust",
            ),
        ];
        for (now, hit, why) in cases {
            assert_eq!(cache.get("a", now).is_some(), hit, "{why}");
        }
        assert!(cache.get("b", t(10)).is_none(), "never stored");
    }

    #[test]
    fn token_cache_stays_bounded() {
        let cache = TokenCache::new(Duration::seconds(5));
        for i in 0..=TOKEN_ENTRIES {
            cache.insert(record(&i.to_string()), t(0));
        }
        assert!(lock(&cache.entries).len() <= TOKEN_ENTRIES);
        assert!(
            cache.get(&TOKEN_ENTRIES.to_string(), t(0)).is_some(),
            "the newest entry survives the reset"
        );
    }

    fn key(server: &str) -> PageKey {
        PageKey {
            server_name: Some(server.to_owned()),
            cursor: None,
            limit: 100,
        }
    }

    #[test]
    fn pages_need_the_same_version_and_time_inside_their_window() {
        let cache = PageCache::default();
        let v1 = DataVersion::Counter(1);
        cache.insert(
            key("a"),
            v1.clone(),
            t(10),
            t(40),
            Bytes::from_static(b"page"),
        );
        let cases = [
            (
                DataVersion::Counter(1),
                t(10),
                true,
                "same version, same instant",
            ),
            (
                DataVersion::Counter(1),
                t(39),
                true,
                "before the first state change",
            ),
            (
                DataVersion::Counter(1),
                t(40),
                false,
                "an instance may change state now",
            ),
            (
                DataVersion::Counter(1),
                t(9),
                false,
                "clock stepped back before the read",
            ),
            (
                DataVersion::Counter(2),
                t(10),
                false,
                "a write happened since",
            ),
            (
                DataVersion::Snapshot("1".into()),
                t(10),
                false,
                "another kind of version",
            ),
        ];
        for (version, now, hit, why) in cases {
            assert_eq!(cache.get(&key("a"), &version, now).is_some(), hit, "{why}");
        }
        assert!(cache.get(&key("b"), &v1, t(10)).is_none(), "another page");
    }

    #[test]
    fn page_cache_stays_bounded() {
        let cache = PageCache::default();
        let v = DataVersion::Counter(1);
        for i in 0..PAGE_ENTRIES * 2 {
            cache.insert(
                key(&i.to_string()),
                v.clone(),
                t(0),
                t(1),
                Bytes::from_static(b"x"),
            );
        }
        assert!(lock(&cache.inner).pages.len() <= PAGE_ENTRIES);
        let long = key(&"n".repeat(PageKey::MAX_LEN + 1));
        cache.insert(
            long.clone(),
            v.clone(),
            t(0),
            t(1),
            Bytes::from_static(b"x"),
        );
        assert!(
            cache.get(&long, &v, t(0)).is_none(),
            "oversized keys are not kept"
        );
        let huge = Bytes::from(vec![b'x'; PAGE_BYTES]);
        cache.insert(key("huge"), v.clone(), t(0), t(1), huge);
        assert!(
            cache.get(&key("huge"), &v, t(0)).is_none(),
            "oversized bodies are not kept"
        );
        cache.insert(key("r"), v.clone(), t(0), t(1), Bytes::from_static(b"y"));
        let before = lock(&cache.inner).bytes;
        cache.insert(key("r"), v.clone(), t(0), t(1), Bytes::from_static(b"yy"));
        assert_eq!(
            lock(&cache.inner).bytes,
            before + 1,
            "replacing a page accounts for the old body"
        );
    }
}
