//! The tenant export format, version 1: everything one tenant owns as a tar of JSON Lines, one
//! file per kind of data, a JSON Schema document per kind, a README and a manifest. `write`
//! makes one from the store (each file spooled to a temporary file, so memory stays bounded
//! whatever the tenant's size); `read` walks one line by line and checks it, naming the file
//! and line of anything wrong.
//!
//! Directory records are written without their `revision` (the engine's own change counter: an
//! import gets the target engine's). Ids of alarms and events are kept, so an alarm, its trail,
//! its opening event and its positions still point at each other after an import.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vaka_core::alarm::AuditRecord;
use vaka_core::Alarm;
use vaka_store::StoredPosition;

pub mod read;
pub mod schemas;
pub mod write;

/// `manifest.json`'s `format`.
pub const FORMAT: &str = "vaka-tenant-export";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Written last: an archive without it was cut short.
pub const MANIFEST: &str = "manifest.json";
pub const README: &str = "README.md";

/// The kinds of data, one JSON Lines file each, in the order they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Tenant,
    Centres,
    Policies,
    Devices,
    Alarms,
    Events,
    Positions,
    AdminAudit,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Tenant,
        Kind::Centres,
        Kind::Policies,
        Kind::Devices,
        Kind::Alarms,
        Kind::Events,
        Kind::Positions,
        Kind::AdminAudit,
    ];

    fn stem(self) -> &'static str {
        match self {
            Kind::Tenant => "tenant",
            Kind::Centres => "centres",
            Kind::Policies => "deadline_policies",
            Kind::Devices => "devices",
            Kind::Alarms => "alarms",
            Kind::Events => "events",
            Kind::Positions => "positions",
            Kind::AdminAudit => "admin_audit",
        }
    }

    /// The JSON Lines file of this kind.
    pub fn file(self) -> String {
        format!("{}.jsonl", self.stem())
    }

    /// Its JSON Schema document (one line's schema).
    pub fn schema_file(self) -> String {
        format!("schemas/{}.schema.json", self.stem())
    }

    pub fn from_file(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.file() == name)
    }

    /// What a line is, for the README.
    pub fn about(self) -> &'static str {
        match self {
            Kind::Tenant => "the tenant's directory record (one line): chain, deadlines, retention, rules, GPS filters",
            Kind::Centres => "the alarm centres its chains name or that serve it (their record as this tenant sees it)",
            Kind::Policies => "its deadline policies",
            Kind::Devices => "its devices: type, SIP credentials (HA1 digests, as secret as passwords), chains, fences, rules",
            Kind::Alarms => "every alarm of its devices, any state but open, with its audit trail (every transition: time, actor, reason)",
            Kind::Events => "every event its devices sent that is still kept, with the raw message as received (bytes)",
            Kind::Positions => "the position history of its devices (accepted fixes, by device and fix time)",
            Kind::AdminAudit => "its admin audit log: who changed what in its directory, when, before and after",
        }
    }
}

/// `manifest.json`: what the archive is and how many lines each file has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub tenant: String,
    pub exported_at_ms: i64,
    /// Lines per JSON Lines file.
    pub lines: BTreeMap<String, u64>,
}

/// A line of `alarms.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlarmLine {
    pub alarm: Alarm,
    /// In order; the engine numbers them from 0.
    pub audit: Vec<AuditRecord>,
}

/// A line of `positions.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionLine {
    /// The device id (of the exported tenant).
    pub device: String,
    pub position: StoredPosition,
}

/// The archive's README.md.
pub fn readme(tenant: &str, exported_at_ms: i64) -> String {
    let mut s = format!(
        "# Export of tenant \"{tenant}\" from Vaka\n\n\
         Made at {exported_at_ms} (unix ms), format `{FORMAT}` version {VERSION}.\n\n\
         Every file but this one and the schemas is JSON Lines (one JSON value per line, UTF-8).\n\
         `schemas/` holds a JSON Schema (2020-12) document per file, describing one line.\n\
         `{MANIFEST}` is written last and counts each file's lines: an archive without it, or\n\
         whose counts differ, was cut short.\n\n"
    );
    for k in Kind::ALL {
        s.push_str(&format!("- `{}`: {}.\n", k.file(), k.about()));
    }
    s.push_str(
        "\nTimes are unix milliseconds. Alarm and event ids are the engine's and are kept by an\n\
         import; an alarm's opening event has the alarm's id. Directory records carry no\n\
         `revision` (the engine's own change counter).\n\n\
         This is sensitive personal data (health, whereabouts) and holds device credentials:\n\
         keep it encrypted at rest and delete it when it has served its purpose.\n\n\
         Import: `vaka admin import --tenant T file.tar` (POST /api/v1/tenants/T/import).\n",
    );
    s
}
