//! Message builders: a response to a request (RFC 3261 §8.2.6) and a new out-of-dialog
//! request such as the MESSAGE that carries `<mrs>` back to a device.

use super::header::{is_token, NameAddr, Via, BRANCH_MAGIC};
use super::message::{
    check_line, Header, HeaderName, Method, SipError, SipMessage, StartLine, SCAIP_CONTENT_TYPE,
};

impl SipMessage {
    /// Build a response to `req`: Via (all, in order), From, To, Call-ID and CSeq are copied;
    /// a To tag is added when the request's To has none and the status is above 100, as the
    /// UAS must (§8.2.6.2); `to_tag` must be a token (otherwise none is added) and should be
    /// the same for every response to one request. `code` is clamped into 100..=699.
    /// Line breaks in `reason` are replaced so that it cannot break the framing.
    pub fn response(req: &SipMessage, code: u16, reason: &str, to_tag: &str) -> SipMessage {
        let mut to = req.to.clone();
        if code > 100
            && to.tag().is_none()
            && !to_tag.is_empty()
            && to_tag.chars().all(super::header::is_token_char)
        {
            to.set_tag(to_tag);
        }
        let mut headers: Vec<Header> = req
            .headers
            .iter()
            .filter(|h| h.name == HeaderName::Via)
            .cloned()
            .collect();
        let copy = |name: HeaderName| req.headers.iter().find(|h| h.name == name).cloned();
        headers.extend(copy(HeaderName::From));
        headers.push(Header {
            name: HeaderName::To,
            value: to.to_string(),
        });
        headers.extend(copy(HeaderName::CallId));
        headers.extend(copy(HeaderName::CSeq));
        let reason: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        SipMessage {
            start: StartLine::Response {
                code: code.clamp(100, 699),
                reason: reason.trim().to_owned(),
            },
            headers,
            body: Vec::new(),
            vias: req.vias.clone(),
            from: req.from.clone(),
            to,
            call_id: req.call_id.clone(),
            cseq: req.cseq.clone(),
        }
    }
}

/// Parameters of a new request outside a dialog. All strings are inserted as written after
/// checking that they cannot break the message; the caller supplies the unique parts
/// (branch, tag, Call-ID) so that this crate stays deterministic.
#[derive(Debug, Clone)]
pub struct NewRequest<'a> {
    /// Method (MESSAGE for `<mrs>`).
    pub method: Method,
    /// Request-URI, e.g. the device's Contact URI.
    pub request_uri: &'a str,
    /// Via transport: `UDP`, `TCP` or `TLS`.
    pub transport: &'a str,
    /// Via sent-by: our `host:port`.
    pub sent_by: &'a str,
    /// A fresh branch for this transaction; the `z9hG4bK` cookie is prepended if absent.
    pub branch: &'a str,
    /// From URI (ours).
    pub from_uri: &'a str,
    /// From tag.
    pub from_tag: &'a str,
    /// To URI (the device's address of record).
    pub to_uri: &'a str,
    /// Call-ID.
    pub call_id: &'a str,
    /// CSeq number.
    pub cseq: u32,
    /// Max-Forwards (70 is the RFC 3261 recommendation).
    pub max_forwards: u32,
}

impl Default for NewRequest<'_> {
    fn default() -> Self {
        NewRequest {
            method: Method::Message,
            request_uri: "",
            transport: "UDP",
            sent_by: "",
            branch: "",
            from_uri: "",
            from_tag: "",
            to_uri: "",
            call_id: "",
            cseq: 1,
            max_forwards: 70,
        }
    }
}

impl NewRequest<'_> {
    /// Build the request with an optional `(content type, body)`.
    pub fn build(&self, body: Option<(&str, &[u8])>) -> Result<SipMessage, SipError> {
        let branch = self.checked_branch(body.map(|b| b.0))?;
        let method = self.method.as_str();
        let h = |name: HeaderName, value: String| Header { name, value };
        let mut headers = vec![
            h(
                HeaderName::Via,
                format!(
                    "SIP/2.0/{} {};branch={branch}",
                    self.transport, self.sent_by
                ),
            ),
            h(HeaderName::MaxForwards, self.max_forwards.to_string()),
            h(
                HeaderName::From,
                format!("<{}>;tag={}", self.from_uri, self.from_tag),
            ),
            h(HeaderName::To, format!("<{}>", self.to_uri)),
            h(HeaderName::CallId, self.call_id.to_owned()),
            h(HeaderName::CSeq, format!("{} {method}", self.cseq)),
        ];
        let mut bytes = Vec::new();
        if let Some((ct, b)) = body {
            headers.push(h(HeaderName::ContentType, ct.trim().to_owned()));
            bytes = b.to_vec();
        }
        let start = StartLine::Request {
            method: self.method.clone(),
            uri: self.request_uri.to_owned(),
        };
        SipMessage::from_parts(start, headers, bytes).map_err(|e| match e {
            SipError::BadHeader(what) | SipError::MissingHeader(what) => {
                SipError::InvalidInput(what)
            }
            other => other,
        })
    }

    /// Checks every value that goes into the message; returns the branch with its cookie.
    fn checked_branch(&self, content_type: Option<&str>) -> Result<String, SipError> {
        let fields: [(&str, &'static str); 9] = [
            (self.request_uri, "request URI"),
            (self.transport, "transport"),
            (self.sent_by, "sent-by"),
            (self.branch, "branch"),
            (self.from_uri, "From URI"),
            (self.from_tag, "From tag"),
            (self.to_uri, "To URI"),
            (self.call_id, "Call-ID"),
            (content_type.unwrap_or("x"), "Content-Type"),
        ];
        for (value, what) in fields {
            check_line(value, what)?;
            if value.trim().is_empty()
                || (value.contains([' ', '\t', '<', '>']) && what != "Content-Type")
            {
                return Err(SipError::InvalidInput(what));
            }
        }
        if !is_token(self.branch) || !is_token(self.from_tag) || !is_token(self.transport) {
            return Err(SipError::InvalidInput("branch, tag or transport"));
        }
        Ok(if self.branch.starts_with(BRANCH_MAGIC) {
            self.branch.to_owned()
        } else {
            format!("{BRANCH_MAGIC}{}", self.branch)
        })
    }

    /// The SCAIP MESSAGE carrying `xml`, serialised: the bytes of
    /// `scaip_message(xml)?.to_bytes()`, written directly, since the front sends one for every
    /// request it answers. The same checks apply (the typed parsers read the written Via, From
    /// and To); a test holds both paths to the same bytes and the same refusals.
    pub fn scaip_message_bytes(&self, xml: &str) -> Result<Vec<u8>, SipError> {
        let branch = self.checked_branch(Some(SCAIP_CONTENT_TYPE))?;
        let mut out = String::with_capacity(384 + xml.len());
        let value = |out: &mut String, name: &str, parts: &[&str]| {
            out.push_str(name);
            out.push_str(": ");
            let start = out.len();
            parts.iter().for_each(|p| out.push_str(p));
            let range = start..out.len();
            out.push_str("\r\n");
            range
        };
        for p in ["MESSAGE ", self.request_uri, " SIP/2.0\r\n"] {
            out.push_str(p);
        }
        let via = value(
            &mut out,
            "Via",
            &[
                "SIP/2.0/",
                self.transport,
                " ",
                self.sent_by,
                ";branch=",
                &branch,
            ],
        );
        value(&mut out, "Max-Forwards", &[&self.max_forwards.to_string()]);
        let from = value(
            &mut out,
            "From",
            &["<", self.from_uri, ">;tag=", self.from_tag],
        );
        let to = value(&mut out, "To", &["<", self.to_uri, ">"]);
        value(&mut out, "Call-ID", &[self.call_id]);
        value(&mut out, "CSeq", &[&self.cseq.to_string(), " MESSAGE"]);
        value(&mut out, "Content-Type", &[SCAIP_CONTENT_TYPE]);
        value(&mut out, "Content-Length", &[&xml.len().to_string()]);
        out.push_str("\r\n");
        out.push_str(xml);
        // What from_parts would refuse in the built message.
        // A comma separates Via values: the parser would read two (the second malformed).
        if out[via.clone()].contains(',') || Via::parse(&out[via]).is_none() {
            return Err(SipError::InvalidInput("Via"));
        }
        if NameAddr::parse(&out[from]).is_none() {
            return Err(SipError::InvalidInput("From"));
        }
        if NameAddr::parse(&out[to]).is_none() {
            return Err(SipError::InvalidInput("To"));
        }
        if self.call_id.contains(char::is_whitespace) {
            return Err(SipError::InvalidInput("Call-ID"));
        }
        if self.cseq >= 1 << 31 {
            return Err(SipError::InvalidInput("CSeq"));
        }
        Ok(out.into_bytes())
    }

    /// Build a SCAIP MESSAGE carrying `xml` as `application/scaip+xml`.
    pub fn scaip_message(&self, xml: &str) -> Result<SipMessage, SipError> {
        NewRequest {
            method: Method::Message,
            ..self.clone()
        }
        .build(Some((SCAIP_CONTENT_TYPE, xml.as_bytes())))
    }
}
