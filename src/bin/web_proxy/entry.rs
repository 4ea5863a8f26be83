//! One stored response and what is known about it: its head and body,
//! the request fields it varies on, and the times RFC 9111 counts its age
//! from.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::http::{Headers, ResponseHead};
use crate::policy::{self, Facts};
use crate::vary::{self, Varying};

/// Fields a 304 never changes in the stored response: they describe the
/// stored body's bytes (its length, coding, range and digest), or are the
/// validator it was just matched by (RFC 9111 §3.2 lets a cache keep
/// what assures the integrity of what it stored).
const KEPT_FROM_STORED: [&str; 5] = [
    "Content-Length",
    "Content-Encoding",
    "Content-Range",
    "Content-MD5",
    "ETag",
];

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
    pub vary: Varying,
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
        let vary = vary::capture(&head.headers, request);
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
        vary::matches(&self.vary, request)
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
            !KEPT_FROM_STORED
                .iter()
                .any(|kept| name.eq_ignore_ascii_case(kept))
                && not_modified.headers.contains(name)
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

    /// Bytes the entry costs the cache: its body, its head's fields, the
    /// varying fields, and the bookkeeping around them: the `Entry` itself,
    /// the key three times (in the entry, the map, the use order), a slot
    /// in each map, and what the allocator adds to every block. Counting
    /// only body and head let 46,029 small entries take 60 MB under
    /// `--cache-size 8M`.
    pub fn size(&self) -> usize {
        const BLOCK: usize = 16; // malloc's own header and rounding, per block
        const MAP_SLOTS: usize = 2 * size_of::<(String, (u64, Arc<Entry>))>() // hash map, half full
            + size_of::<(u64, String)>() + 2 * size_of::<usize>(); // B-tree slot, Arc counts
        let fixed = size_of::<Entry>() + MAP_SLOTS + 6 * BLOCK;
        let fields: usize = self
            .head
            .headers
            .iter()
            .map(|h| size_of::<crate::http::Header>() + h.name.len() + h.value.len() + 2 * BLOCK)
            .sum();
        let varying: usize = self
            .vary
            .iter()
            .map(|(name, value)| {
                size_of::<(String, Option<Vec<u8>>)>()
                    + name.len()
                    + value.as_ref().map_or(0, Vec::len)
                    + 2 * BLOCK
            })
            .sum();
        let etag = self.facts.etag.as_ref().map_or(0, |t| t.len() + BLOCK);
        fixed
            + self.body.len()
            + 3 * self.key.len()
            + self.head.reason.len()
            + fields
            + varying
            + etag
    }
}

/// Reads the policy facts from a response head.
pub fn facts_of(head: &ResponseHead) -> Facts {
    let fields = head
        .headers
        .iter()
        .filter_map(|h| Some((h.name.as_str(), std::str::from_utf8(&h.value).ok()?)));
    Facts::from_fields(head.status, fields)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// A stored response for the tests: max-age=60, varying on two fields.
    pub fn entry(key: &str, body_len: usize) -> Entry {
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

    #[test]
    fn a_304_never_changes_what_describes_the_stored_body() {
        let mut head = ResponseHead::new(200, "OK");
        head.headers.append("ETag", "\"abcdef\"");
        head.headers.append("Content-Encoding", "gzip");
        let now = SystemTime::now();
        let stored = Entry::new(
            "http://a/".into(),
            head,
            vec![1],
            &Headers::new(),
            (now, now),
        );
        let mut not_modified = ResponseHead::new(304, "Not Modified");
        for (name, value) in [
            ("ETag", "\"ghijkl\""),
            ("Content-Encoding", "br"),
            ("Content-Range", "bytes 0-0/1"),
            ("X-Updated", "yes"),
        ] {
            not_modified.headers.append(name, value);
        }
        let fresh = stored.refreshed(&not_modified, (now, now));
        assert_eq!(fresh.head.headers.get_str("ETag"), Some("\"abcdef\""));
        assert_eq!(fresh.head.headers.get_str("Content-Encoding"), Some("gzip"));
        assert!(!fresh.head.headers.contains("Content-Range"));
        assert_eq!(fresh.head.headers.get_str("X-Updated"), Some("yes"));
    }
}
