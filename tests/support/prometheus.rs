//! A real Prometheus (Debian's `prometheus`) for the tests: started on a free port, scraping
//! engines every second with the shipped `config/alerts.yml` (its `for:` waits set to 0 s, so
//! no test waits minutes; everything else is the file), and asked through its HTTP API.
//! Included by `tests/prometheus.rs` and `tests/cluster_engine.rs`.
#![allow(dead_code)]
use super::binary::free_tcp_port;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The alert group that needs a `[cluster]` section: its series exist only on cluster nodes.
pub const CLUSTER_GROUP: &str = "vaka-cluster";

pub fn config(name: &str) -> String {
    let path = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo"),
    )
    .join("config")
    .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(
            PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo"),
            )
            .join("config"),
        )
        .output()
        .expect("promtool (Debian package prometheus; `make deps`)");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `targets` every second with the shipped alerts (their `for:` set to 0 s).
    pub fn start(targets: &[u16]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let alerts: String = config("alerts.yml")
            .lines()
            .map(|l| match l.trim_start().strip_prefix("for:") {
                Some(_) => format!("{}for: 0s", &l[..l.len() - l.trim_start().len()]),
                None => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dir.path().join("alerts.yml"), alerts).unwrap();
        let prom = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - alerts.yml\n\
             scrape_configs:\n  - job_name: vaka\n    static_configs:\n      - targets: [{}]\n",
            targets
                .iter()
                .map(|t| format!("\"127.0.0.1:{t}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), prom).unwrap();
        let port = free_tcp_port();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package; `make deps`)");
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        let until = Instant::now() + Duration::from_secs(30);
        while p.get("/-/ready").map(|(s, _)| s) != Some(200) {
            assert!(Instant::now() < until, "prometheus not ready within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent.get(&url).call().ok()?;
        let status = r.status().as_u16();
        Some((status, r.body_mut().read_to_string().ok()?))
    }

    /// An instant query's result vector (the query must succeed).
    pub fn query(&self, expr: &str) -> Vec<Value> {
        let q: String = url_encode(expr);
        let (status, body) = self.get(&format!("/api/v1/query?query={q}")).unwrap();
        assert_eq!(status, 200, "{expr}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{expr}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    pub fn firing(&self) -> Vec<String> {
        let (_, body) = self.get("/api/v1/alerts").unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        v["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "firing")
            .map(|a| a["labels"]["alertname"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The alert expressions of `config/alerts.yml` (one `expr:` line each), with the name of the
/// group each is in.
pub fn alert_exprs() -> Vec<(String, String)> {
    let mut group = String::new();
    let mut exprs = Vec::new();
    for line in config("alerts.yml").lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- name:") {
            group = name.trim().to_owned();
        } else if let Some(e) = line.strip_prefix("expr:") {
            exprs.push((group.clone(), e.trim().to_owned()));
        }
    }
    exprs
}

/// What an alert compares: its expression without the final `> 0`, `== 1`, `< 0.10`.
pub fn measured(expr: &str) -> &str {
    for op in [" == ", " != ", " >= ", " <= ", " > ", " < "] {
        if let Some(i) = expr.rfind(op) {
            if expr[i + op.len()..].trim().parse::<f64>().is_ok() {
                return expr[..i].trim();
            }
        }
    }
    expr
}
