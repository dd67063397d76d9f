//! The `Scheme name=value, name="quoted"` syntax shared by WWW-Authenticate and
//! Authorization (RFC 7235 §2.1, RFC 3261 §25 `digest-cln`).

use std::fmt::Write as _;

use super::DigestError;
use crate::sip::header::{is_token_char, parse_quoted, write_quoted};

/// Lower-cased parameter names with unquoted values, in order.
pub(crate) type AuthParams = Vec<(String, String)>;

/// Split a credentials/challenge value into its scheme and lower-cased parameter names with
/// unquoted values. Duplicate names are refused: which one counts would be ambiguous.
pub(crate) fn parse_auth_params(s: &str) -> Result<(&str, AuthParams), DigestError> {
    let s = s.trim();
    let scheme_end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
    let (scheme, mut rest) = s.split_at(scheme_end);
    if scheme.is_empty() {
        return Err(DigestError::Malformed);
    }
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return Err(DigestError::Malformed);
    }
    let mut params: AuthParams = Vec::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            break;
        }
        let name_end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        if name_end == 0 {
            return Err(DigestError::Malformed);
        }
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..]
            .trim_start()
            .strip_prefix('=')
            .ok_or(DigestError::Malformed)?
            .trim_start();
        let value = if rest.starts_with('"') {
            let (v, after) = parse_quoted(rest).ok_or(DigestError::Malformed)?;
            rest = after;
            v
        } else {
            let end = rest
                .find(|c: char| c == ',' || c.is_whitespace())
                .unwrap_or(rest.len());
            if end == 0 {
                return Err(DigestError::Malformed);
            }
            let v = rest[..end].to_owned();
            rest = &rest[end..];
            v
        };
        if params.iter().any(|(n, _)| *n == name) {
            return Err(DigestError::Malformed);
        }
        params.push((name, value));
        rest = rest.trim_start();
        if !(rest.is_empty() || rest.starts_with(',')) {
            return Err(DigestError::Malformed);
        }
    }
    Ok((scheme, params))
}

/// Look up a parameter by its (lower-case) name.
pub(crate) fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Append `, name="value"` (the first parameter without the comma).
pub(crate) fn push_quoted(out: &mut String, name: &str, value: &str) {
    push_sep(out);
    out.push_str(name);
    out.push('=');
    let _ = write_quoted(out, value);
}

/// Append `, name=value` for token values (algorithm, qop in credentials, nc, stale). A value
/// that is not a token (a qop as received) is quoted, so that it reads back the same.
pub(crate) fn push_token(out: &mut String, name: &str, value: &str) {
    if value.is_empty() || !value.chars().all(is_token_char) {
        return push_quoted(out, name, value);
    }
    push_sep(out);
    let _ = write!(out, "{name}={value}");
}

fn push_sep(out: &mut String) {
    if !out.ends_with(' ') {
        out.push_str(", ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mixed_params() {
        let (scheme, p) = parse_auth_params(
            "Digest  username=\"Mu\\\"fa,sa\" ,realm=\"r\",nc=00000001 , qop=auth,",
        )
        .unwrap();
        assert_eq!(scheme, "Digest");
        assert_eq!(get(&p, "username"), Some("Mu\"fa,sa"));
        assert_eq!(get(&p, "nc"), Some("00000001"));
        assert_eq!(get(&p, "qop"), Some("auth"));
        assert_eq!(p.len(), 4);
        for bad in [
            "",
            "Digest a",
            "Digest a=",
            "Digest a=\"x",
            "Digest a=1 b=2",
            "Digest a=1, A=2",
            "Dig=est",
            "Digest =1",
        ] {
            assert!(parse_auth_params(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_auth_params("Basic").unwrap(), ("Basic", vec![]));
    }
}
