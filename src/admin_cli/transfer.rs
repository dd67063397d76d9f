//! `vaka admin export` and `vaka admin import`: a tenant's archive downloaded to a file or
//! uploaded from one, with a progress bar on stderr (indicatif draws only on a terminal; else
//! a plain line every 64 MiB and at the end).
use std::io::{Read, Write};
use std::path::Path;

use serde_json::Value;

use super::{problem_text, Client, Failed};

/// Plain progress lines (no terminal) this often.
const PLAIN_EVERY: u64 = 64 << 20;

/// Counts bytes through a reader onto a progress bar.
struct Counted<R> {
    inner: R,
    bar: indicatif::ProgressBar,
    done: u64,
    plain: bool,
    verb: &'static str,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = self.done;
        self.done += n as u64;
        self.bar.inc(n as u64);
        if self.plain && before / PLAIN_EVERY != self.done / PLAIN_EVERY {
            eprintln!("{} {} MiB", self.verb, self.done >> 20);
        }
        Ok(n)
    }
}

fn bar(len: Option<u64>) -> (indicatif::ProgressBar, bool) {
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let template = if len.is_some() {
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {elapsed}"
    } else {
        "{spinner} {bytes} {bytes_per_sec} {elapsed}"
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let plain = bar.is_hidden();
    (bar, plain)
}

/// Downloads `tenant`'s archive to `out` (through `<out>.partial`, renamed when whole, removed
/// when not) and
/// prints its manifest's line counts.
pub fn export(c: &Client, tenant: &str, out: &Path, json: bool) -> Result<(), Failed> {
    let url = format!("{}/api/v1/tenants/{tenant}/export", c.base);
    let req = ureq::http::Request::builder()
        .method("GET")
        .uri(&url)
        .header("Authorization", format!("Bearer {}", c.token))
        .body(())
        .map_err(|e| e.to_string())?;
    let mut resp = c.agent.run(req).map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    if status >= 400 {
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        return Err(problem_text(status, &v));
    }
    let partial = {
        let mut p = out.as_os_str().to_owned();
        p.push(".partial");
        std::path::PathBuf::from(p)
    };
    let mut file =
        std::fs::File::create(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;
    let (bar, plain) = bar(None);
    let mut body = Counted {
        inner: resp.body_mut().with_config().limit(u64::MAX).reader(),
        bar,
        done: 0,
        plain,
        verb: "exported",
    };
    let copied = std::io::copy(&mut body, &mut file)
        .map_err(|e| format!("the export broke off after {} bytes: {e}", body.done));
    body.bar.finish_and_clear();
    let checked = copied
        .and_then(|_| {
            file.sync_all()
                .map_err(|e| format!("{}: {e}", partial.display()))
        })
        .and_then(|()| read_manifest(&partial));
    let manifest = match checked {
        Ok(m) => m,
        Err(e) => {
            // A broken archive is personal data all the same: not left behind.
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, out).map_err(|e| format!("{}: {e}", out.display()))?;
    if json {
        println!("{manifest}");
    } else {
        for (file, n) in manifest["lines"].as_object().into_iter().flatten() {
            println!("{file}\t{n} lines");
        }
        println!("{} bytes written to {}", body.done, out.display());
    }
    Ok(())
}

/// The manifest of a downloaded archive: its last file; missing means cut short.
fn read_manifest(path: &Path) -> Result<Value, Failed> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    let entries = archive
        .entries()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("{}: not a whole tar: {e}", path.display()))?;
        let name = entry.path().map(|p| p.to_string_lossy().into_owned());
        if name.as_deref().ok() == Some("manifest.json") {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            return serde_json::from_str(&text).map_err(|e| format!("manifest.json: {e}"));
        }
    }
    Err(format!(
        "{}: no manifest.json: the export was cut short",
        path.display()
    ))
}

/// Uploads the archive at `file` into `tenant` and prints what the import did.
pub fn import(c: &Client, tenant: &str, file: &Path, json: bool) -> Result<(), Failed> {
    let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let len = f.metadata().map(|m| m.len()).ok();
    let (bar, plain) = bar(len);
    let mut body = Counted {
        inner: std::io::BufReader::new(f),
        bar,
        done: 0,
        plain,
        verb: "uploaded",
    };
    let url = format!("{}/api/v1/tenants/{tenant}/import", c.base);
    let req = ureq::http::Request::builder()
        .method("POST")
        .uri(&url)
        .header("Authorization", format!("Bearer {}", c.token))
        .header("Content-Type", "application/x-tar")
        .body(ureq::SendBody::from_reader(&mut body))
        .map_err(|e| e.to_string())?;
    let sent = c.agent.run(req);
    body.bar.finish_and_clear();
    let mut resp = sent.map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status >= 400 {
        return Err(problem_text(status, &v));
    }
    if json {
        println!("{v}");
    } else {
        println!(
            "tenant {}: directory {} created, {} updated, {} unchanged (revision {})",
            v["tenant"].as_str().unwrap_or(tenant),
            v["created"],
            v["updated"],
            v["unchanged"],
            v["revision"]
        );
        for (file, n) in v["files"].as_object().into_iter().flatten() {
            println!(
                "{file}\t{} written, {} already here",
                n["written"], n["already"]
            );
        }
    }
    let _ = std::io::stdout().flush();
    Ok(())
}
