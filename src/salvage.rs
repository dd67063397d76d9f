//! `vaka store salvage`: the explicit way past a damaged store (invariant 12). The store keeps the
//! how; this file decides where the copy goes and what the operator reads.
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use vaka_store::{RocksConfig, SalvageReport};

/// The RocksDB directory under a data directory (as `vaka serve` opens it).
pub fn db_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("db")
}

/// What `vaka serve` says when it refuses a damaged store.
pub fn advice(data_dir: &Path) -> String {
    format!(
        "nothing was changed. To start anyway, run `vaka store salvage --data-dir {}` (it keeps a \
         copy of the damaged files, opens what is intact and reports what was lost), or restore \
         the data directory from a backup",
        data_dir.display()
    )
}

/// Salvages the store under `data_dir`; the copy goes to `data_dir/salvage-<unix seconds>`.
pub fn run(data_dir: &Path) -> Result<SalvageReport, String> {
    let db = db_dir(data_dir);
    if !db.join("CURRENT").exists() {
        return Err(format!("no store in {} (no CURRENT file)", db.display()));
    }
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let copy = data_dir.join(format!("salvage-{secs}"));
    vaka_store::salvage(&RocksConfig::new(&db), &copy).map_err(|e| {
        format!(
            "salvage of {} failed: {e}. The store as it was is copied to {} (if the copy was \
             made); a damaged table file (.sst) cannot be salvaged: restore a backup",
            db.display(),
            copy.display()
        )
    })
}

/// The report, one fact per line, `key: value` so that people and scripts can read it.
pub fn render(r: &SalvageReport) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k}: {v}\n"));
    line("copy of the store as it was", r.copy.display().to_string());
    line(
        "damage",
        r.damage
            .clone()
            .unwrap_or_else(|| "none found by a normal open".into()),
    );
    line("log replay", r.replay.to_string());
    line(
        "last durable event id (mark)",
        r.before.durable_event.to_string(),
    );
    line("last event id recovered", r.recovered_event.to_string());
    line(
        "write sequence durable / recovered",
        format!("{} / {}", r.before.durable_seq, r.recovered_seq),
    );
    line(
        "lost",
        if r.lost_events() {
            format!(
                "acknowledged events with ids {}..={} are gone unless they are in the copy",
                r.recovered_event + 1,
                r.before.durable_event
            )
        } else {
            "nothing acknowledged".into()
        },
    );
    line("open alarms", r.open_alarms.to_string());
    line(
        "next id",
        format!("{} (ids are never given twice)", r.next_id),
    );
    out
}
