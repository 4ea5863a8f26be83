//! Why the cache did what it did, told to the client in `Cache-Status`
//! (RFC 9211) and to the access log: a hit and its remaining lifetime,
//! or why the request went forward (`fwd=uri-miss`, `vary-miss`, `stale`,
//! `request`) and whether the response was stored, and if not, why.

use crate::http::{Headers, RequestHead, ResponseHead};
use crate::policy::{self, CacheControl, RequestFacts};

/// Whether and why a response is stored, decided from its head before its
/// body is relayed.
pub struct StorePlan {
    pub store: bool,
    /// Both the access log's word and RFC 9211's `fwd` parameter.
    pub log: &'static str,
    pub cache_status: String,
}

impl StorePlan {
    pub fn decide(
        enabled: bool,
        request: &RequestHead,
        response: &ResponseHead,
        was_stale: bool,
        vary_miss: bool,
    ) -> StorePlan {
        if !enabled {
            return StorePlan {
                store: false,
                log: "BYPASS",
                cache_status: "fwd=bypass".into(),
            };
        }
        let request_cc = request_cache_control(&request.headers);
        let fwd = if client_forced(request) {
            "request"
        } else if was_stale {
            "stale"
        } else if vary_miss {
            "vary-miss"
        } else {
            "uri-miss"
        };
        let facts = crate::entry::facts_of(response);
        let request_facts = RequestFacts {
            method: request.method.clone(),
            cache_control: request_cc,
            has_authorization: request.headers.contains("Authorization"),
            has_range: request.headers.contains("Range"),
        };
        let status = response.status;
        match policy::may_store(&request_facts, &facts) {
            Ok(()) => StorePlan {
                store: true,
                log: "MISS",
                cache_status: format!("fwd={fwd}; fwd-status={status}; stored"),
            },
            Err(why) => StorePlan {
                store: false,
                log: "MISS",
                cache_status: format!("fwd={fwd}; fwd-status={status}; detail=\"{why}\""),
            },
        }
    }
}

pub fn request_cache_control(headers: &Headers) -> CacheControl {
    CacheControl::parse(headers.list("Cache-Control"))
}

/// `Pragma: no-cache` counts only when there is no Cache-Control (RFC 9111 §5.4).
pub fn pragma_no_cache(headers: &Headers) -> bool {
    !headers.contains("Cache-Control") && headers.has_token("Pragma", "no-cache")
}

/// True if the client asked for a fresh answer (a browser's reload sends
/// `Cache-Control: max-age=0`, a forced reload `no-cache`): RFC 9211's
/// `fwd=request`.
pub fn client_forced(request: &RequestHead) -> bool {
    let cc = request_cache_control(&request.headers);
    cc.no_cache || cc.max_age.is_some() || pragma_no_cache(&request.headers)
}
