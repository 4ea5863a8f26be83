//! The response store: complete responses kept in memory, bounded by
//! `--cache-size`, the least recently used evicted first; with
//! `--cache-dir`, every entry is also a file, so the cache survives a
//! restart. What may be stored and for how long is decided in `policy`.
//!
//! Entries are shared as `Arc<Entry>`: a hit clones the pointer under the
//! lock and writes the body to the client after releasing it, so a slow
//! client never holds up the others.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;

use crate::disk;
use crate::entry::Entry;

/// The cache: entries by key, and the order they were last used in.
#[derive(Debug)]
pub struct Cache {
    capacity: usize,
    dir: Option<PathBuf>,
    lru: Mutex<Lru>,
}

/// The least-recently-used bookkeeping: every use gets a new tick, so the
/// smallest tick in `by_use` is the entry to evict.
#[derive(Debug, Default)]
struct Lru {
    entries: HashMap<String, (u64, Arc<Entry>)>,
    by_use: BTreeMap<u64, String>,
    tick: u64,
    bytes: usize,
}

impl Cache {
    /// A cache of `capacity` bytes; with `dir`, it loads the entries stored
    /// there by an earlier run. Returns the cache, how many entries it
    /// loaded, and how many files it removed (corrupt, or left half-written).
    pub fn open(capacity: usize, dir: Option<&Path>) -> anyhow::Result<(Cache, usize, usize)> {
        let cache = Cache {
            capacity,
            dir: dir.map(Path::to_path_buf),
            lru: Mutex::default(),
        };
        let Some(dir) = dir else {
            return Ok((cache, 0, 0));
        };
        fs::create_dir_all(dir)
            .with_context(|| format!("failed to create cache directory '{}'", dir.display()))?;
        let loaded = disk::load(dir)
            .with_context(|| format!("failed to read cache directory '{}'", dir.display()))?;
        let (count, removed) = (loaded.entries.len(), loaded.corrupt + loaded.leftovers);
        for entry in loaded.entries {
            cache.keep_in_memory(Arc::new(entry));
        }
        Ok((cache, count, removed))
    }

    /// The largest body worth storing: an eighth of the cache, so one big
    /// download cannot flush everything else.
    pub fn max_object(&self) -> usize {
        self.capacity / 8
    }

    /// The entry for `key`, marked as just used.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let mut lru = self.lock();
        let lru = &mut *lru;
        lru.tick += 1;
        let (used, entry) = lru.entries.get_mut(key)?;
        lru.by_use.remove(used);
        *used = lru.tick;
        lru.by_use.insert(lru.tick, key.to_string());
        Some(Arc::clone(entry))
    }

    /// Stores an entry, replacing any for the same key, and writes it to the
    /// cache directory if there is one. A disk error costs only persistence.
    pub fn insert(&self, entry: Arc<Entry>) -> io::Result<()> {
        let written = match &self.dir {
            Some(dir) => disk::write(dir, &entry),
            None => Ok(()),
        };
        self.keep_in_memory(entry);
        written
    }

    /// Forgets the entry for `key`, in memory and on disk.
    pub fn remove(&self, key: &str) {
        let removed = self.lock().remove(key);
        if removed {
            self.remove_file(key);
        }
    }

    fn keep_in_memory(&self, entry: Arc<Entry>) {
        let size = entry.size();
        if size > self.capacity {
            return;
        }
        let mut evicted = Vec::new();
        {
            let mut lru = self.lock();
            lru.remove(&entry.key);
            while lru.bytes + size > self.capacity {
                let Some((_, oldest)) = lru.by_use.pop_first() else {
                    break;
                };
                lru.remove(&oldest);
                evicted.push(oldest);
            }
            lru.tick += 1;
            let tick = lru.tick;
            lru.by_use.insert(tick, entry.key.clone());
            lru.bytes += size;
            lru.entries.insert(entry.key.clone(), (tick, entry));
        }
        for key in evicted {
            self.remove_file(&key);
        }
    }

    fn remove_file(&self, key: &str) {
        if let Some(dir) = &self.dir {
            disk::remove(dir, key);
        }
    }

    /// How many entries and bytes are stored (for tests and the log).
    #[cfg(test)]
    pub fn usage(&self) -> (usize, usize) {
        let lru = self.lock();
        (lru.entries.len(), lru.bytes)
    }

    // A thread that panicked while holding the lock left the maps
    // consistent (each change is made before anything can panic).
    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Lru {
    fn remove(&mut self, key: &str) -> bool {
        match self.entries.remove(key) {
            Some((used, entry)) => {
                self.by_use.remove(&used);
                self.bytes -= entry.size();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::tests::entry;

    #[test]
    fn least_recently_used_is_evicted_first() {
        let one = entry("http://a/", 1000).size();
        let (cache, _, _) = Cache::open(one * 3, None).expect("memory cache");
        for key in ["http://a/", "http://b/", "http://c/"] {
            cache.insert(Arc::new(entry(key, 1000))).expect("insert");
        }
        assert!(
            cache.get("http://a/").is_some(),
            "a is now the most recently used"
        );
        cache
            .insert(Arc::new(entry("http://d/", 1000)))
            .expect("insert");
        assert!(
            cache.get("http://b/").is_none(),
            "b was the least recently used"
        );
        assert!(cache.get("http://a/").is_some() && cache.get("http://c/").is_some());
        assert_eq!(cache.usage(), (3, one * 3));
        cache.remove("http://a/");
        assert_eq!(cache.usage(), (2, one * 2));
    }

    #[test]
    fn the_size_counts_bookkeeping_not_just_bytes_on_the_wire() {
        let one = entry("http://a/", 1);
        let wire = one.body.len() + one.head.to_bytes().len() + one.key.len();
        assert!(
            one.size() >= wire + size_of::<Entry>() + 2 * one.key.len(),
            "{} bytes counted for an entry of {wire} wire bytes",
            one.size()
        );
        // 20,000 one-byte responses into 1 MiB: what is kept, Entry
        // structs and keys alone, must fit in the 1 MiB.
        let (cache, _, _) = Cache::open(1 << 20, None).expect("memory cache");
        for n in 0..20_000 {
            let key = format!("http://example.org/{n}");
            let _ = cache.insert(Arc::new(entry(&key, 1)));
        }
        let (count, bytes) = cache.usage();
        assert!(bytes <= 1 << 20);
        let floor = count * (size_of::<Entry>() + 3 * "http://example.org/12345".len());
        assert!(
            floor <= 1 << 20,
            "{count} entries kept: at least {floor} bytes"
        );
    }
}
