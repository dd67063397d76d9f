//! Typed SIP header values (RFC 3261 §20): Via, name-addr (From/To/Contact), CSeq, and the
//! `;name=value` parameter lists they share. Parsing is byte-oriented and never panics; values
//! are kept unquoted so that `Display` can re-quote them canonically.

use std::fmt;
use std::fmt::Write as _;

use super::message::Method;

/// One `;name[=value]` parameter. `value` is unquoted; names compare case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name as received.
    pub name: String,
    /// Value without quotes, `None` for a flag such as `;rport` or `;lr`.
    pub value: Option<String>,
}

impl Param {
    /// A parameter with a value.
    pub fn new(name: &str, value: Option<&str>) -> Self {
        Param {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        }
    }
}

/// Find a parameter by case-insensitive name. `Some(None)` is a flag parameter.
pub(crate) fn find_param<'a>(params: &'a [Param], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value.as_deref())
}

/// RFC 3261 `token` bytes as a table: every header name and method goes through it.
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

/// RFC 3261 `token` characters.
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii() && TOKEN[c as usize]
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| TOKEN[usize::from(b)])
}

/// Characters a parameter value may carry unquoted (token plus what hosts need: IPv6, ports).
fn is_bare_value_char(c: char) -> bool {
    is_token_char(c) || ":[]".contains(c)
}

/// Write a parameter value, quoting it when it is not a bare value.
fn write_value(f: &mut impl fmt::Write, v: &str) -> fmt::Result {
    if !v.is_empty() && v.chars().all(is_bare_value_char) {
        f.write_str(v)
    } else {
        write_quoted(f, v)
    }
}

/// Write `"..."` with `\` and `"` escaped.
pub(crate) fn write_quoted(f: &mut impl fmt::Write, v: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in v.chars() {
        if c == '"' || c == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('"')
}

pub(crate) fn write_params(f: &mut impl fmt::Write, params: &[Param]) -> fmt::Result {
    for p in params {
        write!(f, ";{}", p.name)?;
        if let Some(v) = &p.value {
            f.write_char('=')?;
            write_value(f, v)?;
        }
    }
    Ok(())
}

/// Parse a quoted string starting at `s[0] == '"'`; returns the unescaped content and the rest.
pub(crate) fn parse_quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => out.push(chars.next()?.1),
            _ => out.push(c),
        }
    }
    None
}

/// Split a header value at commas that are outside quotes and angle brackets, so that
/// `Via: a, b` and `Contact: <sip:a>, "x,y" <sip:b>` give their separate values.
pub(crate) fn split_commas(s: &str) -> Vec<&str> {
    // Most values hold one element: no comma at all needs no quote tracking.
    if !s.contains(',') {
        return vec![s.trim()];
    }
    let mut parts = Vec::new();
    let (mut in_quote, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            ',' if !in_quote && !in_angle => {
                parts.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(s[start..].trim());
    parts
}

/// Parse `;a=b;c;d="e f"` (leading whitespace allowed). Fails on anything else.
pub(crate) fn parse_params(mut s: &str) -> Option<Vec<Param>> {
    let mut params = Vec::new();
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return Some(params);
        }
        s = s.strip_prefix(';')?.trim_start();
        let name_end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
        let name = &s[..name_end];
        if name.is_empty() {
            return None;
        }
        s = s[name_end..].trim_start();
        let value = if let Some(rest) = s.strip_prefix('=') {
            let rest = rest.trim_start();
            if rest.starts_with('"') {
                let (v, after) = parse_quoted(rest)?;
                s = after;
                Some(v)
            } else {
                let end = rest
                    .find(|c: char| c == ';' || c == ',' || c == '"' || c.is_whitespace())
                    .unwrap_or(rest.len());
                if end == 0 {
                    return None;
                }
                s = &rest[end..];
                Some(rest[..end].to_owned())
            }
        } else {
            None
        };
        params.push(Param {
            name: name.to_owned(),
            value,
        });
    }
}

/// A Via header value: `SIP/2.0/UDP host:port;branch=z9hG4bK...;rport;received=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport as written, e.g. `UDP`, `TCP`, `TLS`.
    pub transport: String,
    /// Host name or address (IPv6 keeps its brackets).
    pub host: String,
    /// Port, if given.
    pub port: Option<u16>,
    /// Parameters in order.
    pub params: Vec<Param>,
}

/// The RFC 3261 branch prefix that marks a branch as globally unique.
pub const BRANCH_MAGIC: &str = "z9hG4bK";

impl Via {
    /// Parse one Via value (not a comma-separated list).
    pub fn parse(s: &str) -> Option<Via> {
        // sent-protocol: SIP / 2.0 / transport, whitespace allowed around the slashes.
        let (proto, rest) = take_token(s.trim_start())?;
        let rest = rest.trim_start().strip_prefix('/')?.trim_start();
        let (version, rest) = take_token(rest)?;
        let rest = rest.trim_start().strip_prefix('/')?.trim_start();
        let (transport, rest) = take_token(rest)?;
        if !proto.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return None;
        }
        // sent-by needs whitespace before it.
        if !rest.starts_with(|c: char| c.is_whitespace()) {
            return None;
        }
        let (host, port, rest) = parse_host_port(rest.trim_start())?;
        let params = parse_params(rest)?;
        Some(Via {
            transport: transport.to_owned(),
            host,
            port,
            params,
        })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        find_param(&self.params, "branch").flatten()
    }

    /// `host[:port]` as written, used in transaction keys.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{}", self.host, p),
            None => self.host.clone(),
        }
    }

    /// Where a response to this hop goes (RFC 3261 §18.2.2 with RFC 3581 rport): the
    /// `received` address if present, else the host; the `rport` value, else the port, else 5060.
    pub fn response_target(&self) -> (&str, u16) {
        let host = find_param(&self.params, "received")
            .flatten()
            .unwrap_or(&self.host);
        let port = find_param(&self.params, "rport")
            .flatten()
            .and_then(|p| p.parse().ok())
            .or(self.port)
            .unwrap_or(5060);
        (host, port)
    }

    /// Record the packet's source on this (top) Via as a server must: `received` when the
    /// address differs from the sent-by host, and the port into a present `rport` flag.
    pub fn stamp_source(&mut self, ip: &str, port: u16) {
        let has_rport = find_param(&self.params, "rport").is_some();
        let host_bare = self.host.trim_start_matches('[').trim_end_matches(']');
        let ip_bare = ip.trim_start_matches('[').trim_end_matches(']');
        if host_bare != ip_bare || has_rport {
            set_param(&mut self.params, "received", Some(ip_bare));
        }
        if has_rport {
            set_param(&mut self.params, "rport", Some(&port.to_string()));
        }
    }
}

pub(crate) fn set_param(params: &mut Vec<Param>, name: &str, value: Option<&str>) {
    match params
        .iter_mut()
        .find(|p| p.name.eq_ignore_ascii_case(name))
    {
        Some(p) => p.value = value.map(str::to_owned),
        None => params.push(Param::new(name, value)),
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.sent_by())?;
        write_params(f, &self.params)
    }
}

fn take_token(s: &str) -> Option<(&str, &str)> {
    let end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
    (end > 0).then(|| (&s[..end], &s[end..]))
}

/// `host[:port]` where host may be `[v6]`; returns the rest after it.
fn parse_host_port(s: &str) -> Option<(String, Option<u16>, &str)> {
    let (host, rest) = if s.starts_with('[') {
        let end = s.find(']')? + 1;
        (&s[..end], &s[end..])
    } else {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-._".contains(c)))
            .unwrap_or(s.len());
        (&s[..end], &s[end..])
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    let rest = rest.trim_start();
    if let Some(p) = rest.strip_prefix(':') {
        let p = p.trim_start();
        let end = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
        let port = p[..end].parse::<u16>().ok()?;
        Some((host.to_owned(), Some(port), &p[end..]))
    } else {
        Some((host.to_owned(), None, rest))
    }
}

/// A From, To or Contact value: optional display name, URI, header parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name without quotes.
    pub display: Option<String>,
    /// The URI as written (e.g. `sip:1234@example.org`), or `*` for a wildcard Contact.
    pub uri: String,
    /// Header parameters after the URI (`tag`, `expires`, ...).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// A bare URI without display name or parameters.
    pub fn new(uri: &str) -> Self {
        NameAddr {
            display: None,
            uri: uri.to_owned(),
            params: Vec::new(),
        }
    }

    /// Parse one value (not a comma-separated list).
    pub fn parse(s: &str) -> Option<NameAddr> {
        let s = s.trim();
        let (display, rest) = if s.starts_with('"') {
            let (d, rest) = parse_quoted(s)?;
            (Some(d), rest.trim_start())
        } else if let Some(lt) = s.find('<').filter(|&lt| !s[..lt].contains(';')) {
            // Unquoted display name: tokens and spaces before '<'. A '<' after a ';' is in a
            // parameter of an addr-spec (`*;expires="<*"`, as such a value is printed).
            let d = s[..lt].trim();
            if d.chars()
                .any(|c| !(is_token_char(c) || c == ' ' || c == '\t'))
            {
                return None;
            }
            ((!d.is_empty()).then(|| d.to_owned()), &s[lt..])
        } else {
            (None, s)
        };
        let (uri, rest) = if let Some(inner) = rest.strip_prefix('<') {
            let gt = inner.find('>')?;
            (inner[..gt].trim(), &inner[gt + 1..])
        } else if display.is_some() {
            return None; // a quoted display name must be followed by <uri>
        } else {
            // addr-spec form: parameters after ';' belong to the header.
            let end = rest.find(';').unwrap_or(rest.len());
            (rest[..end].trim(), &rest[end..])
        };
        // No '>' either: an addr-spec holding one would be printed as `<...>...>`, which does
        // not parse back (a response's To header the device could not read).
        if uri.is_empty()
            || uri
                .chars()
                .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == '"')
        {
            return None;
        }
        let params = parse_params(rest)?;
        Some(NameAddr {
            display,
            uri: uri.to_owned(),
            params,
        })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        find_param(&self.params, "tag").flatten()
    }

    /// The `expires` parameter in seconds (Contact in REGISTER).
    pub fn expires(&self) -> Option<u32> {
        find_param(&self.params, "expires")
            .flatten()?
            .trim()
            .parse()
            .ok()
    }

    /// A parameter by case-insensitive name; `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// Set (or replace) the `tag` parameter.
    pub fn set_tag(&mut self, tag: &str) {
        set_param(&mut self.params, "tag", Some(tag));
    }

    /// The user part of a `sip:`/`sips:`/`tel:` URI, e.g. `1234` in `sip:1234@host`.
    pub fn user(&self) -> Option<&str> {
        uri_user(&self.uri)
    }
}

/// The user part of a SIP URI (`sip:user@host` -> `user`), or the number of a `tel:` URI.
pub fn uri_user(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once(':')?;
    if scheme.eq_ignore_ascii_case("tel") {
        let end = rest.find(';').unwrap_or(rest.len());
        return Some(&rest[..end]).filter(|u| !u.is_empty());
    }
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return None;
    }
    let at = rest.find('@')?;
    let user = &rest[..at];
    // user:password is deprecated but legal; the user is what is before ':'.
    let user = user.split(':').next().unwrap_or(user);
    Some(user).filter(|u| !u.is_empty())
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write_quoted(f, d)?;
            f.write_char(' ')?;
        }
        // The wildcard is bare only alone: with a display name it needs its brackets to parse.
        if self.uri == "*" && self.display.is_none() {
            f.write_char('*')?;
        } else {
            write!(f, "<{}>", self.uri)?;
        }
        write_params(f, &self.params)
    }
}

/// A CSeq value: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (RFC 3261 limits it to 2^31 - 1).
    pub seq: u32,
    /// Method the sequence number belongs to.
    pub method: Method,
}

impl CSeq {
    /// Parse `123 MESSAGE`.
    pub fn parse(s: &str) -> Option<CSeq> {
        let mut it = s.split_whitespace();
        let seq_s = it.next()?;
        if seq_s.len() > 10 || !seq_s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let seq = seq_s.parse::<u32>().ok().filter(|n| *n < 1 << 31)?;
        let method = it.next()?;
        if it.next().is_some() || !is_token(method) {
            return None;
        }
        Some(CSeq {
            seq,
            method: Method::parse(method),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_variants() {
        // (input, transport, host, port, branch)
        type Case<'a> = (&'a str, &'a str, &'a str, Option<u16>, Option<&'a str>);
        let cases: &[Case] = &[
            (
                "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776",
                "UDP",
                "10.0.0.1",
                Some(5060),
                Some("z9hG4bK776"),
            ),
            (
                "SIP / 2.0 / TCP host.example ;branch=abc ;rport",
                "TCP",
                "host.example",
                None,
                Some("abc"),
            ),
            (
                "SIP/2.0/UDP [2001:db8::1]:5070;branch=x",
                "UDP",
                "[2001:db8::1]",
                Some(5070),
                Some("x"),
            ),
            ("sip/2.0/tls h", "tls", "h", None, None),
        ];
        for (input, transport, host, port, branch) in cases {
            let v = Via::parse(input).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(v.transport, *transport);
            assert_eq!(v.host, *host);
            assert_eq!(v.port, *port);
            assert_eq!(v.branch(), *branch);
            assert_eq!(Via::parse(&v.to_string()), Some(v));
        }
        for bad in [
            "",
            "SIP/2.0/UDP",
            "SIP/3.0/UDP h",
            "SIP/2.0/UDP h:99999",
            "SIP/2.0/UDP h;=x",
            "SIP/2.0/UDPh",
        ] {
            assert_eq!(Via::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn via_response_target_and_stamp() {
        let mut v = Via::parse("SIP/2.0/UDP dev.local:5062;branch=z9hG4bKa;rport").unwrap();
        assert_eq!(v.response_target(), ("dev.local", 5062));
        v.stamp_source("192.0.2.7", 40000);
        assert_eq!(v.response_target(), ("192.0.2.7", 40000));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP dev.local:5062;branch=z9hG4bKa;rport=40000;received=192.0.2.7"
        );
        let mut same = Via::parse("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKa").unwrap();
        same.stamp_source("192.0.2.7", 5060);
        assert_eq!(
            same.params.len(),
            1,
            "no received when the address matches and no rport"
        );
    }

    #[test]
    fn name_addr_variants() {
        let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            (
                "\"Anna \\\"A\\\" Berg\" <sip:1234@vaka.example>;tag=9fx",
                Some("Anna \"A\" Berg"),
                "sip:1234@vaka.example",
                Some("9fx"),
            ),
            (
                "Anna Berg <sip:1234@vaka.example>",
                Some("Anna Berg"),
                "sip:1234@vaka.example",
                None,
            ),
            (
                "<sip:arc@vaka.example;transport=tcp>;tag=1",
                None,
                "sip:arc@vaka.example;transport=tcp",
                Some("1"),
            ),
            (
                "sip:arc@vaka.example;tag=2",
                None,
                "sip:arc@vaka.example",
                Some("2"),
            ),
            ("*", None, "*", None),
        ];
        for (input, display, uri, tag) in cases {
            let n = NameAddr::parse(input).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(n.display.as_deref(), *display);
            assert_eq!(n.uri, *uri);
            assert_eq!(n.tag(), *tag);
            assert_eq!(NameAddr::parse(&n.to_string()), Some(n));
        }
        for bad in [
            "",
            "\"unterminated <sip:a>",
            "\"x\" sip:a",
            "<sip:a",
            "a b c",
            "<>",
        ] {
            assert_eq!(NameAddr::parse(bad), None, "{bad}");
        }
    }

    /// Found by fuzzing (sip_uri): `>` parsed as an addr-spec and printed as `<>>`, which does
    /// not parse.
    #[test]
    fn addr_spec_with_a_closing_angle_is_refused() {
        for bad in [">", "h>", "sip:a>b@h;tag=1"] {
            assert_eq!(NameAddr::parse(bad), None, "{bad}");
        }
        let n = NameAddr::parse("<sip:a@h>;tag=1").unwrap();
        assert_eq!(NameAddr::parse(&n.to_string()), Some(n));
    }

    /// Found with the sip_uri target: a wildcard with a display name was printed `"x" *`, which
    /// does not parse.
    #[test]
    fn a_wildcard_with_a_display_name_keeps_its_brackets() {
        let n = NameAddr::parse("\"x\" <*>").unwrap();
        assert_eq!(n.to_string(), "\"x\" <*>");
        assert_eq!(NameAddr::parse(&n.to_string()), Some(n));
        assert_eq!(NameAddr::parse("*").unwrap().to_string(), "*");
    }

    #[test]
    fn contact_expires_and_user() {
        let n = NameAddr::parse("<sip:4711@198.51.100.2:5060>;expires=3600").unwrap();
        assert_eq!(n.expires(), Some(3600));
        assert_eq!(n.user(), Some("4711"));
        assert_eq!(
            uri_user("tel:+46701234567;phone-context=x"),
            Some("+46701234567")
        );
        assert_eq!(uri_user("sip:host.only"), None);
        assert_eq!(uri_user("http://x@y"), None);
    }

    #[test]
    fn cseq_and_commas() {
        assert_eq!(
            CSeq::parse("  42  MESSAGE ").map(|c| c.to_string()),
            Some("42 MESSAGE".into())
        );
        for bad in [
            "",
            "x MESSAGE",
            "1",
            "1 A B",
            "4294967295 MESSAGE",
            "-1 MESSAGE",
        ] {
            assert_eq!(CSeq::parse(bad), None, "{bad}");
        }
        assert_eq!(
            split_commas("a, \"x,y\" <sip:b,c>, d"),
            vec!["a", "\"x,y\" <sip:b,c>", "d"]
        );
    }
}
