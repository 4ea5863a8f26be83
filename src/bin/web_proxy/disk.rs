//! The cache on disk (`--cache-dir`): one file per entry, named by a hash
//! of its URL, written to a temporary file and renamed into place. Each
//! file carries a checksum of the rest, so a file cut short (a full disk, a
//! crash) or changed on disk is a miss and is removed rather than served;
//! temporary files a crash left behind are removed at start.

use std::fs;
use std::io::{self, BufRead};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::entry::{Entry, facts_of};

const MAGIC: &str = "web_proxy cache entry 2";

/// What [`load`] found in the directory.
#[derive(Debug, Default)]
pub struct Loaded {
    pub entries: Vec<Entry>,
    /// Entry files that failed their checksum or did not parse: removed.
    pub corrupt: usize,
    /// Temporary files of writes that never finished: removed.
    pub leftovers: usize,
}

/// Reads every entry file in `dir`, removing what is not a whole entry.
pub fn load(dir: &Path) -> io::Result<Loaded> {
    let mut loaded = Loaded::default();
    for file in fs::read_dir(dir)?.flatten() {
        let path = file.path();
        let name = file.file_name().to_string_lossy().into_owned();
        if is_temporary(&name) {
            let _ = fs::remove_file(&path);
            loaded.leftovers += 1;
        } else if name.ends_with(".entry") {
            let entry = fs::read(&path).ok().and_then(|bytes| decode(&bytes));
            match entry {
                // The name must be the hash of the key inside (a file
                // renamed by hand would answer for the wrong URL).
                Some(entry) if file_name(&entry.key) == name => loaded.entries.push(entry),
                _ => {
                    let _ = fs::remove_file(&path);
                    loaded.corrupt += 1;
                }
            }
        }
    }
    Ok(loaded)
}

/// Writes the entry to a temporary file and renames it into place, so a
/// crash never leaves half an entry under the real name; a failed write
/// (a full disk) removes its temporary file at once.
pub fn write(dir: &Path, entry: &Entry) -> io::Result<()> {
    let path = dir.join(file_name(&entry.key));
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let written = fs::write(&temporary, encode(entry)).and_then(|()| fs::rename(&temporary, &path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Removes the file of the entry for `key`, if there is one.
pub fn remove(dir: &Path, key: &str) {
    let _ = fs::remove_file(dir.join(file_name(key)));
}

/// `0123456789abcdef.tmp4242`: what [`write`] names a file being written.
fn is_temporary(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, extension)| extension.starts_with("tmp"))
}

/// FNV-1a, 64 bits: tiny, stable across Rust versions (unlike std's
/// hasher), and enough to notice a cut or a flipped bit. Not a defence
/// against someone who can write the directory.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The file an entry lives in: a hash of its key, never the URL's path, so
/// no URL can name a file outside the directory (`../../etc/passwd`). The
/// key inside the file settles the rare collision.
fn file_name(key: &str) -> String {
    format!("{:016x}.entry", fnv1a(key.as_bytes()))
}

/// An entry as bytes: the magic line, the checksum of everything after it,
/// a few `name value` lines, an empty line, then the response head as it
/// would go on the wire, then the body.
fn encode(entry: &Entry) -> Vec<u8> {
    let mut rest = format!(
        "key {}\nrequest-time {}\nresponse-time {}\nbody-length {}\n",
        entry.key,
        seconds(entry.request_time),
        seconds(entry.response_time),
        entry.body.len()
    )
    .into_bytes();
    for (name, value) in &entry.vary {
        match value {
            Some(value) => {
                rest.extend_from_slice(format!("vary {name} ").as_bytes());
                rest.extend_from_slice(value);
                rest.push(b'\n');
            }
            None => rest.extend_from_slice(format!("vary-absent {name}\n").as_bytes()),
        }
    }
    rest.push(b'\n');
    rest.extend_from_slice(&entry.head.to_bytes());
    rest.extend_from_slice(&entry.body);
    let mut out = format!("{MAGIC}\nchecksum {:016x}\n", fnv1a(&rest)).into_bytes();
    out.extend_from_slice(&rest);
    out
}

/// Reads back what [`encode`] wrote; None if anything is off, the checksum
/// first.
fn decode(bytes: &[u8]) -> Option<Entry> {
    let rest = bytes.strip_prefix(format!("{MAGIC}\nchecksum ").as_bytes())?;
    let (sum, mut rest) = (rest.get(..16)?, rest.get(16..)?.strip_prefix(b"\n")?);
    let sum = u64::from_str_radix(std::str::from_utf8(sum).ok()?, 16).ok()?;
    (fnv1a(rest) == sum).then_some(())?;
    let mut entry = Entry {
        key: String::new(),
        head: crate::http::ResponseHead::new(200, "OK"),
        body: Vec::new().into(),
        vary: Vec::new(),
        request_time: UNIX_EPOCH,
        response_time: UNIX_EPOCH,
        facts: Default::default(),
    };
    let body_length = read_fields(&mut rest, &mut entry)?;
    entry.head = crate::http::ResponseHead::read_from(&mut rest).ok()?;
    (rest.len() == body_length).then_some(())?;
    entry.body = rest.into();
    entry.facts = facts_of(&entry.head);
    (!entry.key.is_empty()).then_some(entry)
}

/// Reads the `name value` lines up to the empty one into `entry`; returns
/// the body length they announce.
fn read_fields(bytes: &mut &[u8], entry: &mut Entry) -> Option<usize> {
    let mut body_length = None;
    loop {
        let mut line = Vec::new();
        bytes.read_until(b'\n', &mut line).ok()?;
        let line = line.strip_suffix(b"\n")?;
        if line.is_empty() {
            return body_length;
        }
        let space = line.iter().position(|&b| b == b' ')?;
        let (name, value) = (&line[..space], &line[space + 1..]);
        let text = || std::str::from_utf8(value).ok();
        match name {
            b"key" => entry.key = text()?.to_string(),
            b"request-time" => entry.request_time = time(text()?)?,
            b"response-time" => entry.response_time = time(text()?)?,
            b"body-length" => body_length = Some(text()?.parse::<usize>().ok()?),
            b"vary" => {
                let space = value.iter().position(|&b| b == b' ')?;
                let name = std::str::from_utf8(&value[..space]).ok()?;
                entry
                    .vary
                    .push((name.to_string(), Some(value[space + 1..].to_vec())));
            }
            b"vary-absent" => entry.vary.push((text()?.to_string(), None)),
            _ => return None,
        }
    }
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
    use crate::entry::tests::entry;

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
    fn a_flipped_bit_anywhere_makes_the_file_a_miss() {
        // A bit flipped in the body used to be served as a hit: the body
        // length was still right.
        let bytes = encode(&entry("http://example.org/", 300));
        for at in [bytes.len() - 1, bytes.len() / 2, 40] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x04;
            assert!(decode(&flipped).is_none(), "flipped byte {at} was accepted");
        }
    }

    #[test]
    fn corrupt_files_and_leftover_temporaries_are_removed_at_load() {
        let dir = std::env::temp_dir().join(format!("web_proxy-disk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        let good = entry("http://example.org/good", 100);
        write(&dir, &good).expect("write");
        let bad = entry("http://example.org/bad", 100);
        write(&dir, &bad).expect("write");
        let bad_path = dir.join(file_name(&bad.key));
        let mut bytes = fs::read(&bad_path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&bad_path, bytes).expect("corrupt it");
        // Half a write that a full disk or a crash interrupted.
        let half = dir.join("00000000000000ff.tmp999");
        fs::write(&half, &encode(&good)[..50]).expect("leftover");
        let loaded = load(&dir).expect("load");
        assert_eq!(loaded.entries.len(), 1);
        assert_eq!(loaded.entries[0].key, good.key);
        assert_eq!((loaded.corrupt, loaded.leftovers), (1, 1));
        assert!(!bad_path.exists() && !half.exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
