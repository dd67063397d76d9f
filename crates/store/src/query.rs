//! Typed reads for the control plane: alarms by tenant, device, state and time, a device's open
//! alarms and when it was last heard. The admin API reads through these, never a column family.
use crate::backend::{Backend, Cf, StoreError};
use crate::keys::{decode, decode_id, device_prefix, id_key, load_alarm};
use vaka_core::alarm::AlarmState;
use vaka_core::{Alarm, AlarmId, DeviceKey, Event, EventId, UnixMillis};

/// Which alarms a listing wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlarmFilter {
    pub tenant: Option<String>,
    pub device: Option<String>,
    pub state: StateFilter,
    /// Created at or after (unix ms).
    pub from_ms: Option<UnixMillis>,
    /// Created before (unix ms).
    pub to_ms: Option<UnixMillis>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StateFilter {
    #[default]
    Any,
    /// Not closed or cancelled (read through the open index, fast).
    Open,
    Pending,
    Offered,
    Receipted,
    Accepted,
    Unhandled,
    Closed,
    Cancelled,
}

impl StateFilter {
    pub fn parse(s: &str) -> Option<StateFilter> {
        Some(match s {
            "any" => StateFilter::Any,
            "open" => StateFilter::Open,
            "pending" => StateFilter::Pending,
            "offered" => StateFilter::Offered,
            "receipted" => StateFilter::Receipted,
            "accepted" => StateFilter::Accepted,
            "unhandled" => StateFilter::Unhandled,
            "closed" => StateFilter::Closed,
            "cancelled" => StateFilter::Cancelled,
            _ => return None,
        })
    }

    fn matches(self, s: &AlarmState) -> bool {
        match self {
            StateFilter::Any => true,
            StateFilter::Open => !s.is_final(),
            StateFilter::Pending => matches!(s, AlarmState::Pending),
            StateFilter::Offered => matches!(s, AlarmState::Offered { .. }),
            StateFilter::Receipted => matches!(s, AlarmState::Receipted { .. }),
            StateFilter::Accepted => matches!(s, AlarmState::Accepted { .. }),
            StateFilter::Unhandled => matches!(s, AlarmState::Unhandled),
            StateFilter::Closed => matches!(s, AlarmState::Closed { .. }),
            StateFilter::Cancelled => matches!(s, AlarmState::Cancelled),
        }
    }
}

impl AlarmFilter {
    pub fn matches(&self, a: &Alarm) -> bool {
        self.tenant.as_ref().is_none_or(|t| a.device.tenant.0 == *t)
            && self.device.as_ref().is_none_or(|d| a.device.device.0 == *d)
            && self.state.matches(&a.state)
            && self.from_ms.is_none_or(|f| a.created_ms >= f)
            && self.to_ms.is_none_or(|t| a.created_ms < t)
    }
}

/// One page of a listing: the alarms (by id, oldest first) and where the next page starts, if
/// the scan stopped before the end.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlarmPage {
    pub alarms: Vec<Alarm>,
    pub next_after: Option<AlarmId>,
}

/// How many records one page may look at before it returns what it has (with a cursor), so a
/// selective filter over a long history cannot hold a reader for long.
pub const SCAN_BUDGET: usize = 50_000;

/// Alarms matching `filter` with id above `after`, at most `limit`, oldest first.
pub fn alarms_page(
    backend: &dyn Backend,
    filter: &AlarmFilter,
    after: Option<AlarmId>,
    limit: usize,
) -> Result<AlarmPage, StoreError> {
    let own = Listing {
        records: (Cf::Alarms, &[]),
        open: (Cf::Open, &[]),
    };
    let (alarms, next_after) = own.page(backend, filter, after, limit, |a: &Alarm| a)?;
    Ok(AlarmPage { alarms, next_after })
}

/// Where a listing reads: records keyed by a prefix and the alarm id, and an index of the
/// open ones keyed the same way (an empty value).
pub(crate) struct Listing<'a> {
    pub records: (Cf, &'a [u8]),
    pub open: (Cf, &'a [u8]),
}

impl Listing<'_> {
    /// Records (`T`, each holding an alarm) matching `filter` with an alarm id above `after`,
    /// at most `limit`, by id, and where the next page starts if the scan stopped first.
    pub(crate) fn page<T: for<'de> serde::Deserialize<'de>>(
        &self,
        backend: &dyn Backend,
        filter: &AlarmFilter,
        after: Option<AlarmId>,
        limit: usize,
        alarm: impl Fn(&T) -> &Alarm,
    ) -> Result<(Vec<T>, Option<AlarmId>), StoreError> {
        let ((cf, prefix), (open_cf, open_prefix)) = (self.records, self.open);
        let key = |p: &[u8], id: u64| [p, &id_key(id)].concat();
        let from = after.map_or(0, |a| a.0.saturating_add(1));
        let (mut out, mut next_after) = (Vec::new(), None);
        let mut looked = 0usize;
        let mut err = None;
        let mut last = None;
        if filter.state == StateFilter::Open {
            // The open index holds a few thousand ids at most; each is read from the records.
            let mut ids = Vec::new();
            backend.scan_from(
                open_cf,
                open_prefix,
                &key(open_prefix, from),
                &mut |k, _| {
                    ids.extend(decode_id(&k[open_prefix.len()..]).map(AlarmId));
                    true
                },
            )?;
            for id in ids {
                if out.len() >= limit {
                    next_after = last;
                    break;
                }
                last = Some(id);
                let k = key(prefix, id.0);
                if let Some(v) = backend.get(cf, &k)? {
                    let t: T = decode(cf, &k, &v)?;
                    if filter.matches(alarm(&t)) {
                        out.push(t);
                    }
                }
            }
            return Ok((out, next_after));
        }
        backend.scan_from(cf, prefix, &key(prefix, from), &mut |k, v| {
            if out.len() >= limit || looked >= SCAN_BUDGET {
                next_after = last;
                return false;
            }
            looked += 1;
            last = decode_id(&k[prefix.len()..]).map(AlarmId);
            match decode::<T>(cf, k, v) {
                Ok(t) => {
                    if filter.matches(alarm(&t)) {
                        out.push(t);
                    }
                    true
                }
                Err(e) => {
                    err = Some(e);
                    false
                }
            }
        })?;
        err.map_or(Ok((out, next_after)), Err)
    }
}

/// The device's alarms that are not closed or cancelled.
pub fn open_alarms_of(backend: &dyn Backend, device: &DeviceKey) -> Result<Vec<Alarm>, StoreError> {
    let filter = AlarmFilter {
        tenant: Some(device.tenant.0.clone()),
        device: Some(device.device.0.clone()),
        state: StateFilter::Open,
        ..AlarmFilter::default()
    };
    Ok(alarms_page(backend, &filter, None, usize::MAX)?.alarms)
}

/// When a supervised device was last heard (unix ms), if it ever was.
pub fn last_heard(
    backend: &dyn Backend,
    device: &DeviceKey,
) -> Result<Option<UnixMillis>, StoreError> {
    Ok(backend
        .get(Cf::Seen, &device_prefix(device))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(|b| u64::from_be_bytes(b) as i64))
}

/// The activity rule states of a device, by rule id (unreadable ones left out).
pub fn rule_states(
    backend: &dyn Backend,
    device: &DeviceKey,
) -> Result<Vec<(String, vaka_core::rules::RuleState)>, StoreError> {
    let mut out = Vec::new();
    backend.scan(Cf::Rules, &device_prefix(device), &mut |k, v| {
        if let (Some((_, rule)), Ok(state)) =
            (crate::keys::decode_rule_key(k), serde_json::from_slice(v))
        {
            out.push((rule, state));
        }
        true
    })?;
    Ok(out)
}

impl crate::Store {
    /// A device's activity rule states, by rule id.
    pub fn rule_states(
        &self,
        device: &DeviceKey,
    ) -> Result<Vec<(String, vaka_core::rules::RuleState)>, StoreError> {
        rule_states(self.backend().as_ref(), device)
    }

    /// One stored device event (an alarm's opening event has the alarm's id).
    pub fn event(&self, id: vaka_core::EventId) -> Result<Option<vaka_core::Event>, StoreError> {
        crate::keys::load_event(self.backend().as_ref(), id)
    }

    /// The stored events with ids from `from` to `to` (both included), in id order: at most
    /// `max` of them.
    pub fn events_between(
        &self,
        from: EventId,
        to: EventId,
        max: usize,
    ) -> Result<Vec<(EventId, Event)>, StoreError> {
        let (mut out, mut err) = (Vec::new(), None);
        self.backend()
            .scan_from(Cf::Events, &[], &id_key(from.0), &mut |k, v| {
                let Some(id) = decode_id(k).filter(|id| *id <= to.0) else {
                    return false;
                };
                match crate::keys::decode_event(k, v) {
                    Ok(stored) => out.push((EventId(id), stored.event)),
                    Err(e) => err = Some(e),
                }
                err.is_none() && out.len() < max
            })?;
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// One alarm, if it exists.
    pub fn alarm(&self, id: AlarmId) -> Result<Option<Alarm>, StoreError> {
        load_alarm(self.backend().as_ref(), id)
    }

    /// The audit sequence number alarm `id`'s next record takes (see [`crate::keys::next_audit_seq`]).
    pub fn next_audit_seq(&self, id: AlarmId) -> Result<u32, StoreError> {
        crate::keys::next_audit_seq(self.backend().as_ref(), id)
    }

    /// An alarm's audit trail, oldest first.
    pub fn alarm_audit(
        &self,
        id: AlarmId,
    ) -> Result<Vec<vaka_core::alarm::AuditRecord>, StoreError> {
        crate::keys::load_audit(self.backend().as_ref(), id)
    }

    /// See [`alarms_page`].
    pub fn alarms_page(
        &self,
        filter: &AlarmFilter,
        after: Option<AlarmId>,
        limit: usize,
    ) -> Result<AlarmPage, StoreError> {
        alarms_page(self.backend().as_ref(), filter, after, limit)
    }

    pub fn open_alarms_of(&self, device: &DeviceKey) -> Result<Vec<Alarm>, StoreError> {
        open_alarms_of(self.backend().as_ref(), device)
    }

    pub fn last_heard(&self, device: &DeviceKey) -> Result<Option<UnixMillis>, StoreError> {
        last_heard(self.backend().as_ref(), device)
    }

    pub fn latest_position(
        &self,
        device: &DeviceKey,
    ) -> Result<Option<crate::StoredPosition>, StoreError> {
        crate::latest_position(self.backend().as_ref(), device)
    }

    /// Positions with fix time in `[from_ms, to_ms)`, oldest first, at most `limit`.
    pub fn positions(
        &self,
        device: &DeviceKey,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<crate::StoredPosition>, StoreError> {
        crate::position_history(self.backend().as_ref(), device, from_ms, to_ms, limit)
    }

    /// See [`crate::directory::read_admin_audit`].
    pub fn admin_audit(
        &self,
        tenant: Option<&str>,
        from_ms: i64,
        limit: usize,
    ) -> Result<Vec<crate::directory::AdminAuditEntry>, StoreError> {
        crate::directory::read_admin_audit(self.backend().as_ref(), tenant, from_ms, limit)
    }

    /// The stored directory records and revision (see [`crate::directory::load_directory`]).
    pub fn load_directory(&self) -> Result<(vaka_core::directory::Records, u64), StoreError> {
        crate::directory::load_directory(self.backend().as_ref())
    }

    /// The last directory-log batch this node applied, in a cluster (0: none).
    pub fn directory_log_sequence(&self) -> Result<u64, StoreError> {
        crate::directory::load_log_sequence(self.backend().as_ref())
    }

    /// The SHA-256 of that batch, in a cluster (`None`: none applied).
    pub fn directory_log_digest(&self) -> Result<Option<[u8; 32]>, StoreError> {
        crate::directory::load_log_digest(self.backend().as_ref())
    }

    /// Every admin API token record (hashed secrets).
    pub fn tokens(&self) -> Result<Vec<vaka_core::access::TokenRecord>, StoreError> {
        crate::directory::load_tokens(self.backend().as_ref())
    }
}
