//! The RFC 9111 rules of a shared cache, as pure functions of what a
//! request and a response say: may this response be stored (§3), how long
//! does it stay fresh (§4.2.1), how old is it now (§4.2.3), may a stored
//! response answer this request or must it be revalidated (§4, §5.2), does a
//! client's own conditional request match it (RFC 9110 §13.1), and which
//! requests invalidate what is stored (§4.4).
//!
//! Nothing here reads a socket or a clock: the caller passes the times, so
//! every rule is tested with fixed dates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The delta-seconds a cache uses when a value is too large to represent
/// (RFC 9111 §1.2.2): 2^31 seconds, about 68 years.
const INFINITE: Duration = Duration::from_secs(2_147_483_648);

/// The largest heuristic freshness lifetime we give a response that has a
/// Last-Modified but no explicit lifetime (§4.2.2 leaves the cap to us).
const HEURISTIC_CAP: Duration = Duration::from_secs(24 * 60 * 60);

/// Status codes a cache may store without explicit freshness (RFC 9110 §15.1,
/// "heuristically cacheable").
const HEURISTIC_STATUS: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// The Cache-Control directives (RFC 9111 §5.2) a shared cache acts on,
/// from a request or a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    /// `must-revalidate` or `proxy-revalidate`: never serve it stale.
    pub must_revalidate: bool,
    pub max_age: Option<Duration>,
    /// The shared-cache lifetime, which wins over `max-age` here.
    pub s_maxage: Option<Duration>,
    /// A request's `max-stale`: `Some(INFINITE)` when given without a value.
    pub max_stale: Option<Duration>,
    pub min_fresh: Option<Duration>,
    /// A response's `stale-while-revalidate` (RFC 5861 §3): how long past
    /// its lifetime it may still answer while the cache revalidates it.
    pub stale_while_revalidate: Option<Duration>,
    /// A request's `only-if-cached`: answer from the cache or with 504.
    pub only_if_cached: bool,
    /// `must-understand` (§5.2.2.3): store only a status code we know the
    /// caching rules of, and then ignore `no-store`.
    pub must_understand: bool,
}

impl CacheControl {
    /// Reads directives such as `max-age=60`, `no-cache` or
    /// `private="Set-Cookie"`, one per item, case-insensitively. Unknown
    /// directives are ignored (§5.2.3); the qualified forms of `no-cache` and
    /// `private` are treated as unqualified, as a shared cache may (§5.2.2.4).
    pub fn parse<'a>(directives: impl IntoIterator<Item = &'a str>) -> CacheControl {
        let mut cc = CacheControl::default();
        for directive in directives {
            let (name, value) = match directive.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            match name.to_ascii_lowercase().as_str() {
                "no-store" => cc.no_store = true,
                "no-cache" => cc.no_cache = true,
                "private" => cc.private = true,
                "public" => cc.public = true,
                "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
                "max-age" => cc.max_age = cc.max_age.or(Some(delta_seconds(value))),
                "s-maxage" => cc.s_maxage = cc.s_maxage.or(Some(delta_seconds(value))),
                "max-stale" => {
                    cc.max_stale = Some(value.map_or(INFINITE, |v| delta_seconds(Some(v))))
                }
                "min-fresh" => cc.min_fresh = Some(delta_seconds(value)),
                "stale-while-revalidate" => cc.stale_while_revalidate = Some(delta_seconds(value)),
                "only-if-cached" => cc.only_if_cached = true,
                "must-understand" => cc.must_understand = true,
                _ => {}
            }
        }
        cc
    }
}

/// A delta-seconds value (§1.2.2). An invalid one makes the response
/// stale (zero), as §4.2.1 encourages; a huge one is capped.
fn delta_seconds(value: Option<&str>) -> Duration {
    match value {
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => v
            .parse::<u64>()
            .map_or(INFINITE, |secs| Duration::from_secs(secs).min(INFINITE)),
        _ => Duration::ZERO,
    }
}

/// Parses an HTTP-date (RFC 9110 §5.6.7) with httpdate; None if invalid.
pub fn http_date(text: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(text.trim()).ok()
}

/// What the freshness and validation rules need to know about a stored
/// response, read once from its head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub status: u16,
    pub cache_control: CacheControl,
    /// `Date`: when the origin generated the response.
    pub date: Option<SystemTime>,
    /// `Expires`. An invalid date such as `0` means "already expired"
    /// (§5.3) and is kept as the Unix epoch.
    pub expires: Option<SystemTime>,
    pub last_modified: Option<SystemTime>,
    /// `Age`: how long upstream caches already held it.
    pub age: Duration,
    pub etag: Option<String>,
    /// `Vary: *`: the response depends on more than the request's headers.
    pub vary_star: bool,
}

impl Facts {
    /// Reads the facts from a response's status and header fields, given as
    /// (name, value) pairs in any case. Several `Cache-Control` lines are one
    /// list (RFC 9110 §5.3).
    pub fn from_fields<'a>(
        status: u16,
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Facts {
        let mut facts = Facts {
            status,
            ..Facts::default()
        };
        let mut directives = Vec::new();
        let mut age_seen = false;
        for (name, value) in fields {
            match name.to_ascii_lowercase().as_str() {
                "cache-control" => directives.extend(value.split(',').map(str::trim)),
                "date" => facts.date = facts.date.or(http_date(value)),
                "expires" => {
                    facts.expires = facts
                        .expires
                        .or(Some(http_date(value).unwrap_or(UNIX_EPOCH)))
                }
                "last-modified" => facts.last_modified = facts.last_modified.or(http_date(value)),
                // §5.1: a list, or several lines, counts by its first
                // member; the later ones are discarded, never added up.
                "age" if !age_seen => {
                    age_seen = true;
                    let first = value.split(',').next().unwrap_or_default();
                    facts.age = delta_seconds(Some(first.trim()));
                }
                "etag" => facts.etag = facts.etag.take().or(Some(value.trim().to_string())),
                "vary" => facts.vary_star |= value.split(',').any(|v| v.trim() == "*"),
                _ => {}
            }
        }
        facts.cache_control = CacheControl::parse(directives);
        facts
    }

    /// True if the response carries a validator for a conditional request.
    pub fn has_validator(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// What the request that fetched a response said, for [`may_store`].
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    pub method: String,
    pub cache_control: CacheControl,
    pub has_authorization: bool,
    /// A `Range` request gets a part of the body, which we do not store.
    pub has_range: bool,
}

/// Why a response may not be stored (§3), or `Ok` if it may.
pub fn may_store(request: &RequestFacts, response: &Facts) -> Result<(), &'static str> {
    let cc = &response.cache_control;
    let explicit =
        cc.max_age.is_some() || cc.s_maxage.is_some() || response.expires.is_some() || cc.public;
    if request.method != "GET" {
        return Err("not a GET");
    }
    if request.has_range || response.status == 206 {
        return Err("partial content");
    }
    // A 304 answers a client's own conditional request: it has no body to
    // store (a stored response is refreshed by one, §4.3.4, never replaced).
    if response.status == 304 || response.status < 200 {
        return Err("no content to store");
    }
    // §5.2.2.3: must-understand stores only status codes whose caching
    // rules we know, and in that case overrides no-store.
    let understood =
        HEURISTIC_STATUS.contains(&response.status) || matches!(response.status, 302 | 303 | 307);
    if cc.must_understand && !understood {
        return Err("must-understand, unknown status");
    }
    if request.cache_control.no_store || (cc.no_store && !cc.must_understand) {
        return Err("no-store");
    }
    if cc.private {
        return Err("private");
    }
    // §3.5: a shared cache may reuse an answer to an authenticated request
    // only if the response says so.
    if request.has_authorization && !(cc.public || cc.must_revalidate || cc.s_maxage.is_some()) {
        return Err("authorization");
    }
    if response.vary_star {
        return Err("vary *");
    }
    if !(explicit || HEURISTIC_STATUS.contains(&response.status)) {
        return Err("status not cacheable");
    }
    // Storing what could never be used again only costs memory.
    if freshness_lifetime(response).is_zero() && !response.has_validator() {
        return Err("neither fresh nor validatable");
    }
    Ok(())
}

/// How long a response stays fresh after it was generated (§4.2.1):
/// `s-maxage`, then `max-age`, then `Expires - Date`, then a heuristic of a
/// tenth of the time since `Last-Modified` (§4.2.2), else zero.
pub fn freshness_lifetime(response: &Facts) -> Duration {
    let cc = &response.cache_control;
    if let Some(lifetime) = cc.s_maxage.or(cc.max_age) {
        return lifetime;
    }
    if let Some(expires) = response.expires {
        // Without a `Date` there is nothing to count from (the proxy adds
        // one to every response it receives, RFC 9110 §6.6.1): stale.
        let Some(date) = response.date else {
            return Duration::ZERO;
        };
        return expires.duration_since(date).unwrap_or(Duration::ZERO);
    }
    let heuristic_allowed = cc.public || HEURISTIC_STATUS.contains(&response.status);
    match (response.last_modified, response.date) {
        (Some(modified), Some(date)) if heuristic_allowed => {
            (date.duration_since(modified).unwrap_or(Duration::ZERO) / 10).min(HEURISTIC_CAP)
        }
        _ => Duration::ZERO,
    }
}

/// The current age of a stored response (§4.2.3): how long ago the origin
/// generated it, counting upstream caches' `Age`, the time the response
/// took to reach us, and how long we have held it.
pub fn current_age(
    response: &Facts,
    request_time: SystemTime,
    response_time: SystemTime,
    now: SystemTime,
) -> Duration {
    let since = |later: SystemTime, earlier: SystemTime| {
        later.duration_since(earlier).unwrap_or(Duration::ZERO)
    };
    let apparent_age = since(response_time, response.date.unwrap_or(response_time));
    let response_delay = since(response_time, request_time);
    let corrected_age_value = response.age + response_delay;
    let corrected_initial_age = apparent_age.max(corrected_age_value);
    let resident_time = since(now, response_time);
    corrected_initial_age + resident_time
}

/// What to do with a stored response for a new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Serve it as it is: a cache hit.
    Fresh,
    /// Ask the origin first (a conditional request if it has a validator).
    Revalidate,
}

/// Decides whether a stored response may answer a request as it is (§4.2,
/// §5.2.1): a request's `no-cache` or `max-age=0` (a browser's reload), or a
/// response's `no-cache`, always revalidates; otherwise it must be fresh
/// enough for both the response and the request's own limits.
pub fn reuse(
    request: &CacheControl,
    pragma_no_cache: bool,
    response: &Facts,
    age: Duration,
) -> Reuse {
    let lifetime = freshness_lifetime(response);
    let rcc = &response.cache_control;
    // §5.4: `Pragma: no-cache` counts only when there is no Cache-Control.
    if request.no_cache || pragma_no_cache || rcc.no_cache {
        return Reuse::Revalidate;
    }
    if request.max_age.is_some_and(|max| age > max) || request.max_age == Some(Duration::ZERO) {
        return Reuse::Revalidate;
    }
    let fresh_for = lifetime.saturating_sub(age);
    if let Some(min_fresh) = request.min_fresh {
        if fresh_for < min_fresh || lifetime <= age {
            return Reuse::Revalidate;
        }
    }
    if age < lifetime {
        return Reuse::Fresh;
    }
    // Stale: a client's max-stale may accept it, unless the origin forbade
    // serving it stale (§5.2.2.2); for a shared cache `s-maxage` forbids it
    // too, as it implies `proxy-revalidate` (§5.2.2.10).
    let staleness = age - lifetime;
    let never_stale = rcc.must_revalidate || rcc.s_maxage.is_some();
    match request.max_stale {
        Some(max_stale) if staleness <= max_stale && !never_stale => Reuse::Fresh,
        _ => Reuse::Revalidate,
    }
}

/// True if a stored response that may not be used as it is may still
/// answer when the origin cannot be reached (RFC 9111 §4.2.4: a cache that
/// is disconnected may serve stale, unless a directive forbids it). The
/// response's `must-revalidate`, `proxy-revalidate` (§5.2.2.2, §5.2.2.8),
/// `s-maxage` (§5.2.2.10) and `no-cache` (§5.2.2.4) forbid it; so do the
/// client's `no-cache`, `Pragma: no-cache` and a `max-age` it is older
/// than (§5.2.1).
pub fn may_serve_stale(
    request: &CacheControl,
    pragma_no_cache: bool,
    response: &Facts,
    age: Duration,
) -> bool {
    let rcc = &response.cache_control;
    let forbidden = rcc.must_revalidate || rcc.s_maxage.is_some() || rcc.no_cache;
    let client_refuses =
        request.no_cache || pragma_no_cache || request.max_age.is_some_and(|max| age > max);
    !forbidden && !client_refuses
}

/// True if a stale stored response may answer now and be revalidated
/// after (RFC 5861 §3): it is stale by no more than its
/// `stale-while-revalidate`, no directive forbids serving it stale (see
/// `may_serve_stale`), and the client did not ask for `min-fresh`.
pub fn serve_while_revalidating(
    request: &CacheControl,
    pragma_no_cache: bool,
    response: &Facts,
    age: Duration,
) -> bool {
    let Some(window) = response.cache_control.stale_while_revalidate else {
        return false;
    };
    let lifetime = freshness_lifetime(response);
    age >= lifetime
        && age - lifetime <= window
        && request.min_fresh.is_none()
        && may_serve_stale(request, pragma_no_cache, response, age)
}

/// True if a client's own conditional request (`If-None-Match`, else
/// `If-Modified-Since`) matches the stored response, so the cache answers
/// 304 itself (RFC 9111 §4.3.2, RFC 9110 §13.1.2 and §13.1.3).
/// `If-None-Match` uses the weak comparison; when it is present,
/// `If-Modified-Since` is ignored.
pub fn not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    response: &Facts,
) -> bool {
    if let Some(tags) = if_none_match {
        let ours = match &response.etag {
            Some(etag) => weak(etag),
            None => return tags.trim() == "*",
        };
        return tags
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || weak(tag) == ours);
    }
    let (Some(since), Some(modified)) = (
        if_modified_since.and_then(http_date),
        response.last_modified.or(response.date),
    ) else {
        return false;
    };
    modified <= since
}

/// An entity tag without its weakness mark `W/`.
fn weak(tag: &str) -> &str {
    tag.trim().strip_prefix("W/").unwrap_or(tag.trim())
}

/// True if a request with this method, answered with this status, must
/// remove what is stored for its URI (§4.4): an unsafe method that
/// succeeded may have changed the resource.
pub fn invalidates(method: &str, status: u16) -> bool {
    let safe = matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE");
    !safe && (200..400).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Sat, 21 Nov 2026 06:00:00 GMT";

    fn at(text: &str) -> SystemTime {
        http_date(text).expect("test date")
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn response(fields: &[(&str, &str)]) -> Facts {
        Facts::from_fields(200, fields.iter().copied())
    }

    fn get() -> RequestFacts {
        RequestFacts {
            method: "GET".into(),
            ..RequestFacts::default()
        }
    }

    #[test]
    fn cache_control_directives_are_read_case_insensitively() {
        let cc = CacheControl::parse([
            "Max-Age=60",
            "no-cache",
            "PRIVATE=\"Set-Cookie\"",
            "s-maxage=\"30\"",
            "x-unknown",
        ]);
        assert_eq!(cc.max_age, Some(secs(60)));
        assert_eq!(cc.s_maxage, Some(secs(30)));
        assert!(cc.no_cache && cc.private && !cc.no_store);
    }

    #[test]
    fn invalid_and_huge_delta_seconds() {
        assert_eq!(
            CacheControl::parse(["max-age=abc"]).max_age,
            Some(Duration::ZERO)
        );
        assert_eq!(
            CacheControl::parse(["max-age=-5"]).max_age,
            Some(Duration::ZERO)
        );
        assert_eq!(
            CacheControl::parse(["max-age=99999999999999999999999"]).max_age,
            Some(INFINITE)
        );
        // The first of two max-age directives is used (§4.2.1).
        assert_eq!(
            CacheControl::parse(["max-age=5", "max-age=50"]).max_age,
            Some(secs(5))
        );
        assert_eq!(CacheControl::parse(["max-stale"]).max_stale, Some(INFINITE));
    }

    #[test]
    fn several_cache_control_lines_are_one_list() {
        let facts = response(&[
            ("Cache-Control", "public"),
            ("cache-control", "max-age=10, must-revalidate"),
        ]);
        assert!(facts.cache_control.public && facts.cache_control.must_revalidate);
        assert_eq!(facts.cache_control.max_age, Some(secs(10)));
    }

    #[test]
    fn freshness_prefers_s_maxage_then_max_age_then_expires() {
        let expires = [("Date", DATE), ("Expires", "Sat, 21 Nov 2026 07:00:00 GMT")];
        assert_eq!(freshness_lifetime(&response(&expires)), secs(3600));
        let with_max_age = [expires[0], expires[1], ("Cache-Control", "max-age=60")];
        assert_eq!(freshness_lifetime(&response(&with_max_age)), secs(60));
        let with_s_maxage = [
            expires[0],
            expires[1],
            ("Cache-Control", "max-age=60, s-maxage=5"),
        ];
        assert_eq!(freshness_lifetime(&response(&with_s_maxage)), secs(5));
    }

    #[test]
    fn an_invalid_expires_means_already_expired() {
        let facts = response(&[("Date", DATE), ("Expires", "0")]);
        assert_eq!(freshness_lifetime(&facts), Duration::ZERO);
        // Not "Expires minus 1970" either when the Date is missing.
        let no_date = response(&[("Expires", "Thu, 01 Jan 2015 00:00:00 GMT")]);
        assert_eq!(freshness_lifetime(&no_date), Duration::ZERO);
        assert!(may_store(&get(), &facts).is_err(), "no validator either");
    }

    #[test]
    fn heuristic_freshness_is_a_tenth_since_last_modified_capped_at_a_day() {
        let ten_hours = response(&[
            ("Date", DATE),
            ("Last-Modified", "Fri, 20 Nov 2026 20:00:00 GMT"),
        ]);
        assert_eq!(freshness_lifetime(&ten_hours), secs(3600));
        let years = response(&[
            ("Date", DATE),
            ("Last-Modified", "Tue, 28 Jul 2020 09:20:49 GMT"),
        ]);
        assert_eq!(freshness_lifetime(&years), HEURISTIC_CAP);
        let not_heuristic = Facts::from_fields(
            302,
            [
                ("Date", DATE),
                ("Last-Modified", "Fri, 20 Nov 2026 20:00:00 GMT"),
            ],
        );
        assert_eq!(freshness_lifetime(&not_heuristic), Duration::ZERO);
    }

    #[test]
    fn what_may_be_stored() {
        let fresh = response(&[("Cache-Control", "max-age=60")]);
        assert_eq!(may_store(&get(), &fresh), Ok(()));
        let validatable = response(&[("ETag", "\"v1\""), ("Cache-Control", "no-cache")]);
        assert_eq!(may_store(&get(), &validatable), Ok(()));

        for (fields, why) in [
            (vec![("Cache-Control", "no-store, max-age=60")], "no-store"),
            (vec![("Cache-Control", "private, max-age=60")], "private"),
            (
                vec![("Cache-Control", "max-age=60"), ("Vary", "Accept, *")],
                "vary *",
            ),
            (
                vec![("Content-Type", "text/plain")],
                "neither fresh nor validatable",
            ),
        ] {
            assert_eq!(
                may_store(&get(), &response(&fields)),
                Err(why),
                "{fields:?}"
            );
        }
        let post = RequestFacts {
            method: "POST".into(),
            ..get()
        };
        assert_eq!(may_store(&post, &fresh), Err("not a GET"));
        let request_no_store = RequestFacts {
            cache_control: CacheControl::parse(["no-store"]),
            ..get()
        };
        assert_eq!(may_store(&request_no_store, &fresh), Err("no-store"));
        let range = RequestFacts {
            has_range: true,
            ..get()
        };
        assert_eq!(may_store(&range, &fresh), Err("partial content"));
        let not_modified =
            Facts::from_fields(304, [("Cache-Control", "max-age=60"), ("ETag", "\"x\"")]);
        assert_eq!(may_store(&get(), &not_modified), Err("no content to store"));
        let redirect = Facts::from_fields(302, [("ETag", "\"x\"")]);
        assert_eq!(may_store(&get(), &redirect), Err("status not cacheable"));
        let redirect_with_lifetime = Facts::from_fields(302, [("Cache-Control", "max-age=60")]);
        assert_eq!(may_store(&get(), &redirect_with_lifetime), Ok(()));
    }

    #[test]
    fn authorized_requests_are_stored_only_when_the_response_allows() {
        let authorized = RequestFacts {
            has_authorization: true,
            ..get()
        };
        assert_eq!(
            may_store(&authorized, &response(&[("Cache-Control", "max-age=60")])),
            Err("authorization")
        );
        for allowing in [
            "public, max-age=60",
            "s-maxage=60",
            "max-age=60, must-revalidate",
        ] {
            let facts = response(&[("Cache-Control", allowing)]);
            assert_eq!(may_store(&authorized, &facts), Ok(()), "{allowing}");
        }
    }

    #[test]
    fn age_counts_the_trip_upstream_caches_and_residence() {
        let generated = at(DATE);
        let requested = generated + secs(2);
        let received = generated + secs(3);
        let facts = response(&[("Date", DATE), ("Age", "10")]);
        // Age 10 + 1 s on the way beats the apparent age of 3 s; then 20 s in our cache.
        assert_eq!(
            current_age(&facts, requested, received, received + secs(20)),
            secs(31)
        );
        // A clock that runs behind the origin's never makes the age negative.
        let no_age = response(&[("Date", DATE)]);
        let early = generated - secs(100);
        assert_eq!(current_age(&no_age, early, early, early), Duration::ZERO);
        // No Date: our receipt time stands in for it.
        assert_eq!(
            current_age(&response(&[]), received, received, received + secs(5)),
            secs(5)
        );
    }

    #[test]
    fn fresh_responses_are_reused_until_the_client_or_origin_says_otherwise() {
        let facts = response(&[("Cache-Control", "max-age=60")]);
        let none = CacheControl::default();
        assert_eq!(reuse(&none, false, &facts, secs(10)), Reuse::Fresh);
        assert_eq!(
            reuse(&none, false, &facts, secs(60)),
            Reuse::Revalidate,
            "stale at exactly its lifetime"
        );
        assert_eq!(
            reuse(&CacheControl::parse(["no-cache"]), false, &facts, secs(1)),
            Reuse::Revalidate
        );
        assert_eq!(
            reuse(
                &CacheControl::parse(["max-age=0"]),
                false,
                &facts,
                Duration::ZERO
            ),
            Reuse::Revalidate
        );
        assert_eq!(
            reuse(&CacheControl::parse(["max-age=5"]), false, &facts, secs(10)),
            Reuse::Revalidate
        );
        assert_eq!(
            reuse(&none, true, &facts, secs(1)),
            Reuse::Revalidate,
            "Pragma: no-cache"
        );
        assert_eq!(
            reuse(
                &CacheControl::parse(["min-fresh=55"]),
                false,
                &facts,
                secs(10)
            ),
            Reuse::Revalidate
        );
        let origin_no_cache = response(&[("Cache-Control", "no-cache, max-age=60")]);
        assert_eq!(
            reuse(&none, false, &origin_no_cache, Duration::ZERO),
            Reuse::Revalidate
        );
    }

    #[test]
    fn max_stale_accepts_stale_unless_must_revalidate() {
        let facts = response(&[("Cache-Control", "max-age=60")]);
        assert_eq!(
            reuse(
                &CacheControl::parse(["max-stale=30"]),
                false,
                &facts,
                secs(80)
            ),
            Reuse::Fresh
        );
        assert_eq!(
            reuse(
                &CacheControl::parse(["max-stale=10"]),
                false,
                &facts,
                secs(80)
            ),
            Reuse::Revalidate
        );
        let strict = response(&[("Cache-Control", "max-age=60, must-revalidate")]);
        assert_eq!(
            reuse(
                &CacheControl::parse(["max-stale"]),
                false,
                &strict,
                secs(80)
            ),
            Reuse::Revalidate
        );
    }

    #[test]
    fn must_understand_stores_only_known_statuses() {
        // The cache-tests status-599-must-understand input.
        let unknown = Facts::from_fields(599, [("Cache-Control", "max-age=3600, must-understand")]);
        assert!(may_store(&get(), &unknown).is_err());
        let known = Facts::from_fields(
            200,
            [("Cache-Control", "max-age=3600, must-understand, no-store")],
        );
        assert_eq!(may_store(&get(), &known), Ok(()));
    }

    #[test]
    fn s_maxage_implies_proxy_revalidate() {
        // s-maxage=1, requested with max-stale=600 at age 80: before this
        // rule (§5.2.2.10) the stale response was served.
        let facts = response(&[("Cache-Control", "s-maxage=1")]);
        let lenient = CacheControl::parse(["max-stale=600"]);
        assert_eq!(reuse(&lenient, false, &facts, secs(80)), Reuse::Revalidate);
        let private_lifetime = response(&[("Cache-Control", "max-age=1")]);
        assert_eq!(
            reuse(&lenient, false, &private_lifetime, secs(80)),
            Reuse::Fresh
        );
    }

    #[test]
    fn stale_on_a_disconnected_origin_only_when_no_directive_forbids_it() {
        let none = CacheControl::default();
        let at = secs(100);
        assert!(may_serve_stale(
            &none,
            false,
            &response(&[("Cache-Control", "max-age=2")]),
            at
        ));
        for forbids in [
            "max-age=2, must-revalidate",
            "max-age=2, proxy-revalidate",
            "s-maxage=2",
            "no-cache",
        ] {
            let stored = response(&[("Cache-Control", forbids)]);
            assert!(!may_serve_stale(&none, false, &stored, at), "{forbids}");
        }
        let stored = response(&[("Cache-Control", "max-age=2")]);
        assert!(!may_serve_stale(
            &CacheControl::parse(["no-cache"]),
            false,
            &stored,
            at
        ));
        assert!(
            !may_serve_stale(&none, true, &stored, at),
            "Pragma: no-cache"
        );
        assert!(!may_serve_stale(
            &CacheControl::parse(["max-age=10"]),
            false,
            &stored,
            at
        ));
        assert!(may_serve_stale(
            &CacheControl::parse(["max-age=1000"]),
            false,
            &stored,
            at
        ));
    }

    #[test]
    fn stale_while_revalidate_only_within_its_window() {
        let none = CacheControl::default();
        let stored = response(&[("Cache-Control", "max-age=1, stale-while-revalidate=4")]);
        assert!(
            !serve_while_revalidating(&none, false, &stored, secs(0)),
            "fresh"
        );
        assert!(serve_while_revalidating(&none, false, &stored, secs(3)));
        assert!(
            serve_while_revalidating(&none, false, &stored, secs(5)),
            "at the edge"
        );
        assert!(
            !serve_while_revalidating(&none, false, &stored, secs(6)),
            "past the window"
        );
        let plain = response(&[("Cache-Control", "max-age=1")]);
        assert!(!serve_while_revalidating(&none, false, &plain, secs(3)));
        let strict = response(&[(
            "Cache-Control",
            "max-age=1, stale-while-revalidate=4, must-revalidate",
        )]);
        assert!(!serve_while_revalidating(&none, false, &strict, secs(3)));
        let min_fresh = CacheControl::parse(["min-fresh=1"]);
        assert!(!serve_while_revalidating(
            &min_fresh,
            false,
            &stored,
            secs(3)
        ));
        assert!(
            !serve_while_revalidating(&none, true, &stored, secs(3)),
            "Pragma: no-cache"
        );
    }

    #[test]
    fn age_lists_and_repeated_lines_count_by_their_first_member() {
        // The cache-tests age-parse-suffix, -suffix-twoline, -prefix-twoline
        // and -dup-0 inputs: the first member of the first line counts.
        for (lines, age) in [
            (&["7200, 0"][..], 7200),
            (&["7200", "0"][..], 7200),
            (&["0", "7200"][..], 0),
            (&["0, 0"][..], 0),
            (&["0,7200"][..], 0),
            (&["abc, 7200"][..], 0),
        ] {
            let fields: Vec<(&str, &str)> = lines.iter().map(|v| ("Age", *v)).collect();
            assert_eq!(response(&fields).age, secs(age), "{lines:?}");
        }
    }

    #[test]
    fn client_conditionals() {
        let facts = response(&[
            ("ETag", "W/\"v1\""),
            ("Last-Modified", "Tue, 28 Jul 2020 09:20:49 GMT"),
        ]);
        assert!(
            not_modified(Some("\"v1\""), None, &facts),
            "weak comparison"
        );
        assert!(not_modified(Some("\"v0\", W/\"v1\""), None, &facts));
        assert!(not_modified(Some("*"), None, &facts));
        assert!(
            !not_modified(
                Some("\"v2\""),
                Some("Tue, 28 Jul 2020 09:20:49 GMT"),
                &facts
            ),
            "INM wins over IMS"
        );
        assert!(not_modified(
            None,
            Some("Tue, 28 Jul 2020 09:20:49 GMT"),
            &facts
        ));
        assert!(not_modified(
            None,
            Some("Wed, 29 Jul 2020 00:00:00 GMT"),
            &facts
        ));
        assert!(!not_modified(
            None,
            Some("Mon, 27 Jul 2020 00:00:00 GMT"),
            &facts
        ));
        assert!(!not_modified(None, Some("not a date"), &facts));
        assert!(!not_modified(None, None, &facts));
    }

    #[test]
    fn unsafe_methods_that_succeed_invalidate() {
        assert!(invalidates("POST", 200));
        assert!(invalidates("DELETE", 204));
        assert!(invalidates("PUT", 303));
        assert!(!invalidates("POST", 500));
        assert!(!invalidates("GET", 200));
        assert!(!invalidates("HEAD", 200));
    }
}
