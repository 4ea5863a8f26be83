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
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::{Headers, ResponseHead};
use anyhow::Context;

use crate::policy::{self, Facts};

/// One stored response.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The URL it answers, `http://host[:port]/path?query`.
    pub key: String,
    /// Status line and end-to-end fields, without framing fields: the body
    /// is served with a fresh `Content-Length`.
    pub head: ResponseHead,
    /// Shared, so refreshing an entry after a 304 copies no body.
    pub body: Arc<[u8]>,
    /// The request's values of the fields the response's `Vary` names
    /// (RFC 9111 §4.1); `None` where the request did not have the field.
    pub vary: Vec<(String, Option<Vec<u8>>)>,
    /// When the request that fetched it was sent and its response arrived
    /// (RFC 9111 §4.2.3 needs both).
    pub request_time: SystemTime,
    pub response_time: SystemTime,
    /// What the policy needs to know about the head, read once.
    pub facts: Facts,
}

impl Entry {
    pub fn new(
        key: String,
        head: ResponseHead,
        body: Vec<u8>,
        request: &Headers,
        times: (SystemTime, SystemTime),
    ) -> Entry {
        let vary = head
            .headers
            .list("Vary")
            .map(|name| (name.to_ascii_lowercase(), combined(request, name)))
            .collect();
        let facts = facts_of(&head);
        Entry {
            key,
            head,
            body: body.into(),
            vary,
            request_time: times.0,
            response_time: times.1,
            facts,
        }
    }

    /// True if `request` has the same values as the stored request in every
    /// field the response varies on.
    pub fn vary_matches(&self, request: &Headers) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| combined(request, name) == *value)
    }

    /// The entry's age now (RFC 9111 §4.2.3).
    pub fn age(&self, now: SystemTime) -> Duration {
        policy::current_age(&self.facts, self.request_time, self.response_time, now)
    }

    /// Applies a `304 Not Modified` from revalidation (RFC 9111 §4.3.4):
    /// its fields replace the stored ones of the same name, and the clock
    /// starts again from this exchange.
    pub fn refreshed(&self, not_modified: &ResponseHead, times: (SystemTime, SystemTime)) -> Entry {
        let updated = |name: &str| {
            !name.eq_ignore_ascii_case("Content-Length") && not_modified.headers.contains(name)
        };
        // Each updated field keeps its place; new fields go at the end.
        let mut head = ResponseHead::new(self.head.status, &self.head.reason);
        head.version = self.head.version;
        for field in &self.head.headers {
            if !updated(&field.name) {
                head.headers.append(field.name.clone(), field.value.clone());
            } else if !head.headers.contains(&field.name) {
                for value in not_modified.headers.get_all(&field.name) {
                    head.headers.append(field.name.clone(), value.to_vec());
                }
            }
        }
        for field in &not_modified.headers {
            if updated(&field.name) && !head.headers.contains(&field.name) {
                head.headers.append(field.name.clone(), field.value.clone());
            }
        }
        let facts = facts_of(&head);
        Entry {
            head,
            facts,
            request_time: times.0,
            response_time: times.1,
            ..self.clone()
        }
    }

    /// Bytes the entry takes, roughly: its body and its head.
    fn size(&self) -> usize {
        self.body.len() + self.head.to_bytes().len() + self.key.len()
    }
}

/// All the field lines called `name`, combined into one value as RFC 9111
/// §4.1 compares them (joined by commas, in order); None if there are none.
fn combined(headers: &Headers, name: &str) -> Option<Vec<u8>> {
    let mut lines = headers.get_all(name);
    let mut value = lines.next()?.to_vec();
    for line in lines {
        value.extend_from_slice(b", ");
        value.extend_from_slice(line);
    }
    Some(value)
}

/// Reads the policy facts from a response head.
pub fn facts_of(head: &ResponseHead) -> Facts {
    let fields = head
        .headers
        .iter()
        .filter_map(|h| Some((h.name.as_str(), std::str::from_utf8(&h.value).ok()?)));
    Facts::from_fields(head.status, fields)
}

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
    /// there by an earlier run. Returns the cache and how many it loaded.
    pub fn open(capacity: usize, dir: Option<&Path>) -> anyhow::Result<(Cache, usize)> {
        let cache = Cache {
            capacity,
            dir: dir.map(Path::to_path_buf),
            lru: Mutex::default(),
        };
        let Some(dir) = dir else {
            return Ok((cache, 0));
        };
        fs::create_dir_all(dir)
            .with_context(|| format!("failed to create cache directory '{}'", dir.display()))?;
        let listing = fs::read_dir(dir)
            .with_context(|| format!("failed to read cache directory '{}'", dir.display()))?;
        let mut loaded = 0;
        for file in listing.flatten() {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "entry") {
                // A file that does not read back as an entry (cut short by a
                // crash, or not ours) is skipped, not fatal.
                if let Some(entry) = fs::read(&path).ok().and_then(|bytes| decode(&bytes)) {
                    if file_name(&entry.key)
                        == path
                            .file_name()
                            .and_then(|n| n.to_str())
                            .unwrap_or_default()
                    {
                        cache.keep_in_memory(Arc::new(entry));
                        loaded += 1;
                    }
                }
            }
        }
        Ok((cache, loaded))
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
            Some(dir) => write_file(dir, &entry),
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
            let _ = fs::remove_file(dir.join(file_name(key)));
        }
    }

    /// How many entries and bytes are stored (for tests and the log).
    #[cfg(test)]
    fn usage(&self) -> (usize, usize) {
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

// ---------------------------------------------------------------------------
// Entries on disk
// ---------------------------------------------------------------------------

const MAGIC: &str = "web_proxy cache entry 1";

/// The file an entry lives in: a hash of its key, never the URL's path, so
/// no URL can name a file outside the directory (`../../etc/passwd`).
fn file_name(key: &str) -> String {
    // FNV-1a, 64 bits: tiny and stable across Rust versions, unlike std's
    // hasher. The key inside the file settles the rare collision.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}.entry")
}

/// Writes the entry to a temporary file and renames it into place, so a
/// crash never leaves half an entry under the real name.
fn write_file(dir: &Path, entry: &Entry) -> io::Result<()> {
    let path = dir.join(file_name(&entry.key));
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&temporary, encode(entry))?;
    fs::rename(&temporary, &path)
}

/// An entry as bytes: a few `name value` lines, an empty line, then the
/// response head as it would go on the wire, then the body.
fn encode(entry: &Entry) -> Vec<u8> {
    let mut out = format!(
        "{MAGIC}\nkey {}\nrequest-time {}\nresponse-time {}\nbody-length {}\n",
        entry.key,
        seconds(entry.request_time),
        seconds(entry.response_time),
        entry.body.len()
    )
    .into_bytes();
    for (name, value) in &entry.vary {
        match value {
            Some(value) => {
                out.extend_from_slice(format!("vary {name} ").as_bytes());
                out.extend_from_slice(value);
                out.push(b'\n');
            }
            None => out.extend_from_slice(format!("vary-absent {name}\n").as_bytes()),
        }
    }
    out.push(b'\n');
    out.extend_from_slice(&entry.head.to_bytes());
    out.extend_from_slice(&entry.body);
    out
}

/// Reads back what [`encode`] wrote; None if anything is off.
fn decode(mut bytes: &[u8]) -> Option<Entry> {
    let mut key = None;
    let (mut request_time, mut response_time, mut body_length) = (None, None, None);
    let mut vary = Vec::new();
    let mut first = true;
    loop {
        let mut line = Vec::new();
        bytes.read_until(b'\n', &mut line).ok()?;
        let line = line.strip_suffix(b"\n")?;
        if first {
            (line == MAGIC.as_bytes()).then_some(())?;
            first = false;
            continue;
        }
        if line.is_empty() {
            break;
        }
        let space = line.iter().position(|&b| b == b' ')?;
        let (name, value) = (&line[..space], &line[space + 1..]);
        let text = || std::str::from_utf8(value).ok();
        match name {
            b"key" => key = Some(text()?.to_string()),
            b"request-time" => request_time = Some(time(text()?)?),
            b"response-time" => response_time = Some(time(text()?)?),
            b"body-length" => body_length = Some(text()?.parse::<usize>().ok()?),
            b"vary" => {
                let space = value.iter().position(|&b| b == b' ')?;
                let name = std::str::from_utf8(&value[..space]).ok()?;
                vary.push((name.to_string(), Some(value[space + 1..].to_vec())));
            }
            b"vary-absent" => vary.push((text()?.to_string(), None)),
            _ => return None,
        }
    }
    let head = ResponseHead::read_from(&mut bytes).ok()?;
    (bytes.len() == body_length?).then_some(())?;
    let facts = facts_of(&head);
    Some(Entry {
        key: key?,
        head,
        body: bytes.into(),
        vary,
        request_time: request_time?,
        response_time: response_time?,
        facts,
    })
}

/// Reads `seconds.nanoseconds` since 1970, as [`seconds`] writes it.
fn time(text: &str) -> Option<SystemTime> {
    let (secs, nanos) = text.split_once('.')?;
    Some(UNIX_EPOCH + Duration::new(secs.parse().ok()?, nanos.parse().ok()?))
}

fn seconds(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", since.as_secs(), since.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, body_len: usize) -> Entry {
        let mut head = ResponseHead::new(200, "OK");
        head.headers.append("Cache-Control", "max-age=60");
        head.headers.append("Vary", "Accept-Encoding, Accept");
        let mut request = Headers::new();
        request.append("accept-encoding", "gzip");
        let now = UNIX_EPOCH + Duration::from_millis(1_763_700_000_123);
        Entry::new(
            key.to_string(),
            head,
            vec![7u8; body_len],
            &request,
            (now, now),
        )
    }

    #[test]
    fn least_recently_used_is_evicted_first() {
        let one = entry("http://a/", 1000).size();
        let (cache, _) = Cache::open(one * 3, None).expect("memory cache");
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
    fn vary_compares_the_named_request_fields() {
        let stored = entry("http://a/", 10);
        let mut same = Headers::new();
        same.append("Accept-Encoding", "gzip");
        assert!(stored.vary_matches(&same));
        let mut other = same.clone();
        other.append("Accept", "text/html");
        assert!(
            !stored.vary_matches(&other),
            "Accept was absent when stored"
        );
        assert!(!stored.vary_matches(&Headers::new()));
    }

    #[test]
    fn vary_compares_every_field_line() {
        // Stored with `Foo: 1` + `Foo: 2`; `Foo: 1` + `Foo: 3` was a hit
        // when only the first line was compared.
        let mut head = ResponseHead::new(200, "OK");
        head.headers.append("Vary", "Foo");
        let mut request = Headers::new();
        request.append("Foo", "1");
        request.append("Foo", "2");
        let now = SystemTime::now();
        let stored = Entry::new("http://a/".into(), head, vec![], &request, (now, now));
        assert!(stored.vary_matches(&request));
        let mut other = Headers::new();
        other.append("Foo", "1");
        other.append("Foo", "3");
        assert!(!stored.vary_matches(&other));
        let mut one_line = Headers::new();
        one_line.append("foo", "1, 2");
        assert!(stored.vary_matches(&one_line), "the same list on one line");
    }

    #[test]
    fn entries_read_back_from_their_file() {
        let stored = entry("http://example.org/a?b=c", 300);
        let back = decode(&encode(&stored)).expect("decodes");
        assert_eq!(back.key, stored.key);
        assert_eq!(back.head, stored.head);
        assert_eq!(back.body, stored.body);
        assert_eq!(back.vary, stored.vary);
        assert_eq!(back.request_time, stored.request_time);
        let mut cut = encode(&stored);
        cut.pop();
        assert!(decode(&cut).is_none(), "a file cut short is not an entry");
        assert!(decode(b"GET / HTTP/1.1\r\n\r\n").is_none());
        assert!(file_name("http://x/../../etc/passwd").ends_with(".entry"));
        assert!(!file_name("http://x/../../etc/passwd").contains('/'));
    }

    #[test]
    fn a_304_replaces_the_stored_fields() {
        let stored = entry("http://a/", 10);
        let mut not_modified = ResponseHead::new(304, "Not Modified");
        not_modified.headers.append("Cache-Control", "max-age=120");
        not_modified.headers.append("Content-Length", "0");
        not_modified.headers.append("X-New", "1");
        let later = stored.response_time + Duration::from_secs(100);
        let fresh = stored.refreshed(&not_modified, (later, later));
        assert_eq!(fresh.head.status, 200);
        assert_eq!(
            fresh.head.headers.get_str("cache-control"),
            Some("max-age=120")
        );
        assert!(!fresh.head.headers.contains("Content-Length"));
        let names: Vec<&str> = fresh.head.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["Cache-Control", "Vary", "X-New"],
            "updated in place, new at the end"
        );
        assert_eq!(
            fresh.facts.cache_control.max_age,
            Some(Duration::from_secs(120))
        );
        assert_eq!(fresh.body, stored.body);
        assert_eq!(fresh.age(later), Duration::ZERO);
    }
}
