//! Does a digest `uri` name the Request-URI? (RFC 7616 §3.4.6: the server checks it, so that
//! credentials made for one request cannot be used on another.) Devices write the same URI in
//! different ways, so after an exact match the two are compared as SIP URIs (RFC 3261 §19.1.4).

/// True when `digest_uri` and `request_uri` are the same: equal as written (after trimming
/// blanks), or both `sip:`/`sips:` URIs that RFC 3261 §19.1.4 calls equivalent.
pub fn same_request_uri(digest_uri: &str, request_uri: &str) -> bool {
    let (a, b) = (digest_uri.trim(), request_uri.trim());
    if a == b {
        return true;
    }
    match (SipUri::parse(a), SipUri::parse(b)) {
        (Some(x), Some(y)) => x.equivalent(&y),
        _ => false,
    }
}

/// A SIP URI taken apart for comparison, escapes decoded.
#[derive(Debug, PartialEq, Eq)]
struct SipUri {
    secure: bool,
    /// `user[:password]`, case-sensitive.
    userinfo: Option<String>,
    /// Lower-cased.
    host: String,
    port: Option<u16>,
    /// Lower-cased names and values (uri-parameters compare case-insensitively), sorted by
    /// name, each name once.
    params: Vec<(String, Option<String>)>,
    /// `?` headers, sorted.
    headers: Vec<String>,
}

/// Parameters that must be present in both URIs or in neither (RFC 3261 §19.1.4).
const MUST_MATCH: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];

impl SipUri {
    fn parse(s: &str) -> Option<SipUri> {
        let (scheme, rest) = s.split_once(':')?;
        let secure = if scheme.eq_ignore_ascii_case("sips") {
            true
        } else if scheme.eq_ignore_ascii_case("sip") {
            false
        } else {
            return None;
        };
        let (rest, headers) = match rest.split_once('?') {
            Some((r, h)) => (r, h.split('&').map(unescape).collect::<Option<Vec<_>>>()?),
            None => (rest, Vec::new()),
        };
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (Some(unescape(u)?), r),
            None => (None, rest),
        };
        let mut parts = rest.split(';');
        let hostport = parts.next()?;
        let (host, port) = split_host_port(hostport)?;
        let mut params = Vec::new();
        for p in parts {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(unescape(v)?.to_ascii_lowercase())),
                None => (p, None),
            };
            params.push((unescape(name)?.to_ascii_lowercase(), value));
        }
        // Sorted by name, so that lookups are binary searches (a URI may carry thousands of
        // parameters). A parameter twice has no one value to compare: such a URI equals only
        // itself as written (the comparison would otherwise depend on its arguments' order).
        params.sort_unstable();
        if params.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        let mut headers = headers;
        headers.sort();
        Some(SipUri {
            secure,
            userinfo,
            host: host.to_ascii_lowercase(),
            port,
            params,
            headers,
        })
    }

    /// RFC 3261 §19.1.4: scheme, user info, host and port equal; `user`, `ttl`, `method`,
    /// `maddr` and `transport` in both or neither and then equal; other parameters equal where
    /// both have them; headers equal.
    fn equivalent(&self, other: &SipUri) -> bool {
        if self.secure != other.secure
            || self.userinfo != other.userinfo
            || self.host != other.host
            || self.port != other.port
            || self.headers != other.headers
        {
            return false;
        }
        let get = |u: &SipUri, name: &str| {
            u.params
                .binary_search_by(|(n, _)| n.as_str().cmp(name))
                .ok()
                .map(|i| u.params[i].1.clone())
        };
        for (name, value) in &self.params {
            match get(other, name) {
                Some(v) if v != *value => return false,
                None if MUST_MATCH.contains(&name.as_str()) => return false,
                _ => {}
            }
        }
        other
            .params
            .iter()
            .all(|(name, _)| !MUST_MATCH.contains(&name.as_str()) || get(self, name).is_some())
    }
}

fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')? + 1;
        (&s[..end], s[end..].strip_prefix(':'))
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some((host, port))
}

/// `%XX` escapes decoded (RFC 3261 compares URIs after unescaping); `None` if one is broken.
fn unescape(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (sip_uri): only the first value of a repeated parameter was looked up in
    /// the other URI, so the answer depended on which URI came first.
    #[test]
    fn a_parameter_twice_is_equivalent_to_nothing_else() {
        let (a, b) = ("sip:h;x=1;x=2", "sip:h;x=1");
        assert!(!same_request_uri(a, b));
        assert!(!same_request_uri(b, a));
        assert!(same_request_uri(a, a));
    }

    #[test]
    fn rfc3261_equivalences() {
        let same = [
            ("sip:alarm@10.0.0.1:5060", "sip:alarm@10.0.0.1:5060"),
            (" sip:alarm@10.0.0.1 ", "sip:alarm@10.0.0.1"),
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("SIP:carol@chicago.com", "sip:carol@chicago.com"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;newparam=5",
            ),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            ("sip:u@[2001:db8::1]:5070", "sip:u@[2001:DB8::1]:5070"),
        ];
        for (a, b) in same {
            assert!(same_request_uri(a, b), "{a} = {b}");
            assert!(same_request_uri(b, a), "{b} = {a}");
        }
        let different = [
            (
                "sip:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            (
                "sip:bob@biloxi.com:6000;transport=tcp",
                "sip:bob@biloxi.com",
            ),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;security=off",
            ),
            ("sip:alarm@10.0.0.1", "sips:alarm@10.0.0.1"),
            ("sip:alarm@10.0.0.1", "sip:other@10.0.0.1"),
            ("sip:alarm@10.0.0.1", "sip:alarm@10.0.0.2"),
            ("sip:10.0.0.1:5060", "sip:alarm@10.0.0.1:5060"),
            ("/dir/index.html", "sip:alarm@10.0.0.1"),
            ("sip:a%zz@h", "sip:a%zz@h;x"),
            ("", "sip:alarm@h"),
        ];
        for (a, b) in different {
            assert!(!same_request_uri(a, b), "{a} != {b}");
            assert!(!same_request_uri(b, a), "{b} != {a}");
        }
    }
}
