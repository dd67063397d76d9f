//! What one authenticated centre may see and do (invariant 7). Every call and every notice of the
//! centre API goes through a [`Scope`]; nothing else in this crate decides visibility.
//!
//! - A centre sees the alarms of the tenants it serves, and nothing of any other tenant: an alarm
//!   outside its tenants is reported as not found, never as forbidden, so its existence leaks not.
//! - It may act (receipt, accept, close, refuse) only on alarms of its tenants whose escalation
//!   chain names it; the router then checks that it holds the alarm (or that it is unhandled).
//! - The directory is read live: a centre's tenants or a device's chain changed through the admin
//!   API count from the next call or notice.
use arc_swap::Guard;
use std::sync::Arc;
use tonic::Status;
use vaka_core::alarm::AlarmState;
use vaka_core::directory::Directory;
use vaka_core::{Alarm, AlarmId, CentreId};
use vaka_router::LiveDirectory;
use vaka_store::Store;

#[derive(Clone, Debug)]
pub struct Scope {
    centre: CentreId,
    dir: LiveDirectory,
}

impl Scope {
    /// The scope of an authenticated centre; a centre unknown to the directory has none.
    pub fn new(dir: impl Into<LiveDirectory>, centre: CentreId) -> Result<Scope, Status> {
        let dir = dir.into();
        if !dir.load().centres.contains_key(&centre) {
            return Err(Status::permission_denied(format!(
                "centre {centre} is not configured"
            )));
        }
        Ok(Scope { centre, dir })
    }

    pub fn centre(&self) -> &CentreId {
        &self.centre
    }

    /// The directory now (do not keep it across an await).
    pub fn directory(&self) -> Guard<Arc<Directory>> {
        self.dir.load()
    }

    /// The tenants served, sorted (for the welcome message).
    pub fn tenants(&self) -> Vec<String> {
        let dir = self.dir.load();
        let mut t: Vec<String> = dir
            .centres
            .get(&self.centre)
            .map(|c| c.tenants.iter().map(|t| t.to_string()).collect())
            .unwrap_or_default();
        t.sort();
        t
    }

    pub fn may_see(&self, alarm: &Alarm) -> bool {
        self.dir
            .load()
            .centres
            .get(&self.centre)
            .is_some_and(|c| c.tenants.contains(&alarm.device.tenant))
    }

    fn in_chain(&self, alarm: &Alarm) -> bool {
        self.dir.load().alarm_chain(alarm).contains(&self.centre)
    }

    /// Whether the alarm is this centre's business now: it holds it, or it is waiting (pending or
    /// unhandled) on a chain that names this centre.
    pub fn is_mine(&self, alarm: &Alarm) -> bool {
        self.may_see(alarm)
            && (alarm.holder() == Some(&self.centre)
                || (matches!(alarm.state, AlarmState::Pending | AlarmState::Unhandled)
                    && self.in_chain(alarm)))
    }

    /// Reads an alarm this centre may see; NOT_FOUND for a missing one or another tenant's.
    pub fn load(&self, store: &Store, id: AlarmId) -> Result<Alarm, Status> {
        let alarm = store
            .alarm(id)
            .map_err(|e| Status::unavailable(format!("reading alarm {id}: {e}")))?;
        match alarm {
            Some(a) if self.may_see(&a) => Ok(a),
            _ => Err(Status::not_found(format!("alarm {id} not found"))),
        }
    }

    /// Reads an alarm this centre may act on.
    pub fn load_for_action(&self, store: &Store, id: AlarmId) -> Result<Alarm, Status> {
        let alarm = self.load(store, id)?;
        if self.in_chain(&alarm) || alarm.holder() == Some(&self.centre) {
            Ok(alarm)
        } else {
            Err(Status::permission_denied(format!(
                "alarm {id} was not offered to centre {}",
                self.centre
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_core::alarm::AlarmKind;
    use vaka_core::directory::{Centre, Tenant};
    use vaka_core::DeviceKey;

    fn dir() -> Directory {
        let mut d = Directory::default();
        for (t, chain) in [("a", "ca"), ("b", "cb"), ("c", "cb")] {
            d.insert_tenant(Tenant::new(t, &[chain]));
        }
        d.insert_centre(Centre::new("ca", &["a", "c"]));
        d.insert_centre(Centre::new("cb", &["b", "c"]));
        d
    }

    fn alarm(tenant: &str, state: AlarmState) -> Alarm {
        Alarm {
            id: AlarmId(1),
            device: DeviceKey::new(tenant, "d"),
            reference: "r".into(),
            kind: AlarmKind::Help,
            code: "0010".into(),
            priority: 1,
            text: None,
            callback: vec![],
            state,
            step: 0,
            deadline: None,
            repeats: 0,
            created_ms: 0,
            updated_ms: 0,
            stages: Default::default(),
            test: false,
        }
    }

    #[test]
    fn a_centre_sees_only_its_tenants() {
        let ca = Scope::new(dir(), CentreId::new("ca")).unwrap();
        assert!(ca.may_see(&alarm("a", AlarmState::Pending)));
        assert!(ca.may_see(&alarm("c", AlarmState::Pending)));
        assert!(!ca.may_see(&alarm("b", AlarmState::Pending)));
        assert_eq!(ca.tenants(), ["a", "c"]);
        assert_eq!(
            Scope::new(dir(), CentreId::new("ghost"))
                .unwrap_err()
                .code(),
            tonic::Code::PermissionDenied
        );
    }

    #[test]
    fn mine_means_held_or_waiting_on_my_chain() {
        let ca = Scope::new(dir(), CentreId::new("ca")).unwrap();
        let held = AlarmState::Offered {
            centre: CentreId::new("ca"),
        };
        assert!(ca.is_mine(&alarm("a", held)));
        assert!(ca.is_mine(&alarm("a", AlarmState::Unhandled)));
        // Tenant c is served by ca, but its chain is cb's alone.
        assert!(!ca.is_mine(&alarm("c", AlarmState::Unhandled)));
        assert!(!ca.is_mine(&alarm("b", AlarmState::Unhandled)));
    }
}
