//! What every record's checks share: the problems found, each named by its field, and the rule
//! for ids. Apart from the records that use them, so that rules and the directory can both
//! check without depending on each other.

/// Keeps the first-failing fields of a record, each with why: `(field, reason)`.
pub type Problems = Vec<(String, String)>;

/// Ids: what a device, tenant, centre or rule may be called. Printable ASCII without '/', so
/// that they fit keys, URLs and SIP usernames unescaped.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'))
}
