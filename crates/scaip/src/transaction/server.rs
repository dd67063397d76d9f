//! Non-INVITE server transactions (RFC 3261 §17.2.2) as a bounded table driven by `now_ms`.
//!
//! States: Trying (request passed up, no response yet), Proceeding (a provisional response
//! sent), Completed (final response sent, kept for Timer J). A request matching an entry is
//! a retransmission: it gets the last response again, or nothing while Trying, and is never
//! passed up a second time.

use std::collections::{BTreeMap, HashMap};

use super::{TIMER_F_MS, TIMER_J_MS};
use crate::sip::{Method, SipMessage, BRANCH_MAGIC};

/// What identifies a server transaction (RFC 3261 §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TxKey {
    /// Top Via branch with the `z9hG4bK` cookie, its sent-by and the method.
    Branch {
        /// Branch parameter.
        branch: String,
        /// `host[:port]`, host lower-cased.
        sent_by: String,
        /// Request method (ACK maps to INVITE).
        method: Method,
    },
    /// RFC 2543 peers: no unique branch, so match on the dialog-ish fields instead.
    Legacy {
        /// Request-URI.
        request_uri: String,
        /// From tag.
        from_tag: Option<String>,
        /// To tag.
        to_tag: Option<String>,
        /// Call-ID.
        call_id: String,
        /// CSeq number.
        cseq: u32,
        /// Request method.
        method: Method,
        /// The whole top Via value.
        top_via: String,
    },
}

impl TxKey {
    /// The key of a request.
    pub fn from_request(req: &SipMessage) -> TxKey {
        let via = req.top_via();
        let method = match req.method() {
            Method::Ack => Method::Invite,
            m => m.clone(),
        };
        match via.branch() {
            Some(b) if b.starts_with(BRANCH_MAGIC) => TxKey::Branch {
                branch: b.to_owned(),
                sent_by: via.sent_by().to_ascii_lowercase(),
                method,
            },
            _ => TxKey::Legacy {
                request_uri: req.request_uri().unwrap_or("").to_owned(),
                from_tag: req.from().tag().map(str::to_owned),
                to_tag: req.to().tag().map(str::to_owned),
                call_id: req.call_id().to_owned(),
                cseq: req.cseq().seq,
                method,
                top_via: via.to_string(),
            },
        }
    }
}

/// Outcome of offering a received request to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxLookup {
    /// First sight: pass it to the application, then call [`ServerTransactions::respond`].
    New(TxKey),
    /// A retransmission: send `Some` bytes again, or nothing while no response exists yet.
    Retransmission(Option<Vec<u8>>),
    /// An ACK: it belongs to no non-INVITE transaction and is never answered.
    Ack,
    /// The table is full of live transactions: answer 503 without remembering it.
    Full,
}

#[derive(Debug, Clone)]
struct Entry {
    response: Option<Vec<u8>>,
    completed: bool,
    expires_at: u64,
    seq: u64,
}

/// The server transaction table. Capacity is fixed by the caller.
#[derive(Debug, Clone)]
pub struct ServerTransactions {
    capacity: usize,
    entries: HashMap<TxKey, Entry>,
    // (expires_at, insertion number) -> key: finds expired entries oldest first.
    expiry: BTreeMap<(u64, u64), TxKey>,
    next_seq: u64,
}

impl ServerTransactions {
    /// A table holding at most `capacity` live transactions.
    pub fn new(capacity: usize) -> ServerTransactions {
        ServerTransactions {
            capacity,
            entries: HashMap::new(),
            expiry: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When the next entry expires (for the caller's timer), if any.
    pub fn next_expiry(&self) -> Option<u64> {
        self.expiry.keys().next().map(|(t, _)| *t)
    }

    /// The held transaction of `req`, if any: `Some` with the response to send again (`None`
    /// inside while it has none yet). Unlike [`on_request`](Self::on_request) it never adds an
    /// entry, so a server can look up first and keep state only for requests it then
    /// authenticates (a stranger's request costs no entry).
    pub fn lookup(&self, req: &SipMessage, now_ms: u64) -> Option<Option<Vec<u8>>> {
        if *req.method() == Method::Ack {
            return None;
        }
        let e = self.entries.get(&TxKey::from_request(req))?;
        (e.expires_at > now_ms).then(|| e.response.clone())
    }

    /// Offer a received request.
    pub fn on_request(&mut self, req: &SipMessage, now_ms: u64) -> TxLookup {
        if *req.method() == Method::Ack {
            return TxLookup::Ack;
        }
        let key = TxKey::from_request(req);
        if let Some(e) = self.entries.get(&key) {
            if e.expires_at > now_ms {
                return TxLookup::Retransmission(e.response.clone());
            }
            self.remove(&key);
        }
        if self.entries.len() >= self.capacity {
            self.purge_expired(now_ms);
            if self.entries.len() >= self.capacity {
                return TxLookup::Full;
            }
        }
        // Trying has no timer in the RFC; this bound keeps a request the application never
        // answered from pinning a slot forever. The client has given up by then (Timer F).
        self.insert(
            key.clone(),
            Entry {
                response: None,
                completed: false,
                expires_at: now_ms + TIMER_F_MS,
                seq: 0,
            },
        );
        TxLookup::New(key)
    }

    /// Record the response sent for a transaction. A provisional one (1xx) is kept for
    /// retransmissions; a final one completes the transaction, which then lives for Timer J
    /// (0 over a reliable transport, so it ends at once). Returns false if the transaction
    /// is unknown (expired, or already completed: a final response is sent only once).
    pub fn respond(
        &mut self,
        key: &TxKey,
        status: u16,
        response: Vec<u8>,
        reliable: bool,
        now_ms: u64,
    ) -> bool {
        let Some(e) = self.entries.get_mut(key) else {
            return false;
        };
        if e.completed || e.expires_at <= now_ms {
            return false;
        }
        e.response = Some(response);
        if status < 200 {
            return true;
        }
        let linger = if reliable { 0 } else { TIMER_J_MS };
        if linger == 0 {
            self.remove(key);
            return true;
        }
        let Some(mut e) = self.remove(key) else {
            return false;
        };
        e.completed = true;
        e.expires_at = now_ms + linger;
        self.insert(key.clone(), e);
        true
    }

    /// Drop every entry whose time is up; returns how many.
    pub fn purge_expired(&mut self, now_ms: u64) -> usize {
        let mut n = 0;
        while let Some(((t, _), _)) = self.expiry.first_key_value() {
            if *t > now_ms {
                break;
            }
            if let Some((_, key)) = self.expiry.pop_first() {
                self.entries.remove(&key);
                n += 1;
            }
        }
        n
    }

    fn insert(&mut self, key: TxKey, mut e: Entry) {
        self.next_seq += 1;
        e.seq = self.next_seq;
        self.expiry.insert((e.expires_at, e.seq), key.clone());
        self.entries.insert(key, e);
    }

    fn remove(&mut self, key: &TxKey) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.expiry.remove(&(e.expires_at, e.seq));
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, branch: &str, cseq: u32) -> SipMessage {
        let raw = format!(
            "{method} sip:arc@vaka.example SIP/2.0\r\nVia: SIP/2.0/UDP Dev.Example:5060;branch={branch}\r\n\
From: <sip:1@vaka.example>;tag=f\r\nTo: <sip:arc@vaka.example>\r\nCall-ID: c1\r\nCSeq: {cseq} {method}\r\n\r\n"
        );
        SipMessage::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn keys() {
        let a = TxKey::from_request(&req("MESSAGE", "z9hG4bKa", 1));
        assert_eq!(
            a,
            TxKey::Branch {
                branch: "z9hG4bKa".into(),
                sent_by: "dev.example:5060".into(),
                method: Method::Message
            }
        );
        // Same branch, other method (CANCEL) is another transaction.
        assert_ne!(a, TxKey::from_request(&req("OPTIONS", "z9hG4bKa", 1)));
        // Without the cookie the RFC 2543 key is used: CSeq distinguishes.
        let l1 = TxKey::from_request(&req("MESSAGE", "old1", 1));
        assert!(matches!(l1, TxKey::Legacy { cseq: 1, .. }));
        assert_eq!(l1, TxKey::from_request(&req("MESSAGE", "old1", 1)));
        assert_ne!(l1, TxKey::from_request(&req("MESSAGE", "old1", 2)));
    }

    #[test]
    fn retransmissions_get_the_same_response_until_timer_j() {
        let mut t = ServerTransactions::new(10);
        let r = req("MESSAGE", "z9hG4bK1", 1);
        let TxLookup::New(key) = t.on_request(&r, 0) else {
            panic!("new")
        };
        // Retransmission before any response: absorbed.
        assert_eq!(t.on_request(&r, 400), TxLookup::Retransmission(None));
        assert!(t.respond(&key, 100, b"100".to_vec(), false, 450));
        assert_eq!(
            t.on_request(&r, 500),
            TxLookup::Retransmission(Some(b"100".to_vec()))
        );
        assert!(t.respond(&key, 200, b"200".to_vec(), false, 1_000));
        assert!(
            !t.respond(&key, 500, b"500".to_vec(), false, 1_001),
            "one final response only"
        );
        assert_eq!(
            t.on_request(&r, 1_500),
            TxLookup::Retransmission(Some(b"200".to_vec()))
        );
        assert_eq!(
            t.on_request(&r, 32_999),
            TxLookup::Retransmission(Some(b"200".to_vec()))
        );
        assert_eq!(t.next_expiry(), Some(33_000));
        // Timer J over: the same branch is a new transaction again.
        assert!(matches!(t.on_request(&r, 33_000), TxLookup::New(_)));
        assert_eq!(t.on_request(&req("ACK", "z9hG4bK1", 1), 0), TxLookup::Ack);
    }

    #[test]
    fn lookup_adds_nothing() {
        let mut t = ServerTransactions::new(10);
        let r = req("MESSAGE", "z9hG4bK3", 1);
        assert_eq!(t.lookup(&r, 0), None);
        assert!(t.is_empty(), "a lookup keeps no state");
        let TxLookup::New(key) = t.on_request(&r, 0) else {
            panic!("new")
        };
        assert_eq!(t.lookup(&r, 1), Some(None));
        t.respond(&key, 200, b"ok".to_vec(), false, 2);
        assert_eq!(t.lookup(&r, 3), Some(Some(b"ok".to_vec())));
        assert_eq!(t.lookup(&r, 40_000), None, "expired");
        assert_eq!(t.lookup(&req("ACK", "z9hG4bK3", 1), 3), None);
    }

    #[test]
    fn reliable_transport_ends_at_final_response() {
        let mut t = ServerTransactions::new(10);
        let r = req("MESSAGE", "z9hG4bK2", 1);
        let TxLookup::New(key) = t.on_request(&r, 0) else {
            panic!("new")
        };
        assert!(t.respond(&key, 200, b"ok".to_vec(), true, 10));
        assert!(t.is_empty());
    }

    #[test]
    fn capacity_and_expiry() {
        let mut t = ServerTransactions::new(2);
        let (a, b, c) = (
            req("MESSAGE", "z9hG4bKa", 1),
            req("MESSAGE", "z9hG4bKb", 1),
            req("MESSAGE", "z9hG4bKc", 1),
        );
        let TxLookup::New(ka) = t.on_request(&a, 0) else {
            panic!()
        };
        assert!(matches!(t.on_request(&b, 0), TxLookup::New(_)));
        assert_eq!(t.on_request(&c, 10), TxLookup::Full);
        assert_eq!(t.len(), 2);
        t.respond(&ka, 200, b"x".to_vec(), false, 20);
        assert_eq!(
            t.on_request(&c, 20_000),
            TxLookup::Full,
            "nothing expired yet"
        );
        // b (Trying) expires at Timer F = 32 000; a (Completed at 20) at 32 020.
        assert!(matches!(t.on_request(&c, 32_000), TxLookup::New(_)));
        assert_eq!(t.len(), 2);
        assert!(
            !t.respond(&TxKey::from_request(&b), 200, vec![], false, 32_001),
            "b is gone"
        );
        assert_eq!(t.purge_expired(100_000), 2);
        assert!(t.is_empty() && t.next_expiry().is_none());
    }
}
