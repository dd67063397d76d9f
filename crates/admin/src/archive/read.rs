//! Walks an archive (a file: an import reads it twice, to check, then to write) and checks
//! each line: that it reads as its kind, belongs to the tenant being imported, and (alarms)
//! is not open; then that the manifest is there and its counts match, so a cut-short archive
//! is refused. Every refusal names the file and line.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::de::DeserializeOwned;
use vaka_core::directory::{CentreRecord, DeadlinePolicyRecord, DeviceRecord, TenantRecord};
use vaka_core::DeviceKey;
use vaka_store::directory::AdminAuditEntry;
use vaka_store::{Imported, StoredEvent};

use super::{AlarmLine, Kind, Manifest, PositionLine, FORMAT, MANIFEST, VERSION};

/// The longest line read (a device record with many fences is some kB; an event's raw message
/// at most the fronts' message size, written as numbers).
pub const MAX_LINE: u64 = 16 << 20;

/// Ids at or above this are refused: no engine gives them (it would take 2^62 events), and
/// new ids start above the largest imported one, so a forged huge id would run the id counter
/// out.
pub const MAX_ID: u64 = 1 << 62;

fn id_ok(what: &str, id: u64) -> Result<(), String> {
    if id < MAX_ID {
        Ok(())
    } else {
        Err(format!(
            "{what} id {id} is not one an engine gives (at most {})",
            MAX_ID - 1
        ))
    }
}

/// What is wrong with an archive, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {reason}", file, line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct Bad {
    pub file: String,
    /// 1-based; `None`: the file as a whole.
    pub line: Option<u64>,
    pub reason: String,
}

impl Bad {
    pub fn at(file: &str, line: Option<u64>, reason: impl Into<String>) -> Bad {
        Bad {
            file: file.to_owned(),
            line,
            reason: reason.into(),
        }
    }
}

/// A directory record of the archive.
#[derive(Clone, Debug)]
pub enum DirRecord {
    Tenant(TenantRecord),
    Centre(CentreRecord),
    Policy(DeadlinePolicyRecord),
    Device(Box<DeviceRecord>),
}

/// One record and where it is.
pub enum Record {
    Directory(DirRecord),
    Data(Imported),
}

/// Walks the archive at `path` for `tenant`, handing each record (with its file and line) to
/// `each`, in archive order; then checks the manifest. An error of `each` stops the walk.
pub fn walk(
    path: &Path,
    tenant: &str,
    each: &mut dyn FnMut(Record, &str, u64) -> Result<(), Bad>,
) -> Result<Manifest, Bad> {
    let file = std::fs::File::open(path).map_err(|e| Bad::at("archive", None, e.to_string()))?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 16, file));
    let tar_bad = |e: std::io::Error| Bad::at("archive", None, format!("not a readable tar: {e}"));
    let mut manifest: Option<Manifest> = None;
    let mut counted = BTreeMap::new();
    for entry in archive.entries().map_err(tar_bad)? {
        let entry = entry.map_err(tar_bad)?;
        let name = entry
            .path()
            .map_err(tar_bad)?
            .to_string_lossy()
            .into_owned();
        if name == MANIFEST {
            let mut text = String::new();
            entry
                .take(MAX_LINE)
                .read_to_string(&mut text)
                .map_err(|e| Bad::at(MANIFEST, None, e.to_string()))?;
            manifest = Some(
                serde_json::from_str(&text).map_err(|e| Bad::at(MANIFEST, None, e.to_string()))?,
            );
            continue;
        }
        let Some(kind) = Kind::from_file(&name) else {
            if name.ends_with(".jsonl") {
                return Err(Bad::at(&name, None, "not a file of this format version"));
            }
            continue; // README, schemas
        };
        if manifest.is_some() {
            return Err(Bad::at(&name, None, "after the manifest, which comes last"));
        }
        let n = lines(entry, kind, &name, tenant, each)?;
        counted.insert(name, n);
    }
    let m = manifest.ok_or_else(|| {
        Bad::at(
            MANIFEST,
            None,
            "missing: the archive was cut short (the manifest is written last)",
        )
    })?;
    if m.format != FORMAT || m.version != VERSION {
        return Err(Bad::at(
            MANIFEST,
            None,
            format!(
                "format \"{}\" version {}: this engine reads \"{FORMAT}\" version {VERSION}",
                m.format, m.version
            ),
        ));
    }
    if m.tenant != tenant {
        return Err(Bad::at(
            MANIFEST,
            None,
            format!("an export of tenant \"{}\", not \"{tenant}\"", m.tenant),
        ));
    }
    for k in Kind::ALL {
        let (want, got) = (
            m.lines.get(&k.file()).copied().unwrap_or(0),
            counted.get(&k.file()).copied().unwrap_or(0),
        );
        if want != got {
            return Err(Bad::at(
                &k.file(),
                None,
                format!("{got} lines, the manifest says {want}: the archive is incomplete"),
            ));
        }
    }
    Ok(m)
}

/// Reads one JSON Lines file; its line count.
fn lines(
    entry: impl Read,
    kind: Kind,
    file: &str,
    tenant: &str,
    each: &mut dyn FnMut(Record, &str, u64) -> Result<(), Bad>,
) -> Result<u64, Bad> {
    let mut r = BufReader::with_capacity(1 << 16, entry);
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        buf.clear();
        let got = (&mut r)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Bad::at(file, Some(n + 1), e.to_string()))?;
        if got == 0 {
            return Ok(n);
        }
        n += 1;
        if buf.len() as u64 > MAX_LINE {
            return Err(Bad::at(
                file,
                Some(n),
                format!("longer than {MAX_LINE} bytes"),
            ));
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            return Err(Bad::at(file, Some(n), "empty line"));
        }
        let record = parse(kind, &buf, tenant).map_err(|why| Bad::at(file, Some(n), why))?;
        each(record, file, n)?;
    }
}

fn json<T: DeserializeOwned>(line: &[u8]) -> Result<T, String> {
    serde_json::from_slice(line).map_err(|e| e.to_string())
}

fn owner(what: &str, found: &str, tenant: &str) -> Result<(), String> {
    if found == tenant {
        Ok(())
    } else {
        Err(format!("{what} of tenant \"{found}\", not \"{tenant}\""))
    }
}

/// One line as its kind's record, checked.
fn parse(kind: Kind, line: &[u8], tenant: &str) -> Result<Record, String> {
    let dir = Record::Directory;
    Ok(match kind {
        Kind::Tenant => {
            let t: TenantRecord = json(line)?;
            owner("the tenant record", &t.id, tenant)?;
            dir(DirRecord::Tenant(t))
        }
        Kind::Centres => dir(DirRecord::Centre(json(line)?)),
        Kind::Policies => {
            let p: DeadlinePolicyRecord = json(line)?;
            owner("a deadline policy", &p.tenant, tenant)?;
            dir(DirRecord::Policy(p))
        }
        Kind::Devices => {
            let d: DeviceRecord = json(line)?;
            owner("a device", &d.tenant, tenant)?;
            dir(DirRecord::Device(Box::new(d)))
        }
        Kind::Alarms => {
            let AlarmLine { alarm, audit } = json(line)?;
            owner("an alarm", &alarm.device.tenant.0, tenant)?;
            id_ok("alarm", alarm.id.0)?;
            if alarm.is_open() {
                return Err(format!(
                    "alarm {} is open ({}): a person may be waiting; it is handled where it \
                     is, close it there and export again",
                    alarm.id.0,
                    alarm.state.name()
                ));
            }
            if let Some(r) = audit.iter().find(|r| r.alarm != alarm.id) {
                return Err(format!(
                    "alarm {}'s audit trail holds a record of alarm {}",
                    alarm.id.0, r.alarm.0
                ));
            }
            Record::Data(Imported::Alarm(alarm, audit))
        }
        Kind::Events => {
            let e: StoredEvent = json(line)?;
            owner("an event", &e.event.device.tenant.0, tenant)?;
            id_ok("event", e.id.0)?;
            Record::Data(Imported::Event(e))
        }
        Kind::Positions => {
            let p: PositionLine = json(line)?;
            if !vaka_core::checks::valid_id(&p.device) {
                return Err(format!("device \"{}\" is not a device id", p.device));
            }
            id_ok("the position's event", p.position.event.0)?;
            let device = DeviceKey::new(tenant, &p.device);
            Record::Data(Imported::Position(device, p.position))
        }
        Kind::AdminAudit => {
            let e: AdminAuditEntry = json(line)?;
            owner(
                "an admin audit entry",
                e.tenant.as_deref().unwrap_or("(platform)"),
                tenant,
            )?;
            Record::Data(Imported::AdminAudit(e))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_another_tenant_or_with_ids_no_engine_gives_are_refused() {
        let event = |tenant: &str, id: u64| {
            format!(
                r#"{{"id":{id},"event":{{"device":{{"tenant":"{tenant}","device":"d"}},"key":"k","received_ms":1,"kind":"Heartbeat","fix":null,"raw":[60],"occurred_ms":null}}}}"#
            )
        };
        assert!(parse(Kind::Events, event("t", 7).as_bytes(), "t").is_ok());
        let other = parse(Kind::Events, event("b", 7).as_bytes(), "t")
            .err()
            .unwrap();
        assert!(other.contains("tenant \"b\""), "{other}");
        let huge = parse(Kind::Events, event("t", u64::MAX).as_bytes(), "t")
            .err()
            .unwrap();
        assert!(huge.contains("not one an engine gives"), "{huge}");
        let pos = r#"{"device":"d\u0000x","position":{"event":1,"received_ms":1,"fix":{"time_ms":1,"lat":1.0,"lon":1.0,"accuracy_m":null,"speed_mps":null,"course_deg":null,"valid":true}}}"#;
        let bad = parse(Kind::Positions, pos.as_bytes(), "t").err().unwrap();
        assert!(bad.contains("not a device id"), "{bad}");
    }
}
