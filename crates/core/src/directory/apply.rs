//! Changing the directory: a [`Change`] is checked against the records (every problem named by
//! its field), written into them, and the resolved entries it touches are rebuilt. Pure: the
//! caller makes it durable and publishes the new directory.
use super::records::{
    check_fences, valid_device_type, valid_id, Change, DeviceRecord, Problems, CHAIN_KINDS,
};
use super::{Centre, Defaults, Device, Directory, Records, Tenant, CANARY_MIN_SECS};
use crate::alarm::Deadlines;
use crate::ids::{CentreId, DeviceId, DeviceKey, TenantId};
use crate::rules::{check_rules, Rule};
use crate::supervision::Category;

/// Why a change was not applied. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// Fields of the record are wrong: `(field, reason)` for each.
    #[error("invalid: {}", describe(.0))]
    Invalid(Problems),
    #[error("{0} not found")]
    NotFound(String),
    /// The change contradicts other records (e.g. deleting a centre that a chain names).
    #[error("conflict: {0}")]
    Conflict(String),
}

fn describe(p: &Problems) -> String {
    p.iter()
        .map(|(f, r)| format!("{f}: {r}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn secs(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

impl Directory {
    /// The directory resolved from `records` against `defaults`. Records are taken as they are
    /// (they were checked when written); a device whose tenant is missing is still resolved.
    pub fn from_records(defaults: Defaults, records: Records, revision: u64) -> Directory {
        let mut dir = Directory {
            revision,
            defaults,
            ..Directory::default()
        };
        dir.gps.default_filter = dir.defaults.gps_filter.clone();
        dir.records = records;
        for c in dir.records.centres.values() {
            let centre = Centre::from_record(c);
            dir.centres.insert(centre.id.clone(), centre);
        }
        let tenants: Vec<String> = dir.records.tenants.keys().cloned().collect();
        for t in &tenants {
            dir.resolve_tenant(t);
        }
        let devices: Vec<(String, String)> = dir.records.devices.keys().cloned().collect();
        for k in &devices {
            dir.resolve_device(k);
        }
        dir
    }

    /// Checks `change` and applies it, stamping the written record with `revision`.
    pub fn apply(&mut self, change: Change, revision: u64) -> Result<(), DirectoryError> {
        self.check(&change)?;
        match change {
            Change::PutTenant(mut t) => {
                t.revision = revision;
                let id = t.id.clone();
                self.records.tenants.insert(id.clone(), t);
                self.resolve_tenant(&id);
                for k in self.devices_of(&id) {
                    self.resolve_device(&k);
                }
            }
            Change::DeleteTenant(id) => {
                self.records.tenants.remove(&id);
                let tid = TenantId::new(&id);
                self.tenants.remove(&tid);
                self.gps.tenants.remove(&tid);
            }
            Change::PutCentre(mut c) => {
                c.revision = revision;
                let centre = Centre::from_record(&c);
                self.records.centres.insert(c.id.clone(), c);
                self.centres.insert(centre.id.clone(), centre);
            }
            Change::DeleteCentre(id) => {
                self.records.centres.remove(&id);
                self.centres.remove(&CentreId::new(&id));
            }
            Change::PutDevice(mut d) => {
                d.revision = revision;
                let k = (d.tenant.clone(), d.id.clone());
                self.unresolve_device(&k);
                self.records.devices.insert(k.clone(), *d);
                self.resolve_device(&k);
            }
            Change::DeleteDevice { tenant, id } => {
                let k = (tenant, id);
                self.unresolve_device(&k);
                self.records.devices.remove(&k);
            }
            Change::PutPolicy(mut p) => {
                p.revision = revision;
                let tenant = p.tenant.clone();
                self.records
                    .policies
                    .insert((p.tenant.clone(), p.id.clone()), p);
                for k in self.devices_of(&tenant) {
                    self.resolve_device(&k);
                }
            }
            Change::DeletePolicy { tenant, id } => {
                self.records.policies.remove(&(tenant, id));
            }
        }
        self.revision = self.revision.max(revision);
        Ok(())
    }

    fn devices_of(&self, tenant: &str) -> Vec<(String, String)> {
        self.records
            .devices
            .range((tenant.to_owned(), String::new())..)
            .take_while(|((t, _), _)| t == tenant)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn resolve_tenant(&mut self, id: &str) {
        let Some(t) = self.records.tenants.get(id) else {
            return;
        };
        let d = self.defaults.deadlines;
        let tenant = Tenant {
            id: TenantId::new(&t.id),
            name: t.name.clone(),
            deadlines: Deadlines {
                receipt_ms: t.receipt_deadline_secs.map_or(d.receipt_ms, secs),
                accept_ms: t.accept_deadline_secs.map_or(d.accept_ms, secs),
            },
            chain: t.centres.iter().map(CentreId::new).collect(),
            retention_days: t.retention_days.unwrap_or(self.defaults.retention_days),
            retention: t
                .retention
                .raised_to(self.defaults.alarm_retention_min_days),
            // Checked when written; a zone no longer known falls back to the platform's.
            time_zone: t
                .time_zone
                .as_deref()
                .and_then(crate::rules::time::zone)
                .unwrap_or_else(|| self.defaults.time_zone.clone()),
            test_until_ms: t.test_until_ms,
            canary: t.canary.clone(),
            admission: self.defaults.admission.with(t.admission.as_deref()),
        };
        let filter = self.defaults.gps_filter.with_override(&t.gps_filter);
        self.gps.tenants.insert(tenant.id.clone(), filter);
        self.tenants.insert(tenant.id.clone(), tenant);
    }

    fn unresolve_device(&mut self, k: &(String, String)) {
        let key = DeviceKey::new(&k.0, &k.1);
        if let Some(old) = self.devices.remove(&key) {
            if old.sip.is_some() && self.sip_users.get(&k.1) == Some(&key) {
                self.sip_users.remove(&k.1);
            }
            if let Some(d) = &old.dc09 {
                if self.dc09_accounts.get(&d.account) == Some(&key) {
                    self.dc09_accounts.remove(&d.account);
                }
            }
        }
        self.gps.devices.remove(&key);
    }

    fn resolve_device(&mut self, k: &(String, String)) {
        let Some(d) = self.records.devices.get(k) else {
            return;
        };
        let key = DeviceKey::new(&d.tenant, &d.id);
        let deadlines = self.device_deadlines(d);
        // Records were checked when written: a category that does not parse is left out.
        let category = match (&d.supervision, d.heartbeat_secs) {
            (Some(c), _) => c.parse().ok(),
            (None, Some(_)) => None,
            (None, None) => self
                .records
                .tenants
                .get(&d.tenant)
                .and_then(|t| t.supervision_by_type.get(&d.device_type))
                .and_then(|c| c.parse().ok()),
        };
        // Records were checked when written: a rule that does not check is left out.
        let rule_records = if d.rules.is_empty() {
            self.records
                .tenants
                .get(&d.tenant)
                .and_then(|t| t.rules_by_type.get(&d.device_type))
                .map_or(&[][..], Vec::as_slice)
        } else {
            &d.rules[..]
        };
        let rules = rule_records
            .iter()
            .filter_map(|r| Rule::from_record(r, "rules").ok())
            .collect();
        let chains_by_kind = d
            .chains_by_kind
            .iter()
            .map(|(k, c)| (k.clone(), c.iter().map(CentreId::new).collect()))
            .collect();
        let device = Device {
            key: key.clone(),
            device_type: d.device_type.clone(),
            chain: d.centres.iter().map(CentreId::new).collect(),
            deadlines,
            heartbeat_secs: d.heartbeat_secs,
            gateway_for: d.gateway_for.iter().map(DeviceId::new).collect(),
            enabled: d.enabled,
            sip: d.sip.clone(),
            dc09: d.dc09.clone(),
            category,
            rules,
            chains_by_kind,
            test_until_ms: d.test_until_ms,
        };
        if d.gps_filter.is_some() || !d.fences.is_empty() {
            // Records were checked when written: a fence that does not build is left out.
            let fences = d.fences.iter().filter_map(|f| f.build().ok()).collect();
            let filter = d.gps_filter.clone().unwrap_or_default();
            self.gps.set_device(key.clone(), &filter, fences);
        } else {
            self.gps.devices.remove(&key);
        }
        self.insert_device(device);
    }

    /// A device's own deadlines: overrides laid over its policy, over its tenant's; `None` when it
    /// has neither (it follows its tenant's as they change).
    fn device_deadlines(&self, d: &DeviceRecord) -> Option<Deadlines> {
        let policy = d
            .deadline_policy
            .as_ref()
            .and_then(|p| self.records.policies.get(&(d.tenant.clone(), p.clone())));
        if policy.is_none() && d.receipt_deadline_secs.is_none() && d.accept_deadline_secs.is_none()
        {
            return None;
        }
        let base = self
            .tenants
            .get(&TenantId::new(&d.tenant))
            .map_or(self.defaults.deadlines, |t| t.deadlines);
        let base = policy.map_or(base, |p| Deadlines {
            receipt_ms: secs(p.receipt_deadline_secs),
            accept_ms: secs(p.accept_deadline_secs),
        });
        Some(Deadlines {
            receipt_ms: d.receipt_deadline_secs.map_or(base.receipt_ms, secs),
            accept_ms: d.accept_deadline_secs.map_or(base.accept_ms, secs),
        })
    }

    /// Whether `change` may be applied to the records as they are.
    fn check(&self, change: &Change) -> Result<(), DirectoryError> {
        let r = &self.records;
        let mut p: Problems = Vec::new();
        let id = |p: &mut Problems, field: &str, v: &str| {
            if !valid_id(v) {
                p.push((field.into(), "must be 1-64 of A-Z a-z 0-9 - _ . : @".into()));
            }
        };
        let chain = |p: &mut Problems, centres: &[String]| {
            for (i, c) in centres.iter().enumerate() {
                if !r.centres.contains_key(c) {
                    p.push((format!("centres[{i}]"), format!("unknown centre \"{c}\"")));
                }
            }
        };
        let positive = |p: &mut Problems, field: &str, v: Option<u64>| {
            if v == Some(0) {
                p.push((field.into(), "must be at least 1".into()));
            }
        };
        match change {
            Change::PutTenant(t) => {
                id(&mut p, "id", &t.id);
                chain(&mut p, &t.centres);
                if let Some(c) = &t.canary {
                    // The engine sends as it over SCAIP, whose controller id (cid) is digits.
                    let cid = (1..=32).contains(&c.device.len())
                        && c.device.bytes().all(|b| b.is_ascii_digit());
                    if !cid {
                        p.push((
                            "canary.device".into(),
                            "must be a SCAIP controller id: 1-32 digits".into(),
                        ));
                    }
                    if c.every_secs < CANARY_MIN_SECS {
                        p.push((
                            "canary.every_secs".into(),
                            format!("must be at least {CANARY_MIN_SECS}"),
                        ));
                    }
                }
                positive(&mut p, "receipt_deadline_secs", t.receipt_deadline_secs);
                positive(&mut p, "accept_deadline_secs", t.accept_deadline_secs);
                positive(&mut p, "retention_days", t.retention_days.map(u64::from));
                p.extend(
                    t.retention
                        .problems("retention", self.defaults.alarm_retention_min_days),
                );
                if let Some(z) = &t.time_zone {
                    if crate::rules::time::zone(z).is_none() {
                        p.push((
                            "time_zone".into(),
                            format!(
                                "unknown time zone \"{z}\" (IANA names, e.g. Europe/Stockholm)"
                            ),
                        ));
                    }
                }
                if let Some(a) = &t.admission {
                    p.extend(crate::admission::check_admission(a, "admission"));
                }
                for (ty, rules) in &t.rules_by_type {
                    if !valid_device_type(ty) {
                        p.push((
                            format!("rules_by_type.{ty}"),
                            "the key must be four digits (SCAIP Annex A)".into(),
                        ));
                    }
                    p.extend(check_rules(rules, &format!("rules_by_type.{ty}")));
                }
                for (ty, c) in &t.supervision_by_type {
                    let field = format!("supervision_by_type.{ty}");
                    if !valid_device_type(ty) {
                        p.push((
                            field.clone(),
                            "the key must be four digits (SCAIP Annex A)".into(),
                        ));
                    }
                    if let Err(e) = c.parse::<Category>() {
                        p.push((field, e.to_string()));
                    }
                }
            }
            Change::DeleteTenant(t) => {
                if !r.tenants.contains_key(t) {
                    return Err(DirectoryError::NotFound(format!("tenant \"{t}\"")));
                }
                let n = self.devices_of(t).len();
                if n > 0 {
                    return Err(DirectoryError::Conflict(format!(
                        "tenant \"{t}\" still has {n} devices; delete them first"
                    )));
                }
            }
            Change::PutCentre(c) => {
                id(&mut p, "id", &c.id);
                for (i, t) in c.tenants.iter().enumerate() {
                    id(&mut p, &format!("tenants[{i}]"), t);
                }
                if let Some(r) = &c.receiver {
                    p.extend(r.problems("receiver"));
                }
                positive(&mut p, "receipt_deadline_secs", c.receipt_deadline_secs);
                positive(&mut p, "accept_deadline_secs", c.accept_deadline_secs);
            }
            Change::DeleteCentre(c) => {
                if !r.centres.contains_key(c) {
                    return Err(DirectoryError::NotFound(format!("centre \"{c}\"")));
                }
                let named = |cs: &[String]| cs.iter().any(|x| x == c);
                if let Some(t) = r.tenants.values().find(|t| named(&t.centres)) {
                    return Err(DirectoryError::Conflict(format!(
                        "centre \"{c}\" is in tenant \"{}\"'s chain",
                        t.id
                    )));
                }
                if let Some(d) = r.devices.values().find(|d| named(&d.centres)) {
                    return Err(DirectoryError::Conflict(format!(
                        "centre \"{c}\" is in device \"{}/{}\"'s chain",
                        d.tenant, d.id
                    )));
                }
            }
            Change::PutDevice(d) => {
                if !r.tenants.contains_key(&d.tenant) {
                    p.push(("tenant".into(), format!("unknown tenant \"{}\"", d.tenant)));
                }
                id(&mut p, "id", &d.id);
                if !valid_device_type(&d.device_type) {
                    p.push(("type".into(), "must be four digits (SCAIP Annex A)".into()));
                }
                if let Some(s) = &d.sip {
                    if !s.well_formed() {
                        p.push((
                            "sip".into(),
                            "ha1_md5 must be 32 and ha1_sha256 64 lowercase hex digits".into(),
                        ));
                    }
                    let taken = self.sip_users.get(&d.id).filter(|k| k.tenant.0 != d.tenant);
                    if let Some(other) = taken {
                        p.push((
                            "id".into(),
                            format!(
                                "SIP username \"{}\" is taken by a device of tenant \"{}\"; \
                                 digest usernames are unique",
                                d.id, other.tenant
                            ),
                        ));
                    }
                }
                if let Some(dc09) = &d.dc09 {
                    p.extend(dc09.problems());
                    let key = DeviceKey::new(&d.tenant, &d.id);
                    let taken = self.dc09_accounts.get(&dc09.account).filter(|k| **k != key);
                    if let Some(other) = taken {
                        p.push((
                            "dc09.account".into(),
                            format!(
                                "DC-09 account \"{}\" is taken by device \"{other}\"; accounts \
                                 are unique",
                                dc09.account
                            ),
                        ));
                    }
                }
                if d.heartbeat_secs == Some(0) {
                    p.push(("heartbeat_secs".into(), "must be at least 1".into()));
                }
                if let Some(Err(e)) = d.supervision.as_deref().map(str::parse::<Category>) {
                    p.push(("supervision".into(), e.to_string()));
                }
                p.extend(check_rules(&d.rules, "rules"));
                for (kind, centres) in &d.chains_by_kind {
                    let at = format!("chains_by_kind.{kind}");
                    if !CHAIN_KINDS.contains(&kind.as_str()) {
                        p.push((
                            at.clone(),
                            format!("unknown kind (one of {})", CHAIN_KINDS.join(", ")),
                        ));
                    }
                    for (i, c) in centres.iter().enumerate() {
                        if !r.centres.contains_key(c) {
                            p.push((format!("{at}[{i}]"), format!("unknown centre \"{c}\"")));
                        }
                    }
                }
                chain(&mut p, &d.centres);
                if let Some(policy) = &d.deadline_policy {
                    if !r.policies.contains_key(&(d.tenant.clone(), policy.clone())) {
                        p.push((
                            "deadline_policy".into(),
                            format!("unknown deadline policy \"{policy}\" of this tenant"),
                        ));
                    }
                }
                positive(&mut p, "receipt_deadline_secs", d.receipt_deadline_secs);
                positive(&mut p, "accept_deadline_secs", d.accept_deadline_secs);
                for (i, g) in d.gateway_for.iter().enumerate() {
                    id(&mut p, &format!("gateway_for[{i}]"), g);
                }
                check_fences(&mut p, &d.fences);
            }
            Change::DeleteDevice { tenant, id } => {
                if !r.devices.contains_key(&(tenant.clone(), id.clone())) {
                    return Err(DirectoryError::NotFound(format!(
                        "device \"{tenant}/{id}\""
                    )));
                }
            }
            Change::PutPolicy(pol) => {
                if !r.tenants.contains_key(&pol.tenant) {
                    p.push((
                        "tenant".into(),
                        format!("unknown tenant \"{}\"", pol.tenant),
                    ));
                }
                id(&mut p, "id", &pol.id);
                positive(
                    &mut p,
                    "receipt_deadline_secs",
                    Some(pol.receipt_deadline_secs),
                );
                positive(
                    &mut p,
                    "accept_deadline_secs",
                    Some(pol.accept_deadline_secs),
                );
            }
            Change::DeletePolicy { tenant, id } => {
                if !r.policies.contains_key(&(tenant.clone(), id.clone())) {
                    return Err(DirectoryError::NotFound(format!(
                        "deadline policy \"{tenant}/{id}\""
                    )));
                }
                let users = self
                    .devices_of(tenant)
                    .iter()
                    .filter(|k| r.devices[*k].deadline_policy.as_deref() == Some(id.as_str()))
                    .count();
                if users > 0 {
                    return Err(DirectoryError::Conflict(format!(
                        "deadline policy \"{id}\" is used by {users} devices"
                    )));
                }
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(DirectoryError::Invalid(p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{CentreRecord, DeadlinePolicyRecord, SipCredential, TenantRecord};

    fn base() -> Directory {
        let mut d = Directory::default();
        d.apply(
            Change::PutCentre(CentreRecord {
                id: "c1".into(),
                tenants: vec!["t".into()],
                ..Default::default()
            }),
            1,
        )
        .unwrap();
        d.apply(
            Change::PutTenant(TenantRecord {
                id: "t".into(),
                centres: vec!["c1".into()],
                receipt_deadline_secs: Some(5),
                ..Default::default()
            }),
            2,
        )
        .unwrap();
        d
    }

    /// Found by the `admin_bodies` fuzz target: a long decimal was read back from the
    /// record's own JSON as a neighbouring float (serde_json's fast float parsing), so a
    /// stored record did not equal what was written. Fixed with `float_roundtrip`.
    #[test]
    fn a_record_reads_back_exactly_what_it_prints() {
        let body = r#"{"tenant":"t","id":"d2","type":"0003","fences":[{"id":"home",
            "kind":"circle","lat":59.33,"lon":1847144640737095516158.06,"radius_m":200.0,
            "margin_m":20.0}]}"#;
        let rec: DeviceRecord = serde_json::from_str(body).unwrap();
        let text = serde_json::to_string(&rec).unwrap();
        let back: DeviceRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, rec, "{text}");
    }

    fn cred() -> SipCredential {
        SipCredential {
            realm: "vaka".into(),
            ha1_md5: "0".repeat(32),
            ha1_sha256: "a".repeat(64),
            single_use_nonce: false,
        }
    }

    #[test]
    fn a_device_put_is_resolved_and_a_delete_removes_it() {
        let mut d = base();
        let mut rec = DeviceRecord::new("t", "d1", "0003");
        rec.sip = Some(cred());
        rec.heartbeat_secs = Some(60);
        d.apply(Change::PutDevice(Box::new(rec)), 3).unwrap();
        let key = DeviceKey::new("t", "d1");
        assert_eq!(d.device(&key).unwrap().heartbeat_secs, Some(60));
        assert_eq!(d.sip_account("d1").unwrap().0.key, key);
        assert_eq!(d.deadlines(&key).receipt_ms, 5_000);
        assert_eq!(d.chain(&key), &[CentreId::new("c1")]);
        assert_eq!(d.records.devices[&("t".into(), "d1".into())].revision, 3);
        assert_eq!(d.revision, 3);
        d.apply(
            Change::DeleteDevice {
                tenant: "t".into(),
                id: "d1".into(),
            },
            4,
        )
        .unwrap();
        assert!(d.device(&key).is_none());
        assert!(d.sip_account("d1").is_none());
        // Its open alarms still have a chain: the tenant's.
        assert_eq!(d.chain(&key), &[CentreId::new("c1")]);
    }

    #[test]
    fn a_disabled_device_cannot_send_or_authenticate() {
        let mut d = base();
        let mut rec = DeviceRecord::new("t", "d1", "0003");
        rec.sip = Some(cred());
        rec.enabled = false;
        d.apply(Change::PutDevice(Box::new(rec)), 3).unwrap();
        let key = DeviceKey::new("t", "d1");
        assert!(d.device(&key).is_none());
        assert!(d.sip_account("d1").is_none());
        assert!(!d.may_send_as(&key, &key));
        assert!(d.devices.contains_key(&key));
    }

    #[test]
    fn problems_name_their_fields_and_change_nothing() {
        let mut d = base();
        let mut rec = DeviceRecord::new("nope", "bad/id", "12");
        rec.centres = vec!["ghost".into()];
        rec.heartbeat_secs = Some(0);
        rec.deadline_policy = Some("p".into());
        let before = d.clone().records;
        let Err(DirectoryError::Invalid(p)) = d.apply(Change::PutDevice(Box::new(rec)), 3) else {
            panic!("not refused");
        };
        let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "tenant",
                "id",
                "type",
                "heartbeat_secs",
                "centres[0]",
                "deadline_policy"
            ]
        );
        assert_eq!(d.records, before);
        assert_eq!(d.revision, 2);
    }

    #[test]
    fn a_centres_own_deadlines_are_checked_and_resolved() {
        let mut d = base();
        let mut c = CentreRecord {
            id: "relative".into(),
            tenants: vec!["t".into()],
            receipt_deadline_secs: Some(0),
            ..Default::default()
        };
        let Err(DirectoryError::Invalid(p)) = d.apply(Change::PutCentre(c.clone()), 3) else {
            panic!("a 0 s deadline was taken");
        };
        assert_eq!(p[0].0, "receipt_deadline_secs");
        c.receipt_deadline_secs = Some(300);
        d.apply(Change::PutCentre(c), 3).unwrap();
        let own = d.centres[&CentreId::new("relative")].deadlines;
        assert_eq!((own.receipt_ms, own.accept_ms), (Some(300_000), None));
        let device = Deadlines {
            receipt_ms: 10_000,
            accept_ms: 60_000,
        };
        assert_eq!(
            own.over(device),
            Deadlines {
                receipt_ms: 300_000,
                accept_ms: 60_000
            }
        );
    }

    #[test]
    fn sip_usernames_are_unique_over_tenants() {
        let mut d = base();
        d.apply(
            Change::PutTenant(TenantRecord {
                id: "u".into(),
                ..Default::default()
            }),
            3,
        )
        .unwrap();
        let mut a = DeviceRecord::new("t", "same", "0003");
        a.sip = Some(cred());
        d.apply(Change::PutDevice(Box::new(a.clone())), 4).unwrap();
        let mut b = a.clone();
        b.tenant = "u".into();
        assert!(matches!(
            d.apply(Change::PutDevice(Box::new(b)), 5),
            Err(DirectoryError::Invalid(_))
        ));
        // The same device again (an upsert) is fine.
        d.apply(Change::PutDevice(Box::new(a)), 5).unwrap();
    }

    #[test]
    fn policy_and_tenant_changes_reach_devices() {
        let mut d = base();
        d.apply(
            Change::PutPolicy(DeadlinePolicyRecord {
                tenant: "t".into(),
                id: "fast".into(),
                receipt_deadline_secs: 2,
                accept_deadline_secs: 20,
                revision: 0,
            }),
            3,
        )
        .unwrap();
        let mut rec = DeviceRecord::new("t", "d1", "0003");
        rec.deadline_policy = Some("fast".into());
        rec.accept_deadline_secs = Some(30);
        d.apply(Change::PutDevice(Box::new(rec)), 4).unwrap();
        d.apply(
            Change::PutDevice(Box::new(DeviceRecord::new("t", "d2", "0003"))),
            5,
        )
        .unwrap();
        let (d1, d2) = (DeviceKey::new("t", "d1"), DeviceKey::new("t", "d2"));
        assert_eq!(
            d.deadlines(&d1),
            Deadlines {
                receipt_ms: 2_000,
                accept_ms: 30_000
            }
        );
        assert_eq!(d.deadlines(&d2).receipt_ms, 5_000);
        let mut t = d.records.tenants["t"].clone();
        t.receipt_deadline_secs = Some(7);
        d.apply(Change::PutTenant(t), 6).unwrap();
        assert_eq!(d.deadlines(&d2).receipt_ms, 7_000);
        assert_eq!(d.deadlines(&d1).receipt_ms, 2_000);
        assert!(matches!(
            d.apply(
                Change::DeletePolicy {
                    tenant: "t".into(),
                    id: "fast".into()
                },
                7
            ),
            Err(DirectoryError::Conflict(_))
        ));
    }

    #[test]
    fn deletes_that_would_strand_records_are_refused() {
        let mut d = base();
        d.apply(
            Change::PutDevice(Box::new(DeviceRecord::new("t", "d1", "0003"))),
            3,
        )
        .unwrap();
        assert!(matches!(
            d.apply(Change::DeleteTenant("t".into()), 4),
            Err(DirectoryError::Conflict(_))
        ));
        assert!(matches!(
            d.apply(Change::DeleteCentre("c1".into()), 4),
            Err(DirectoryError::Conflict(_))
        ));
        assert!(matches!(
            d.apply(Change::DeleteCentre("zz".into()), 4),
            Err(DirectoryError::NotFound(_))
        ));
    }

    #[test]
    fn from_records_equals_the_applied_directory() {
        let mut d = base();
        let mut rec = DeviceRecord::new("t", "d1", "0051");
        rec.sip = Some(cred());
        rec.fences = vec![crate::directory::FenceRecord {
            id: "home".into(),
            kind: crate::gps::FenceKind::Circle,
            lat: Some(57.7),
            lon: Some(11.9),
            radius_m: Some(300.0),
            points: vec![],
            margin_m: 10.0,
            confirm_fixes: None,
            confirm_secs: None,
        }];
        d.apply(Change::PutDevice(Box::new(rec)), 3).unwrap();
        let again = Directory::from_records(d.defaults.clone(), d.records.clone(), d.revision);
        assert_eq!(again.devices, d.devices);
        assert_eq!(again.tenants, d.tenants);
        assert_eq!(again.centres, d.centres);
        assert_eq!(again.gps, d.gps);
        assert_eq!(again.sip_users, d.sip_users);
        assert_eq!(
            d.gps.fences(&DeviceKey::new("t", "d1")).len(),
            1,
            "the fence is resolved"
        );
    }

    fn dc09(account: &str, key: Option<&str>) -> Option<crate::directory::Dc09Credential> {
        Some(crate::directory::Dc09Credential {
            account: account.into(),
            key: key.map(str::to_owned),
        })
    }

    fn fields(e: DirectoryError) -> Vec<String> {
        match e {
            DirectoryError::Invalid(p) => p.into_iter().map(|(f, _)| f).collect(),
            other => panic!("expected invalid, got {other}"),
        }
    }

    #[test]
    fn a_dc09_account_is_found_and_unique_over_tenants() {
        let mut d = base();
        d.apply(
            Change::PutTenant(TenantRecord {
                id: "u".into(),
                ..Default::default()
            }),
            3,
        )
        .unwrap();
        let mut rec = DeviceRecord::new("t", "panel", "0003");
        rec.dc09 = dc09("1234", Some(&"ab".repeat(16)));
        d.apply(Change::PutDevice(Box::new(rec.clone())), 4)
            .unwrap();
        let (dev, acct) = d.dc09_account("1234").unwrap();
        assert_eq!(dev.key, DeviceKey::new("t", "panel"));
        assert_eq!(acct.key.as_deref(), Some("ab".repeat(16).as_str()));
        // The same device again keeps its account; another device (any tenant) may not take it.
        d.apply(Change::PutDevice(Box::new(rec)), 5).unwrap();
        let mut other = DeviceRecord::new("u", "panel2", "0003");
        other.dc09 = dc09("1234", None);
        let e = d.apply(Change::PutDevice(Box::new(other)), 6).unwrap_err();
        assert_eq!(fields(e), ["dc09.account"]);
        // Moved to a new account: the old one is free.
        let mut moved = DeviceRecord::new("t", "panel", "0003");
        moved.dc09 = dc09("ABCD", None);
        d.apply(Change::PutDevice(Box::new(moved)), 7).unwrap();
        assert!(d.dc09_account("1234").is_none());
        assert!(d.dc09_account("ABCD").is_some());
    }

    #[test]
    fn bad_dc09_accounts_and_keys_are_named() {
        let mut d = base();
        let mut rec = DeviceRecord::new("t", "p", "0003");
        rec.dc09 = dc09("12", Some("short"));
        let e = d
            .apply(Change::PutDevice(Box::new(rec.clone())), 3)
            .unwrap_err();
        assert_eq!(fields(e), ["dc09.account", "dc09.key"]);
        rec.dc09 = dc09("00FF12", Some("0123456789ABCDEF")); // 16 ASCII characters: AES-128
        d.apply(Change::PutDevice(Box::new(rec)), 4).unwrap();
    }

    #[test]
    fn supervision_category_own_then_heartbeat_then_tenant_by_type() {
        use crate::supervision::{Category, Silence};
        let mut d = base();
        let mut t = d.records.tenants["t"].clone();
        t.supervision_by_type.insert("0003".into(), "DP4".into());
        d.apply(Change::PutTenant(t), 3).unwrap();
        let mut own = DeviceRecord::new("t", "own", "0003");
        own.supervision = Some("sp3".into());
        own.heartbeat_secs = Some(60);
        let mut beat = DeviceRecord::new("t", "beat", "0003");
        beat.heartbeat_secs = Some(60);
        let by_type = DeviceRecord::new("t", "typed", "0003");
        let other_type = DeviceRecord::new("t", "plain", "0051");
        for r in [own, beat, by_type, other_type] {
            d.apply(Change::PutDevice(Box::new(r)), 4).unwrap();
        }
        let cat = |d: &Directory, id: &str| d.device(&DeviceKey::new("t", id)).unwrap().category;
        assert_eq!(cat(&d, "own"), Some(Category::Sp3));
        assert_eq!(cat(&d, "beat"), None);
        assert_eq!(cat(&d, "typed"), Some(Category::Dp4));
        assert_eq!(cat(&d, "plain"), None);
        let silence = |id: &str| d.silence(&DeviceKey::new("t", id), None, 30_000);
        assert_eq!(silence("own"), Some(Silence::category(Category::Sp3)));
        assert_eq!(silence("beat"), Some(Silence::heartbeat(60_000, 30_000)));
        assert_eq!(silence("plain"), None);
        // The tenant's table changes: its devices are resolved again.
        let mut t = d.records.tenants["t"].clone();
        t.supervision_by_type.clear();
        d.apply(Change::PutTenant(t), 5).unwrap();
        assert_eq!(cat(&d, "typed"), None);
    }

    #[test]
    fn admission_limits_lay_over_the_defaults_and_bad_ones_are_named() {
        use crate::admission::{AdmissionRecord, Limit, DEFAULT_LIMITS};
        let mut d = base();
        let key = crate::ids::TenantId::new("t");
        assert_eq!(d.admission(&key), DEFAULT_LIMITS);
        let mut t = d.records.tenants["t"].clone();
        let few = Limit {
            per_sec: 5,
            burst: 50,
        };
        t.admission = Some(Box::new(AdmissionRecord {
            alarms: None,
            telemetry: Some(few),
        }));
        d.apply(Change::PutTenant(t.clone()), 3).unwrap();
        assert_eq!(d.admission(&key).telemetry, few);
        assert_eq!(d.admission(&key).alarms, DEFAULT_LIMITS.alarms);
        t.admission = Some(Box::new(AdmissionRecord {
            alarms: Some(Limit {
                per_sec: 1,
                burst: 0,
            }),
            telemetry: None,
        }));
        let e = d.apply(Change::PutTenant(t), 4).unwrap_err();
        assert_eq!(fields(e), ["admission.alarms.burst"]);
        // The refused change left the tenant as it was.
        assert_eq!(d.admission(&key).telemetry, few);
    }

    #[test]
    fn unknown_categories_are_named() {
        let mut d = base();
        let mut t = d.records.tenants["t"].clone();
        t.supervision_by_type.insert("03".into(), "XP9".into());
        let e = d.apply(Change::PutTenant(t), 3).unwrap_err();
        assert_eq!(
            fields(e),
            ["supervision_by_type.03", "supervision_by_type.03"]
        );
        let mut rec = DeviceRecord::new("t", "p", "0003");
        rec.supervision = Some("DP5".into());
        let e = d.apply(Change::PutDevice(Box::new(rec)), 3).unwrap_err();
        assert_eq!(fields(e), ["supervision"]);
    }
}
