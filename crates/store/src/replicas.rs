//! A cluster node's replicas of the alarms other nodes hold (issue 23; ARCHITECTURE.md, "Alarm
//! replicas"): the node that opened or changed an alarm appends its record to the input log with
//! the batch that changed it, and every other node's follower keeps the latest record here, apart
//! from its own alarms (CF `alarms`, whose largest id starts recovery's next id, and whose open
//! index the shards recover). So a node's open alarms are seen on every node, and the listings
//! show the whole cluster's alarms, each once, with the node that holds it.
//!
//! | CF         | key                 | value                                   |
//! |------------|---------------------|-----------------------------------------|
//! | `replicas` | `a` alarm id (u64)  | [`Replica`]: holder, version, the alarm |
//! | `replicas` | `o` alarm id (u64)  | empty: index of the open ones           |
use crate::backend::{Cf, StoreError, WriteSet};
use crate::erasure::{collect, Row};
use crate::group::Store;
use crate::keys::{decode, id_key};
use crate::query::{AlarmFilter, AlarmPage, Listing, StateFilter};
use serde::{Deserialize, Serialize};
use vaka_core::{Alarm, AlarmId, DeviceKey};

const RECORD: &[u8] = b"a";
const OPEN: &[u8] = b"o";

/// Another node's alarm as its last record in the input log said it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// The node that holds it (offers it, runs its deadlines).
    pub holder: String,
    /// The id range that node gave its ids from when it appended the record: tells its run
    /// from an earlier one under the same name (a wiped data dir takes a new range).
    pub holder_range: u64,
    /// How many audit records the alarm had after this change: grows with every change, so
    /// two records of one alarm appended by batches in flight together are told apart.
    pub version: u32,
    pub alarm: Alarm,
}

impl Replica {
    /// Whether this record, read after `held`, replaces it: a later change (by version, then
    /// holder range, as [`Replica::later_than`] decides), or the same one read again.
    pub fn supersedes(&self, held: &Replica) -> bool {
        !held.later_than(self.version, self.holder_range)
    }
}

impl Replica {
    /// Whether this record is later than a node's own of the same alarm, at `version` with
    /// ids of `range`: by version, then by range, so of two nodes that changed it at once
    /// exactly one keeps it, and every node decides alike.
    pub fn later_than(&self, version: u32, range: u64) -> bool {
        (self.version, self.holder_range) > (version, range)
    }
}

/// An alarm as a listing shows it: held by this node (`holder` none) or a replica of another
/// node's.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    pub alarm: Alarm,
    pub holder: Option<String>,
}

/// One page of a listing over this node's alarms and its replicas, by id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListedPage {
    pub alarms: Vec<Listed>,
    pub next_after: Option<AlarmId>,
}

fn key(prefix: &[u8], id: AlarmId) -> Vec<u8> {
    [prefix, &id_key(id.0)].concat()
}

const LISTING: Listing<'static> = Listing {
    records: (Cf::Replicas, RECORD),
    open: (Cf::Replicas, OPEN),
};

impl WriteSet {
    /// Keeps `replica`, and the open index in step with its state.
    pub fn put_replica(&mut self, replica: &Replica) {
        let id = replica.alarm.id;
        self.put(Cf::Replicas, key(RECORD, id), replica);
        match replica.alarm.is_open() {
            true => self.put_raw(Cf::Replicas, key(OPEN, id), Vec::new()),
            false => self.delete(Cf::Replicas, key(OPEN, id)),
        }
    }
}

impl WriteSet {
    /// Forgets the replica of alarm `id`: this node holds a later record of it than the
    /// replica's (taken over, or changed here last).
    pub fn delete_replica(&mut self, id: AlarmId) {
        self.delete(Cf::Replicas, key(RECORD, id));
        self.delete(Cf::Replicas, key(OPEN, id));
    }
}

/// Merges a page of this node's alarms with a page of replicas into one page of at most
/// `limit`, by id. Where either stopped early, nothing past the earlier stop is kept, so the
/// next page (after `next_after`) misses and repeats nothing.
pub(crate) fn merge(
    own: AlarmPage,
    others: (Vec<Replica>, Option<AlarmId>),
    limit: usize,
) -> ListedPage {
    let stop = [own.next_after, others.1].into_iter().flatten().min();
    let mut alarms: Vec<Listed> = own
        .alarms
        .into_iter()
        .map(|alarm| Listed {
            alarm,
            holder: None,
        })
        .chain(others.0.into_iter().map(|r| Listed {
            alarm: r.alarm,
            holder: Some(r.holder),
        }))
        .filter(|l| stop.is_none_or(|s| l.alarm.id <= s))
        .collect();
    // Stable: an id both here and replicated (taken over) shows as this node's.
    alarms.sort_by_key(|l| l.alarm.id);
    alarms.dedup_by_key(|l| l.alarm.id);
    if alarms.len() > limit {
        alarms.truncate(limit);
        let last = alarms.last().map(|l| l.alarm.id);
        return ListedPage {
            alarms,
            next_after: last,
        };
    }
    ListedPage {
        alarms,
        next_after: stop,
    }
}

impl Store {
    /// The replica of another node's alarm `id`, if this node keeps one.
    pub fn replica(&self, id: AlarmId) -> Result<Option<Replica>, StoreError> {
        let k = key(RECORD, id);
        match self.backend().get(Cf::Replicas, &k)? {
            Some(v) => Ok(Some(decode(Cf::Replicas, &k, &v)?)),
            None => Ok(None),
        }
    }

    /// Replicas matching `filter` with id above `after`, at most `limit`, by id (see
    /// [`Store::alarms_page`]).
    pub fn replicas_page(
        &self,
        filter: &AlarmFilter,
        after: Option<AlarmId>,
        limit: usize,
    ) -> Result<(Vec<Replica>, Option<AlarmId>), StoreError> {
        LISTING.page(
            self.backend().as_ref(),
            filter,
            after,
            limit,
            |r: &Replica| &r.alarm,
        )
    }

    /// The alarms matching `filter` that this node holds and those it keeps replicas of, each
    /// once, by id: the whole cluster's (a single node has no replicas).
    pub fn listed_page(
        &self,
        filter: &AlarmFilter,
        after: Option<AlarmId>,
        limit: usize,
    ) -> Result<ListedPage, StoreError> {
        let own = self.alarms_page(filter, after, limit)?;
        let (replicas, stop) = self.replicas_page(filter, after, limit)?;
        // One this node holds or held too (taken over, or a stale record): its own shows.
        let mut others = Vec::with_capacity(replicas.len());
        for r in replicas {
            if self.alarm(r.alarm.id)?.is_none() {
                others.push(r);
            }
        }
        Ok(merge(own, (others, stop), limit))
    }

    /// Alarm `id`, held here or, failing that, replicated from its holder.
    pub fn listed_alarm(&self, id: AlarmId) -> Result<Option<Listed>, StoreError> {
        if let Some(alarm) = self.alarm(id)? {
            return Ok(Some(Listed {
                alarm,
                holder: None,
            }));
        }
        Ok(self.replica(id)?.map(|r| Listed {
            alarm: r.alarm,
            holder: Some(r.holder),
        }))
    }

    /// The device's open alarms, held here or by other nodes (a person may be waiting on
    /// either), by id.
    pub fn open_listed_of(&self, device: &DeviceKey) -> Result<Vec<Listed>, StoreError> {
        let filter = AlarmFilter {
            tenant: Some(device.tenant.0.clone()),
            device: Some(device.device.0.clone()),
            state: StateFilter::Open,
            ..AlarmFilter::default()
        };
        Ok(self.listed_page(&filter, None, usize::MAX)?.alarms)
    }
}

/// Every replica of `device`'s alarms, rewritten by `change` (`None`: left as it is), with its
/// key: for erasure and moves.
pub(crate) fn rewrite_of(
    backend: &dyn crate::Backend,
    device: &DeviceKey,
    change: &mut dyn FnMut(&Replica) -> Option<Replica>,
) -> Result<Vec<Row>, StoreError> {
    collect(backend, Cf::Replicas, RECORD, &mut |k, v| {
        let r: Replica = decode(Cf::Replicas, k, v)?;
        Ok((&r.alarm.device == device)
            .then(|| change(&r))
            .flatten()
            .map(|new| postcard::to_allocvec(&new).expect("a replica encodes")))
    })
}

/// The keys of replicas of alarms that ended before their device's `cutoff` (`None`: keep),
/// for retention; the open index holds none of them.
pub(crate) fn ended_before(
    backend: &dyn crate::Backend,
    cutoff: &mut dyn FnMut(&DeviceKey) -> Option<vaka_core::UnixMillis>,
) -> Result<Vec<Vec<u8>>, StoreError> {
    Ok(collect(backend, Cf::Replicas, RECORD, &mut |k, v| {
        let a = decode::<Replica>(Cf::Replicas, k, v)?.alarm;
        let end = a.stages.closed_ms.unwrap_or(a.updated_ms);
        Ok((!a.is_open() && cutoff(&a.device).is_some_and(|before| end < before)).then(Vec::new))
    })?
    .into_iter()
    .map(|(k, _)| k)
    .collect())
}
