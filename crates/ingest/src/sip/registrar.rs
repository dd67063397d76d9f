//! REGISTER bindings: one contact per account with an expiry, **kept in memory only** (a
//! restart forgets them; devices re-register within their interval, and until then the
//! `<mrs>` goes to the request's Contact or source). The table holds at most one binding per
//! configured account, so it is bounded by the configuration.
use std::collections::HashMap;

/// A device's registered contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI.
    pub uri: String,
    /// When it lapses (Unix ms).
    pub expires_at_ms: u64,
}

#[derive(Debug, Default)]
pub struct Registrar {
    bindings: HashMap<String, Binding>,
}

impl Registrar {
    /// Binds `account` to `uri` for `expires_secs` (0 removes the binding).
    pub fn bind(&mut self, account: &str, uri: &str, expires_secs: u32, now_ms: u64) {
        if expires_secs == 0 {
            self.bindings.remove(account);
            return;
        }
        self.bindings.insert(
            account.to_owned(),
            Binding {
                uri: uri.to_owned(),
                expires_at_ms: now_ms + u64::from(expires_secs) * 1000,
            },
        );
    }

    /// Removes the account's binding (`Contact: *` with `Expires: 0`).
    pub fn unbind(&mut self, account: &str) {
        self.bindings.remove(account);
    }

    /// The live binding of `account`; an expired one is dropped.
    pub fn lookup(&mut self, account: &str, now_ms: u64) -> Option<Binding> {
        match self.bindings.get(account) {
            Some(b) if b.expires_at_ms > now_ms => Some(b.clone()),
            Some(_) => {
                self.bindings.remove(account);
                None
            }
            None => None,
        }
    }

    /// Live bindings (expired ones are counted until looked up or purged).
    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    /// Drops expired bindings.
    pub fn purge(&mut self, now_ms: u64) {
        self.bindings.retain(|_, b| b.expires_at_ms > now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_expire_unbind() {
        let mut r = Registrar::default();
        r.bind("100001", "sip:100001@10.0.0.1:5070", 60, 1_000);
        assert_eq!(
            r.lookup("100001", 60_999).map(|b| b.uri),
            Some("sip:100001@10.0.0.1:5070".into())
        );
        assert_eq!(r.lookup("100001", 61_000), None, "expired");
        assert_eq!(r.len(), 0);
        r.bind("a", "sip:a@h", 60, 0);
        r.bind("a", "sip:a@other", 60, 10);
        assert_eq!(r.lookup("a", 20).unwrap().uri, "sip:a@other", "latest wins");
        r.bind("a", "sip:a@other", 0, 30);
        assert_eq!(r.lookup("a", 31), None, "expires 0 removes");
        r.bind("b", "sip:b@h", 1, 0);
        r.bind("c", "sip:c@h", 100, 0);
        r.purge(5_000);
        assert_eq!(r.len(), 1);
        r.unbind("c");
        assert_eq!(r.len(), 0);
    }
}
