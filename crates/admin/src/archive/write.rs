//! Writes one tenant's archive to any `Write` (the HTTP answer's body, a file). Each JSON Lines
//! file is first spooled to an unnamed temporary file (its size must be in its tar header
//! before its bytes), read from the store a page at a time: memory holds one page, whatever
//! the tenant's size.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};

use serde::Serialize;
use serde_json::Value;
use vaka_core::directory::{
    CentreRecord, DeadlinePolicyRecord, DeviceRecord, Records, TenantRecord,
};
use vaka_store::{Page, Store, StoreError};

use super::{
    readme, schemas, AlarmLine, Kind, Manifest, PositionLine, FORMAT, MANIFEST, README, VERSION,
};

/// Records read from the store per page.
const PAGE: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing the archive: {0}")]
    Io(#[from] io::Error),
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
}

/// The tenant's part of the directory.
#[derive(Clone, Debug)]
pub struct TenantRecords {
    pub tenant: TenantRecord,
    pub centres: Vec<CentreRecord>,
    pub policies: Vec<DeadlinePolicyRecord>,
    pub devices: Vec<DeviceRecord>,
}

impl TenantRecords {
    /// `tenant`'s records; its centres are those its chains name or that serve it, each shown
    /// serving this tenant only (which other tenants a centre serves is not this tenant's).
    pub fn of(records: &Records, tenant: &str) -> Option<TenantRecords> {
        let t = records.tenants.get(tenant)?.clone();
        let devices: Vec<DeviceRecord> = records
            .devices
            .iter()
            .filter(|((owner, _), _)| owner == tenant)
            .map(|(_, d)| d.clone())
            .collect();
        let named = |c: &str| {
            t.centres.iter().any(|x| x == c)
                || devices.iter().any(|d| {
                    d.centres.iter().any(|x| x == c)
                        || d.chains_by_kind.values().flatten().any(|x| x == c)
                })
        };
        let centres = records
            .centres
            .values()
            .filter(|c| named(&c.id) || c.tenants.iter().any(|x| x == tenant))
            .map(|c| {
                let mut c = c.clone();
                c.tenants.retain(|x| x == tenant);
                c
            })
            .collect();
        let policies = records
            .policies
            .iter()
            .filter(|((owner, _), _)| owner == tenant)
            .map(|(_, p)| p.clone())
            .collect();
        Some(TenantRecords {
            tenant: t,
            centres,
            policies,
            devices,
        })
    }
}

/// A JSON Lines file being spooled.
struct Lines {
    out: BufWriter<File>,
    n: u64,
}

impl Lines {
    fn push<T: Serialize>(&mut self, v: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, v)?;
        self.out.write_all(b"\n")?;
        self.n += 1;
        Ok(())
    }

    /// A directory record without its revision (see the module docs of `archive`).
    fn push_record<T: Serialize>(&mut self, v: &T) -> io::Result<()> {
        let mut v = serde_json::to_value(v)?;
        if let Value::Object(m) = &mut v {
            m.remove("revision");
        }
        self.push(&v)
    }
}

/// Writes the archive of `records`' tenant with its data from `store`; `progress` is told each
/// file and its line count as it is added. Returns the manifest (also the archive's last file).
pub fn write_archive<W: Write>(
    out: W,
    store: &Store,
    records: &TenantRecords,
    now_ms: i64,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<(W, Manifest), ExportError> {
    let tenant = records.tenant.id.as_str();
    let mtime = (now_ms.max(0) / 1000) as u64;
    let mut tar = tar::Builder::new(out);
    add_bytes(&mut tar, README, readme(tenant, now_ms).as_bytes(), mtime)?;
    for k in Kind::ALL {
        let doc = serde_json::to_vec_pretty(&schemas::schema(k)).map_err(io::Error::from)?;
        add_bytes(&mut tar, &k.schema_file(), &doc, mtime)?;
    }
    let mut lines = BTreeMap::new();
    for k in Kind::ALL {
        let n = add_lines(&mut tar, &k.file(), mtime, &mut |w| {
            fill(k, w, store, records)
        })?;
        progress(&k.file(), n);
        lines.insert(k.file(), n);
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        tenant: tenant.into(),
        exported_at_ms: now_ms,
        lines,
    };
    let doc = serde_json::to_vec_pretty(&manifest).map_err(io::Error::from)?;
    add_bytes(&mut tar, MANIFEST, &doc, mtime)?;
    let out = tar.into_inner()?;
    Ok((out, manifest))
}

/// Writes `kind`'s lines.
fn fill(kind: Kind, w: &mut Lines, store: &Store, r: &TenantRecords) -> Result<(), ExportError> {
    let tenant = r.tenant.id.as_str();
    match kind {
        Kind::Tenant => w.push_record(&r.tenant)?,
        Kind::Centres => r.centres.iter().try_for_each(|c| w.push_record(c))?,
        Kind::Policies => r.policies.iter().try_for_each(|p| w.push_record(p))?,
        Kind::Devices => r.devices.iter().try_for_each(|d| w.push_record(d))?,
        Kind::Alarms => pages(
            |from| store.tenant_alarms(tenant, from, PAGE),
            |(alarm, audit)| w.push(&AlarmLine { alarm, audit }),
        )?,
        Kind::Events => pages(
            |from| store.tenant_events(tenant, from, PAGE),
            |e| w.push(&e),
        )?,
        Kind::Positions => pages(
            |from| store.tenant_positions(tenant, from, PAGE),
            |(device, position)| {
                w.push(&PositionLine {
                    device: device.device.0,
                    position,
                })
            },
        )?,
        Kind::AdminAudit => pages(
            |from| store.tenant_admin_audit(tenant, from, PAGE),
            |e| w.push(&e),
        )?,
    }
    Ok(())
}

/// Reads every page and hands each record to `each`.
fn pages<T>(
    mut read: impl FnMut(Option<&[u8]>) -> Result<Page<T>, StoreError>,
    mut each: impl FnMut(T) -> io::Result<()>,
) -> Result<(), ExportError> {
    let mut from: Option<Vec<u8>> = None;
    loop {
        let page = read(from.as_deref())?;
        for item in page.items {
            each(item)?;
        }
        match page.next {
            Some(next) => from = Some(next),
            None => return Ok(()),
        }
    }
}

fn header(len: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(len);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn add_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    mtime: u64,
) -> io::Result<()> {
    let mut h = header(bytes.len() as u64, mtime);
    tar.append_data(&mut h, name, bytes)
}

/// Spools a JSON Lines file, then adds it; its line count.
fn add_lines<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    mtime: u64,
    fill: &mut dyn FnMut(&mut Lines) -> Result<(), ExportError>,
) -> Result<u64, ExportError> {
    let mut w = Lines {
        out: BufWriter::with_capacity(1 << 16, tempfile::tempfile()?),
        n: 0,
    };
    fill(&mut w)?;
    let mut file = w.out.into_inner().map_err(|e| e.into_error())?;
    let len = file.stream_position()?;
    file.rewind()?;
    let mut h = header(len, mtime);
    tar.append_data(&mut h, name, &mut file)?;
    Ok(w.n)
}
