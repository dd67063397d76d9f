//! SIP message model and parser (RFC 3261 §7). A message is a start line, an ordered list of
//! headers (names normalised, compact forms expanded, folded lines joined) and a body.
//! The headers every transaction needs (Via, From, To, Call-ID, CSeq) are parsed eagerly so
//! that a message that exists is one we can answer; everything else is parsed on demand.

use std::fmt;

use super::header::{is_token, split_commas, CSeq, NameAddr, Via};

/// Cap on header lines, so a hostile datagram cannot make us allocate without bound. A parsed
/// message keeps fewer than this many headers, so that written back (with the Content-Length
/// line that [`SipMessage::to_bytes`] adds) it is within the cap again.
pub const MAX_HEADERS: usize = 256;

/// SCAIP's content type.
pub const SCAIP_CONTENT_TYPE: &str = "application/scaip+xml";

/// Errors from parsing or building a SIP message. [`SipError::status_code`] tells which
/// response to answer with, when answering is possible at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    /// Nothing but line breaks.
    #[error("empty message")]
    Empty,
    /// No blank line ends the header section.
    #[error("header section not terminated by an empty line")]
    NoHeaderEnd,
    /// The request or status line is malformed.
    #[error("malformed start line")]
    BadStartLine,
    /// A SIP version other than 2.0.
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    /// A header line without a valid `name:` or a continuation line with nothing to continue.
    #[error("malformed header line")]
    BadHeaderLine,
    /// More than [`MAX_HEADERS`] header lines.
    #[error("too many header lines")]
    TooManyHeaders,
    /// A mandatory header is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header that we need could not be parsed (or appears twice where once is allowed).
    #[error("malformed {0} header")]
    BadHeader(&'static str),
    /// Content-Length promises more bytes than the message has.
    #[error("body shorter than Content-Length")]
    BodyTruncated,
    /// A builder was given a value that cannot go into a message (line break, bad token...).
    #[error("invalid value for {0}")]
    InvalidInput(&'static str),
}

impl SipError {
    /// The response status a server should send for a request that failed this way.
    pub fn status_code(&self) -> u16 {
        match self {
            SipError::UnsupportedVersion => 505,
            _ => 400,
        }
    }
}

/// A SIP method. The ones SCAIP meets are named; any other token is kept in `Other`
/// (never holding one of the named methods) so a server can answer 405/501.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// RFC 3428 instant message: carries `<mrq>` and `<mrs>`.
    Message,
    /// Registration of a device's contact.
    Register,
    /// Capability query / keep-alive.
    Options,
    /// Session setup (voice).
    Invite,
    /// INVITE acknowledgement: never answered.
    Ack,
    /// Session end.
    Bye,
    /// Cancels a pending request.
    Cancel,
    /// Any other method token, case preserved (methods are case-sensitive).
    Other(String),
}

impl Method {
    /// Map a method token (case-sensitive, as RFC 3261 says).
    pub fn parse(token: &str) -> Method {
        match token {
            "MESSAGE" => Method::Message,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            other => Method::Other(other.to_owned()),
        }
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Message => "MESSAGE",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Request line or status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD uri SIP/2.0`
    Request {
        /// The method.
        method: Method,
        /// The Request-URI as written.
        uri: String,
    },
    /// `SIP/2.0 code reason`
    Response {
        /// Status code 100-699.
        code: u16,
        /// Reason phrase (may be empty).
        reason: String,
    },
}

/// A header name, normalised: known names (and their compact forms) map to variants,
/// other compact forms to their full name in `Other`, anything else is kept as written.
#[derive(Debug, Clone, Eq)]
pub enum HeaderName {
    /// `Via` / `v`
    Via,
    /// `From` / `f`
    From,
    /// `To` / `t`
    To,
    /// `Call-ID` / `i`
    CallId,
    /// `CSeq`
    CSeq,
    /// `Contact` / `m`
    Contact,
    /// `Content-Type` / `c`
    ContentType,
    /// `Content-Length` / `l`
    ContentLength,
    /// `Authorization`
    Authorization,
    /// `WWW-Authenticate`
    WwwAuthenticate,
    /// `Expires`
    Expires,
    /// `Max-Forwards`
    MaxForwards,
    /// `User-Agent`
    UserAgent,
    /// Anything else; compared case-insensitively.
    Other(String),
}

impl HeaderName {
    /// Normalise a name as found on the wire (case-insensitive, compact forms expanded).
    pub fn from_wire(name: &str) -> HeaderName {
        // Compared in place, case-insensitively: no allocation for the headers every message has.
        const KNOWN: &[(&str, HeaderName)] = &[
            ("via", HeaderName::Via),
            ("v", HeaderName::Via),
            ("from", HeaderName::From),
            ("f", HeaderName::From),
            ("to", HeaderName::To),
            ("t", HeaderName::To),
            ("call-id", HeaderName::CallId),
            ("i", HeaderName::CallId),
            ("cseq", HeaderName::CSeq),
            ("contact", HeaderName::Contact),
            ("m", HeaderName::Contact),
            ("content-type", HeaderName::ContentType),
            ("c", HeaderName::ContentType),
            ("content-length", HeaderName::ContentLength),
            ("l", HeaderName::ContentLength),
            ("authorization", HeaderName::Authorization),
            ("www-authenticate", HeaderName::WwwAuthenticate),
            ("expires", HeaderName::Expires),
            ("max-forwards", HeaderName::MaxForwards),
            ("user-agent", HeaderName::UserAgent),
        ];
        // Compact forms of headers we do not interpret (RFC 3261 §7.3.3 and later RFCs).
        const COMPACT: &[(&str, &str)] = &[
            ("k", "Supported"),
            ("s", "Subject"),
            ("e", "Content-Encoding"),
            ("o", "Event"),
            ("u", "Allow-Events"),
            ("r", "Refer-To"),
            ("b", "Referred-By"),
            ("x", "Session-Expires"),
            ("a", "Accept-Contact"),
            ("j", "Reject-Contact"),
            ("d", "Request-Disposition"),
            ("y", "Identity"),
        ];
        // Names of one length are few: compare only those.
        if let Some((_, h)) = KNOWN
            .iter()
            .filter(|(k, _)| k.len() == name.len())
            .find(|(k, _)| name.eq_ignore_ascii_case(k))
        {
            return h.clone();
        }
        match COMPACT.iter().find(|(k, _)| name.eq_ignore_ascii_case(k)) {
            Some((_, full)) => HeaderName::Other((*full).to_owned()),
            None => HeaderName::Other(name.to_owned()),
        }
    }

    /// The canonical (long) name used when writing.
    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::Contact => "Contact",
            HeaderName::ContentType => "Content-Type",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::Authorization => "Authorization",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::Expires => "Expires",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Other(s) => s,
        }
    }

    /// Headers whose typed value the message keeps; they are set only by parse and builders.
    fn is_core(&self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::ContentLength
        )
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

/// One header line (after unfolding). Content-Length is not kept: it is derived from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Normalised name.
    pub name: HeaderName,
    /// Value with surrounding whitespace removed and folded lines joined by one space.
    pub value: String,
}

/// A parsed or built SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessage {
    pub(crate) start: StartLine,
    pub(crate) headers: Vec<Header>,
    pub(crate) body: Vec<u8>,
    pub(crate) vias: Vec<Via>,
    pub(crate) from: NameAddr,
    pub(crate) to: NameAddr,
    pub(crate) call_id: String,
    pub(crate) cseq: CSeq,
}

/// Locate the empty line ending the header section: `(end of headers, start of body)`.
/// Accepts CRLF and bare LF line ends.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    memchr::memchr_iter(b'\n', buf).find_map(|i| match (buf.get(i + 1), buf.get(i + 2)) {
        (Some(b'\n'), _) => Some((i, i + 2)),
        (Some(b'\r'), Some(b'\n')) => Some((i, i + 3)),
        _ => None,
    })
}

/// Unfolded `(name as written, value)` header fields.
pub(crate) type RawFields<'a> = Vec<(&'a str, String)>;

/// Split the header section into the start line and unfolded `(name, value)` fields.
pub(crate) fn split_head(head: &str) -> Result<(&str, RawFields<'_>), SipError> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().ok_or(SipError::Empty)?;
    let mut fields: RawFields<'_> = Vec::with_capacity(16);
    let mut folded = false;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // Folded continuation: joined with a single space (RFC 3261 §7.3.1).
            folded = true;
            let last = fields.last_mut().ok_or(SipError::BadHeaderLine)?;
            last.1.push(' ');
            last.1.push_str(line.trim_ascii());
            continue;
        }
        let (name, value) = line.split_once(':').ok_or(SipError::BadHeaderLine)?;
        // SIP's linear white space is ASCII (RFC 3261 §25.1).
        let name = name.trim_ascii_end();
        if !is_token(name) {
            return Err(SipError::BadHeaderLine);
        }
        if fields.len() >= MAX_HEADERS {
            return Err(SipError::TooManyHeaders);
        }
        fields.push((name, value.trim_ascii().to_owned()));
    }
    // A blank continuation line leaves a trailing space behind.
    if folded {
        for f in &mut fields {
            let trimmed = f.1.trim_ascii();
            if trimmed.len() != f.1.len() {
                f.1 = trimmed.to_owned();
            }
        }
    }
    Ok((start, fields))
}

/// ASCII case-insensitive prefix test that cannot split a UTF-8 character.
fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn parse_start_line(line: &str) -> Result<StartLine, SipError> {
    if starts_with_ci(line, "SIP/") {
        let (version, rest) = line.split_once(' ').ok_or(SipError::BadStartLine)?;
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(SipError::UnsupportedVersion);
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SipError::BadStartLine);
        }
        let code: u16 = code.parse().map_err(|_| SipError::BadStartLine)?;
        if !(100..=699).contains(&code) {
            return Err(SipError::BadStartLine);
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.trim().to_owned(),
        });
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SipError::BadStartLine);
    };
    if !is_token(method) {
        return Err(SipError::BadStartLine);
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(if starts_with_ci(version, "SIP/") {
            SipError::UnsupportedVersion
        } else {
            SipError::BadStartLine
        });
    }
    Ok(StartLine::Request {
        method: Method::parse(method),
        uri: uri.to_owned(),
    })
}

impl SipMessage {
    /// Parse one message (a UDP datagram, or a frame found by [`super::find_message`]).
    /// Leading CRLFs are skipped; bytes past Content-Length are ignored (RFC 3261 §18.3);
    /// without Content-Length the body is the rest of the input.
    pub fn parse(input: &[u8]) -> Result<SipMessage, SipError> {
        Self::parse_inner(input, true)
    }

    /// Parse only the start line and headers of a message whose body is not to be read (one
    /// over the size limit, answered 513 from its headers alone): the body is left empty, and
    /// Content-Length is neither kept nor checked against the bytes present.
    pub fn parse_head(input: &[u8]) -> Result<SipMessage, SipError> {
        Self::parse_inner(input, false)
    }

    fn parse_inner(input: &[u8], with_body: bool) -> Result<SipMessage, SipError> {
        let skip = input
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .ok_or(SipError::Empty)?;
        let input = &input[skip..];
        let (head_end, body_start) = find_head_end(input).ok_or(SipError::NoHeaderEnd)?;
        // Valid UTF-8 is the rule: check it the fast way, replace bad bytes only when there are any.
        let head = match std::str::from_utf8(&input[..head_end]) {
            Ok(h) => std::borrow::Cow::Borrowed(h),
            Err(_) => String::from_utf8_lossy(&input[..head_end]),
        };
        let (start_line, fields) = split_head(&head)?;
        let start = parse_start_line(start_line)?;
        let mut body = &input[body_start..];
        let mut content_length: Option<usize> = None;
        let mut headers = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            let name = HeaderName::from_wire(name);
            if name == HeaderName::ContentLength {
                let n =
                    parse_content_length(&value).ok_or(SipError::BadHeader("Content-Length"))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(SipError::BadHeader("Content-Length"));
                }
                content_length = Some(n);
                continue;
            }
            headers.push(Header { name, value });
        }
        if headers.len() >= MAX_HEADERS {
            return Err(SipError::TooManyHeaders);
        }
        if !with_body {
            body = &[];
        } else if let Some(n) = content_length {
            body = body.get(..n).ok_or(SipError::BodyTruncated)?;
        }
        SipMessage::from_parts(start, headers, body.to_vec())
    }

    /// Assemble a message and derive its typed core headers (shared by parse and builders).
    pub(crate) fn from_parts(
        start: StartLine,
        headers: Vec<Header>,
        body: Vec<u8>,
    ) -> Result<SipMessage, SipError> {
        let mut vias = Vec::new();
        for h in headers.iter().filter(|h| h.name == HeaderName::Via) {
            for v in split_commas(&h.value) {
                vias.push(Via::parse(v).ok_or(SipError::BadHeader("Via"))?);
            }
        }
        if vias.is_empty() {
            return Err(SipError::MissingHeader("Via"));
        }
        let from = single(&headers, &HeaderName::From, "From")?;
        let from = NameAddr::parse(from).ok_or(SipError::BadHeader("From"))?;
        let to = single(&headers, &HeaderName::To, "To")?;
        let to = NameAddr::parse(to).ok_or(SipError::BadHeader("To"))?;
        let call_id = single(&headers, &HeaderName::CallId, "Call-ID")?;
        if call_id.is_empty() || call_id.contains(char::is_whitespace) {
            return Err(SipError::BadHeader("Call-ID"));
        }
        let call_id = call_id.to_owned();
        let cseq = single(&headers, &HeaderName::CSeq, "CSeq")?;
        let cseq = CSeq::parse(cseq).ok_or(SipError::BadHeader("CSeq"))?;
        if let StartLine::Request { method, .. } = &start {
            if *method != cseq.method {
                return Err(SipError::BadHeader("CSeq"));
            }
        }
        Ok(SipMessage {
            start,
            headers,
            body,
            vias,
            from,
            to,
            call_id,
            cseq,
        })
    }

    /// Serialise with canonical header names, CRLF line ends and a computed Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(256 + self.headers.len() * 48);
        match &self.start {
            StartLine::Request { method, uri } => {
                out.push_str(&format!("{method} {uri} SIP/2.0\r\n"))
            }
            StartLine::Response { code, reason } => {
                out.push_str(&format!("SIP/2.0 {code} {reason}\r\n"))
            }
        }
        for h in &self.headers {
            out.push_str(h.name.as_str());
            out.push_str(": ");
            out.push_str(&h.value);
            out.push_str("\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Request line or status line.
    pub fn start_line(&self) -> &StartLine {
        &self.start
    }

    /// True for requests.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request's method, or for a response the method in its CSeq.
    pub fn method(&self) -> &Method {
        match &self.start {
            StartLine::Request { method, .. } => method,
            StartLine::Response { .. } => &self.cseq.method,
        }
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// All Via values, top (most recent hop) first.
    pub fn vias(&self) -> &[Via] {
        &self.vias
    }

    /// The top Via: the hop a response goes back to.
    pub fn top_via(&self) -> &Via {
        // from_parts guarantees at least one Via.
        &self.vias[0]
    }

    /// The From header.
    pub fn from(&self) -> &NameAddr {
        &self.from
    }

    /// The To header.
    pub fn to(&self) -> &NameAddr {
        &self.to
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The CSeq.
    pub fn cseq(&self) -> &CSeq {
        &self.cseq
    }

    /// The body bytes (exactly Content-Length of them).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text, if it is.
    pub fn body_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// All headers in order (without Content-Length).
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// First value of a header, by any spelling of its name (`"l"`, `"call-id"`, ...).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).next()
    }

    /// All values of a header (one per line; comma lists are not split).
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = HeaderName::from_wire(name);
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| h.value.as_str())
    }

    /// Content-Type value.
    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
    }

    /// True when the Content-Type media type is `application/scaip+xml` (parameters ignored).
    pub fn is_scaip(&self) -> bool {
        self.content_type()
            .map(|c| c.split(';').next().unwrap_or("").trim())
            .is_some_and(|m| m.eq_ignore_ascii_case(SCAIP_CONTENT_TYPE))
    }

    /// Expires header in seconds.
    pub fn expires(&self) -> Option<u32> {
        self.header("Expires")?.trim().parse().ok()
    }

    /// Max-Forwards value.
    pub fn max_forwards(&self) -> Option<u32> {
        self.header("Max-Forwards")?.trim().parse().ok()
    }

    /// User-Agent value.
    pub fn user_agent(&self) -> Option<&str> {
        self.header("User-Agent")
    }

    /// Raw Authorization value (parse with [`crate::auth::Authorization::parse`]).
    pub fn authorization(&self) -> Option<&str> {
        self.header("Authorization")
    }

    /// Raw WWW-Authenticate value (parse with [`crate::auth::Challenge::parse`]).
    pub fn www_authenticate(&self) -> Option<&str> {
        self.header("WWW-Authenticate")
    }

    /// All Contact values, comma lists split. A wildcard `Contact: *` gives one entry with
    /// uri `*`.
    pub fn contacts(&self) -> Result<Vec<NameAddr>, SipError> {
        let mut out = Vec::new();
        for v in self.header_values("Contact") {
            for part in split_commas(v) {
                out.push(NameAddr::parse(part).ok_or(SipError::BadHeader("Contact"))?);
            }
        }
        Ok(out)
    }

    /// Append a header. The core headers (Via, From, To, Call-ID, CSeq, Content-Length) are
    /// refused: they are fixed by parsing or by the builders.
    pub fn push_header(&mut self, name: &str, value: &str) -> Result<(), SipError> {
        if !is_token(name) {
            return Err(SipError::InvalidInput("header name"));
        }
        check_line(value, "header value")?;
        let name = HeaderName::from_wire(name);
        if name.is_core() {
            return Err(SipError::InvalidInput("core header"));
        }
        self.headers.push(Header {
            name,
            value: value.trim().to_owned(),
        });
        Ok(())
    }

    /// Replace every value of a (non-core) header with one value.
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), SipError> {
        let parsed = HeaderName::from_wire(name);
        if parsed.is_core() {
            return Err(SipError::InvalidInput("core header"));
        }
        check_line(value, "header value")?;
        self.remove_header(name);
        self.push_header(name, value)
    }

    /// Remove every value of a (non-core) header; returns how many were removed.
    pub fn remove_header(&mut self, name: &str) -> usize {
        let name = HeaderName::from_wire(name);
        if name.is_core() {
            return 0;
        }
        let before = self.headers.len();
        self.headers.retain(|h| h.name != name);
        before - self.headers.len()
    }

    /// Replace the body and its Content-Type.
    pub fn set_body(
        &mut self,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> Result<(), SipError> {
        self.set_header("Content-Type", content_type)?;
        self.body = body.into();
        Ok(())
    }

    /// Record where a request came from on its top Via (`received`, `rport`), as a server
    /// does on receipt so that responses are routed back to the real source.
    pub fn stamp_source(&mut self, ip: &str, port: u16) {
        self.vias[0].stamp_source(ip, port);
        self.rewrite_vias();
    }

    /// Regenerate the Via header lines from the typed list (one line per hop).
    fn rewrite_vias(&mut self) {
        let pos = self
            .headers
            .iter()
            .position(|h| h.name == HeaderName::Via)
            .unwrap_or(0);
        self.headers.retain(|h| h.name != HeaderName::Via);
        let lines = self.vias.iter().map(|v| Header {
            name: HeaderName::Via,
            value: v.to_string(),
        });
        self.headers.splice(pos..pos, lines);
    }
}

fn single<'a>(
    headers: &'a [Header],
    name: &HeaderName,
    label: &'static str,
) -> Result<&'a str, SipError> {
    let mut it = headers.iter().filter(|h| h.name == *name);
    let first = it.next().ok_or(SipError::MissingHeader(label))?;
    if it.next().is_some() {
        return Err(SipError::BadHeader(label));
    }
    Ok(&first.value)
}

pub(crate) fn parse_content_length(v: &str) -> Option<usize> {
    let v = v.trim();
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Reject values that would break the message framing.
pub(crate) fn check_line(v: &str, what: &'static str) -> Result<(), SipError> {
    if v.contains(['\r', '\n', '\0']) {
        Err(SipError::InvalidInput(what))
    } else {
        Ok(())
    }
}
