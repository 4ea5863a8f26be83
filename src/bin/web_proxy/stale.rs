//! Serving a stale stored response, the two times RFC 9111 and RFC 5861
//! allow a shared cache to: when the origin cannot be reached (RFC 9111
//! §4.2.4), and within the origin's `stale-while-revalidate` window (RFC
//! 5861 §3), while the proxy asks the origin for a fresh one.

use std::io::Read;
use std::sync::Arc;
use std::time::SystemTime;

use crate::cache::Cache;
use crate::cache_status::StorePlan;
use crate::entry::Entry;
use crate::fields::{CollectHeaders, end_to_end};
use crate::http::{BodyLength, BodyReader, HttpUrl, RequestHead, ResponseHead};
use crate::proxy::{Client, Outcome, Proxy, Refusal};
use crate::{hit, origin, policy, relay};

/// The origin could not be reached, hung up or sent no usable answer (502),
/// or did not answer in time (504): a cache cut off from the origin may
/// serve a stale stored response, if no directive forbids it (RFC 9111
/// §4.2.4; `stale` is only set when `policy::may_serve_stale` allowed it).
/// Any other refusal, or nothing stale to serve, is the error it was.
pub fn if_disconnected(
    client: &mut Client,
    request: &RequestHead,
    stale: Option<Arc<Entry>>,
    refusal: Refusal,
    proxy: &Proxy,
) -> Result<Outcome, Refusal> {
    let Some(entry) = stale.filter(|_| matches!(refusal.status, 502 | 504)) else {
        return Err(refusal);
    };
    // Whatever the origin connection was in the middle of is unusable.
    client.origin = None;
    let status = format!(
        "{}; fwd=stale; fwd-status={}; detail=origin-unreachable",
        proxy.name, refusal.status
    );
    Ok(hit::serve(client, request, &entry, "STALE", &status, proxy))
}

/// A revalidation the client does not wait for.
pub struct Revalidation<'a> {
    pub url: &'a HttpUrl,
    /// The request for the origin, with the stored validators if any.
    pub outgoing: RequestHead,
    pub key: String,
    pub cache: Option<&'a Cache>,
}

/// Within `stale-while-revalidate` (RFC 5861 §3) the stale response
/// answers at once (`Cache-Status: hit` with a negative `ttl`, RFC 9211
/// §2.3); then, the client answered, this thread revalidates it and stores
/// what the origin says, so the next request finds it fresh. The client's
/// next request on this connection waits for that, no other client does.
pub fn while_revalidating(
    client: &mut Client,
    request: &RequestHead,
    entry: Arc<Entry>,
    revalidation: Revalidation,
    proxy: &Proxy,
) -> Outcome {
    let age = entry.age(SystemTime::now());
    let stale_for = age.saturating_sub(policy::freshness_lifetime(&entry.facts));
    let status = format!(
        "{}; hit; ttl=-{}; detail=stale-while-revalidate",
        proxy.name,
        stale_for.as_secs()
    );
    let outcome = hit::serve(client, request, &entry, "STALE", &status, proxy);
    if let Some(cache) = revalidation.cache {
        revalidate(client, request, &entry, &revalidation, cache, proxy);
    }
    outcome
}

/// Asks the origin, with nobody waiting: a 304 refreshes the stored
/// response (RFC 9111 §4.3.4), another response replaces it if it may be
/// stored and removes it if not. An origin that fails leaves it as it was.
fn revalidate(
    client: &mut Client,
    request: &RequestHead,
    entry: &Entry,
    revalidation: &Revalidation,
    cache: &Cache,
    proxy: &Proxy,
) {
    let url = revalidation.url;
    let outgoing = &revalidation.outgoing;
    let request_time = SystemTime::now();
    let Ok(mut response) =
        origin::send_to_origin(client, url, outgoing, BodyLength::Empty, false, proxy)
    else {
        client.origin = None;
        return;
    };
    let times = (request_time, SystemTime::now());
    relay::date_if_missing(&mut response, times.1);
    if response.status == 304 && entry.facts.has_validator() {
        let mut not_modified = ResponseHead::new(304, &response.reason);
        not_modified.headers = end_to_end(&response.headers).cloned().collect_headers();
        release(client, response.keep_alive());
        let _ = cache.insert(Arc::new(entry.refreshed(&not_modified, times)));
        return;
    }
    let body = read_whole_body(client, &response, cache.max_object());
    let plan = StorePlan::decide(true, request, &response, true, false);
    match body {
        Some(body) if plan.store => {
            let stored =
                relay::stored_entry(request, &response, body, revalidation.key.clone(), times);
            let _ = cache.insert(Arc::new(stored));
        }
        _ => cache.remove(&revalidation.key),
    }
}

/// The response's body, if it is whole and no larger than the cache keeps;
/// the origin connection stays open only if it was read to its end.
fn read_whole_body(client: &mut Client, response: &ResponseHead, max: usize) -> Option<Vec<u8>> {
    let length = response.body_length("GET").ok()?;
    let origin = client.origin.as_mut()?;
    let mut body = Vec::new();
    let read = BodyReader::new(&mut origin.reader, length)
        .take(max as u64 + 1)
        .read_to_end(&mut body);
    let whole = read.is_ok() && body.len() <= max;
    release(
        client,
        whole && response.keep_alive() && length != BodyLength::UntilClose,
    );
    whole.then_some(body)
}

/// Keeps the origin connection for the next request only if the origin
/// keeps it and nothing unread is left in it.
fn release(client: &mut Client, keep: bool) {
    let stray = client
        .origin
        .as_ref()
        .is_some_and(|o| !o.reader.buffer().is_empty());
    if !keep || stray {
        client.origin = None;
    }
}
