//! Who may see and do what through the admin API (invariant 7). Every admin call asks
//! [`Principal::may`]; nothing else decides, so an endpoint cannot forget a rule of its own.
//!
//! - A platform operator sees and changes everything.
//! - A tenant admin sees and changes its own tenant's devices, fences, chains, policies, alarms
//!   and audit log, and reads the centres its tenant's chains may name; nothing of another tenant.
//! - A centre reads what it serves: the tenants it is configured for, their devices and alarms.
//!
//! Something a principal may not see is answered as not found (its existence does not leak); a
//! thing it may see but not change is forbidden.
use crate::directory::Directory;
use serde::{Deserialize, Serialize};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    PlatformOperator,
    TenantAdmin,
    Centre,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformOperator => "platform-operator",
            Role::TenantAdmin => "tenant-admin",
            Role::Centre => "centre",
        }
    }
}

/// An API token as stored: the secret itself is never kept, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// Public id, safe to log and list (the secret is not derived from it).
    pub id: String,
    /// SHA-256 of the secret, lowercase hex.
    pub hash: String,
    pub role: Role,
    /// For a tenant admin: its tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// For a centre: the centre.
    #[serde(default)]
    pub centre: Option<String>,
    #[serde(default)]
    pub label: String,
    pub created_ms: i64,
    /// Id of the token that created this one ("bootstrap" for the configured one).
    #[serde(default)]
    pub created_by: String,
}

/// What a call touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource<'a> {
    /// Platform-wide things: the list of tenants, creating tenants, centres, tokens of other roles.
    Platform,
    /// Anything of one tenant: the tenant record, its devices, fences, chains, policies, alarms,
    /// positions, admin audit.
    Tenant(&'a str),
    /// One centre's record.
    Centre(&'a str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
}

/// The answer to a call that is not allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The principal may not know the thing exists: answer 404.
    Hidden,
    /// It may see it but not do this: answer 403.
    Forbidden,
}

/// The holder of a token, as the admin API sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub token: String,
    pub role: Role,
    pub tenant: Option<String>,
    pub centre: Option<String>,
}

impl From<&TokenRecord> for Principal {
    fn from(t: &TokenRecord) -> Self {
        Principal {
            token: t.id.clone(),
            role: t.role,
            tenant: t.tenant.clone(),
            centre: t.centre.clone(),
        }
    }
}

impl Principal {
    /// Whether this principal may do `action` on `resource`, given the directory now.
    pub fn may(
        &self,
        action: Action,
        resource: Resource<'_>,
        dir: &Directory,
    ) -> Result<(), Denied> {
        let sees = self.sees(resource, dir);
        let writes = match self.role {
            Role::PlatformOperator => true,
            Role::TenantAdmin => {
                matches!(resource, Resource::Tenant(t) if self.tenant.as_deref() == Some(t))
            }
            Role::Centre => false,
        };
        match (action, sees, writes) {
            (_, false, _) => Err(Denied::Hidden),
            (Action::Read, true, _) | (Action::Write, true, true) => Ok(()),
            (Action::Write, true, false) => Err(Denied::Forbidden),
        }
    }

    fn sees(&self, resource: Resource<'_>, dir: &Directory) -> bool {
        match (self.role, resource) {
            (Role::PlatformOperator, _) => true,
            // Platform lists are filtered per item (see `sees_tenant`), not refused whole.
            (_, Resource::Platform) => true,
            (Role::TenantAdmin, Resource::Tenant(t)) => self.tenant.as_deref() == Some(t),
            (Role::TenantAdmin, Resource::Centre(c)) => self.tenant.as_deref().is_some_and(|t| {
                dir.records
                    .centres
                    .get(c)
                    .is_some_and(|r| r.tenants.iter().any(|x| x == t))
            }),
            (Role::Centre, Resource::Tenant(t)) => self.serves(t, dir),
            (Role::Centre, Resource::Centre(c)) => self.centre.as_deref() == Some(c),
        }
    }

    fn serves(&self, tenant: &str, dir: &Directory) -> bool {
        self.centre
            .as_deref()
            .and_then(|c| dir.records.centres.get(c))
            .is_some_and(|r| r.tenants.iter().any(|t| t == tenant))
    }

    /// Whether a platform-wide list may show this tenant's items.
    /// Whether this principal may act on `alarm` as a centre (receipt, accept, close through the
    /// admin API: how a webhook receiver answers): a centre token of a receiver the engine runs,
    /// serving the alarm's tenant, named in the alarm's chain or holding it. Another tenant's
    /// alarm is hidden; anyone else is forbidden. The centre it acts as.
    pub fn may_act_on(
        &self,
        alarm: &crate::Alarm,
        dir: &Directory,
    ) -> Result<crate::CentreId, Denied> {
        if !self.sees(Resource::Tenant(&alarm.device.tenant.0), dir) {
            return Err(Denied::Hidden);
        }
        let centre = match (self.role, self.centre.as_deref()) {
            (Role::Centre, Some(c)) => crate::CentreId::new(c),
            _ => return Err(Denied::Forbidden),
        };
        let runs_receiver = dir
            .records
            .centres
            .get(centre.as_str())
            .is_some_and(|r| r.receiver.is_some());
        let in_chain = dir.alarm_chain(alarm).contains(&centre) || alarm.holder() == Some(&centre);
        match runs_receiver && in_chain {
            true => Ok(centre),
            false => Err(Denied::Forbidden),
        }
    }

    pub fn sees_tenant(&self, tenant: &str, dir: &Directory) -> bool {
        self.sees(Resource::Tenant(tenant), dir)
    }

    /// Whether this principal may see (list, revoke) an API token: an operator every token, a
    /// tenant admin its own tenant's, a centre none.
    pub fn may_see_token(&self, t: &TokenRecord) -> bool {
        match self.role {
            Role::PlatformOperator => true,
            Role::TenantAdmin => self.tenant.is_some() && t.tenant == self.tenant,
            Role::Centre => false,
        }
    }

    /// Whether this principal may make a token of `role` for `tenant`: an operator any; a tenant
    /// admin only tenant-admin tokens of its own tenant; a centre none.
    pub fn may_create_token(&self, role: Role, tenant: Option<&str>) -> Result<(), Denied> {
        match self.role {
            Role::PlatformOperator => Ok(()),
            Role::TenantAdmin
                if role == Role::TenantAdmin
                    && tenant.is_some()
                    && tenant == self.tenant.as_deref() =>
            {
                Ok(())
            }
            _ => Err(Denied::Forbidden),
        }
    }

    /// Whether a platform-wide write (creating a tenant, changing a centre, making a token of
    /// another role) is allowed: only to a platform operator.
    pub fn is_platform_operator(&self) -> bool {
        self.role == Role::PlatformOperator
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{CentreRecord, Change, TenantRecord};

    fn dir() -> Directory {
        let mut d = Directory::default();
        for t in ["a", "b"] {
            d.apply(
                Change::PutTenant(TenantRecord {
                    id: t.into(),
                    ..Default::default()
                }),
                1,
            )
            .unwrap();
        }
        d.apply(
            Change::PutCentre(CentreRecord {
                id: "ca".into(),
                tenants: vec!["a".into()],
                ..Default::default()
            }),
            2,
        )
        .unwrap();
        d
    }

    fn who(role: Role, tenant: Option<&str>, centre: Option<&str>) -> Principal {
        Principal {
            token: "t".into(),
            role,
            tenant: tenant.map(str::to_owned),
            centre: centre.map(str::to_owned),
        }
    }

    #[test]
    fn a_tenant_admin_sees_and_changes_only_its_tenant() {
        let d = dir();
        let a = who(Role::TenantAdmin, Some("a"), None);
        assert_eq!(a.may(Action::Write, Resource::Tenant("a"), &d), Ok(()));
        assert_eq!(
            a.may(Action::Read, Resource::Tenant("b"), &d),
            Err(Denied::Hidden)
        );
        assert_eq!(
            a.may(Action::Write, Resource::Tenant("b"), &d),
            Err(Denied::Hidden)
        );
        assert_eq!(a.may(Action::Read, Resource::Centre("ca"), &d), Ok(()));
        assert_eq!(
            a.may(Action::Write, Resource::Centre("ca"), &d),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            a.may(Action::Write, Resource::Platform, &d),
            Err(Denied::Forbidden)
        );
        assert!(!a.sees_tenant("b", &d));
    }

    #[test]
    fn a_centre_reads_what_it_serves_and_changes_nothing() {
        let d = dir();
        let c = who(Role::Centre, None, Some("ca"));
        assert_eq!(c.may(Action::Read, Resource::Tenant("a"), &d), Ok(()));
        assert_eq!(
            c.may(Action::Write, Resource::Tenant("a"), &d),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            c.may(Action::Read, Resource::Tenant("b"), &d),
            Err(Denied::Hidden)
        );
        assert_eq!(c.may(Action::Read, Resource::Centre("ca"), &d), Ok(()));
    }

    #[test]
    fn a_platform_operator_may_do_everything() {
        let d = dir();
        let p = who(Role::PlatformOperator, None, None);
        for r in [
            Resource::Platform,
            Resource::Tenant("b"),
            Resource::Centre("zz"),
        ] {
            assert_eq!(p.may(Action::Write, r, &d), Ok(()));
        }
    }

    #[test]
    fn tokens_are_managed_within_a_tenant() {
        let record = |role, tenant: Option<&str>| TokenRecord {
            id: "x".into(),
            hash: String::new(),
            role,
            tenant: tenant.map(str::to_owned),
            centre: None,
            label: String::new(),
            created_ms: 0,
            created_by: String::new(),
        };
        let a = who(Role::TenantAdmin, Some("a"), None);
        assert!(a.may_see_token(&record(Role::TenantAdmin, Some("a"))));
        assert!(!a.may_see_token(&record(Role::TenantAdmin, Some("b"))));
        assert!(!a.may_see_token(&record(Role::PlatformOperator, None)));
        assert_eq!(a.may_create_token(Role::TenantAdmin, Some("a")), Ok(()));
        assert_eq!(
            a.may_create_token(Role::TenantAdmin, Some("b")),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            a.may_create_token(Role::PlatformOperator, None),
            Err(Denied::Forbidden)
        );
        let c = who(Role::Centre, None, Some("ca"));
        assert!(!c.may_see_token(&record(Role::Centre, None)));
        assert_eq!(
            c.may_create_token(Role::Centre, None),
            Err(Denied::Forbidden)
        );
    }

    #[test]
    fn a_tenant_admin_without_a_tenant_sees_nothing() {
        let d = dir();
        let x = who(Role::TenantAdmin, None, None);
        assert_eq!(
            x.may(Action::Read, Resource::Tenant("a"), &d),
            Err(Denied::Hidden)
        );
    }
}
