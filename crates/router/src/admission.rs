//! Per-tenant admission at the router's intake: the first place every front's events meet
//! with their tenant known and before any store work. The buckets live here, the rule in
//! `vaka_core::admission`. One lock for all tenants: held for a map lookup and a few integer
//! operations, never across an await.
use std::collections::HashMap;
use std::sync::Mutex;
use vaka_core::admission::{Limits, TenantBuckets, Verdict};
use vaka_core::{EventKind, Lane, TenantId, UnixMillis};

#[derive(Default)]
pub(crate) struct Admission {
    /// One entry per tenant that has sent since the start: bounded by the directory's tenants.
    buckets: Mutex<HashMap<TenantId, TenantBuckets>>,
}

impl Admission {
    /// The verdict for an event of `tenant` under `limits` riding `lane`, which holds
    /// `queued` of `capacity`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check(
        &self,
        tenant: &TenantId,
        limits: &Limits,
        lane: Lane,
        kind: &EventKind,
        queued: usize,
        capacity: usize,
        now: UnixMillis,
    ) -> Verdict {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let buckets = match map.get_mut(tenant) {
            Some(b) => b,
            None => map
                .entry(tenant.clone())
                .or_insert_with(|| TenantBuckets::new(limits, now)),
        };
        buckets.admit(limits, lane, kind, queued, capacity, now)
    }
}
