//! `http://` URLs and `host:port` authorities (RFC 9110 §4.2, RFC 9112 §3.2).

use std::fmt;
use std::str::FromStr;

/// An `http://host[:port][/path][?query]` URL (RFC 9110 §4.2.1), as given to
/// `http_get` or sent to a proxy in absolute-form (RFC 9112 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// A name or an IP address; an IPv6 address without its brackets.
    pub host: String,
    /// 80 unless the URL says otherwise.
    pub port: u16,
    /// What goes in an origin-form request line: starts with `/`, never
    /// has a `#fragment` (fragments are not sent, RFC 9110 §7.1).
    pub path_and_query: String,
}

/// Why text is not an `http://` URL. The text quotes the bad part, so a
/// server should answer with a fixed message instead of echoing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// No `scheme://` at all, e.g. an origin-form `/path`.
    NotAbsolute,
    /// `https://`, `ftp://`... (a proxy answers 501).
    UnsupportedScheme(String),
    MissingHost,
    BadHost(String),
    BadPort(String),
    /// `user:password@host`, which HTTP URLs must not carry (RFC 9110 §4.2.4).
    UserInfo,
    /// A space, control or non-ASCII character: percent-encode it.
    BadCharacter,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::NotAbsolute => write!(f, "url must start with http://"),
            UrlError::UnsupportedScheme(scheme) => {
                write!(
                    f,
                    "unsupported scheme '{scheme}' (only http:// is supported)"
                )
            }
            UrlError::MissingHost => write!(f, "url has no host"),
            UrlError::BadHost(host) => write!(f, "invalid host '{host}'"),
            UrlError::BadPort(port) => write!(f, "invalid port '{port}'"),
            UrlError::UserInfo => write!(f, "url must not contain user:password@"),
            UrlError::BadCharacter => write!(
                f,
                "url contains a space, control or non-ASCII character (percent-encode it)"
            ),
        }
    }
}

impl std::error::Error for UrlError {}

impl HttpUrl {
    pub fn parse(text: &str) -> Result<HttpUrl, UrlError> {
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UrlError::BadCharacter);
        }
        let (scheme, rest) = text.split_once("://").ok_or(UrlError::NotAbsolute)?;
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(UrlError::UnsupportedScheme(scheme.to_string()));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(authority_end);
        let (host, port) = parse_authority(authority)?;
        let port = port.unwrap_or(80);
        let path_and_query = match path_and_query {
            "" => "/".to_string(),
            query if query.starts_with('?') => format!("/{query}"),
            path => path.to_string(),
        };
        Ok(HttpUrl {
            host,
            port,
            path_and_query,
        })
    }

    /// `host` or `host:port` (port left out when it is 80), the value for a
    /// `Host` field (RFC 9110 §7.2); IPv6 addresses get their brackets back.
    pub fn authority(&self) -> String {
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        match self.port {
            80 => host,
            port => format!("{host}:{port}"),
        }
    }
}

/// Splits an authority, `host`, `host:port`, `[v6]` or `[v6]:port`, into
/// the host (IPv6 without brackets) and the port, if one is given (an empty
/// port, `host:`, counts as none). A CONNECT request's target is an
/// authority that must have a port (RFC 9112 §3.2.3); a `Host` field may
/// leave it out (RFC 9110 §7.2).
pub fn parse_authority(authority: &str) -> Result<(String, Option<u16>), UrlError> {
    if !authority.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(UrlError::BadCharacter);
    }
    if authority.contains('@') {
        return Err(UrlError::UserInfo);
    }
    let bad_host = || UrlError::BadHost(authority.to_string());
    let (host, port) = match authority.strip_prefix('[') {
        // An IPv6 address: its colons would be confused with the port's.
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']').ok_or_else(bad_host)?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':').ok_or_else(bad_host)?),
            };
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad_host());
            }
            (host, port)
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    if !authority.starts_with('[') && host.contains(['[', ']', ':', '/', '?', '#', '\\']) {
        return Err(bad_host());
    }
    let port = match port {
        None | Some("") => None,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port != 0 && text.bytes().all(|b| b.is_ascii_digit()) => Some(port),
            _ => return Err(UrlError::BadPort(text.to_string())),
        },
    };
    Ok((host.to_string(), port))
}

impl FromStr for HttpUrl {
    type Err = UrlError;
    fn from_str(text: &str) -> Result<HttpUrl, UrlError> {
        HttpUrl::parse(text)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path_and_query)
    }
}
