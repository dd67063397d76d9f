//! The operator's side with a real Prometheus (Debian's `prometheus`, started here) scraping a
//! real engine: `promtool` accepts `config/prometheus.yml` and `config/alerts.yml`; under
//! traffic every query of `config/grafana-dashboard.json` and the series under every alert
//! expression return data through Prometheus's HTTP API; and in a scenario that breaks the
//! alarm path (one centre with 1 s deadlines that never answers, then gone) the unhandled-alarm,
//! deadline-missed, canary-failed (the tenant's canary gets no receipt) and no-centre alerts fire. The alerts' `for:` waits are set to 0 s in the
//! copy Prometheus loads here, so the test does not wait minutes; everything else is the file.
//! Needs `prometheus` (`make deps` installs it).
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::Engine;
use binary::{free_tcp_port, free_udp_port};
use serde_json::Value;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vaka_dc09::{Account, Header, HexId, Message, Seq, Token};

const CENTRE_TOKEN: &str = "token-of-the-watched-centre";

fn config(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
        .output()
        .expect("promtool (Debian package prometheus; `make deps`)");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Prometheus {
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
    /// Scrapes `target` every second with the shipped alerts (their `for:` set to 0 s).
    fn start(target: u16) -> Prometheus {
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
             scrape_configs:\n  - job_name: vaka\n    static_configs:\n      - targets: [\"127.0.0.1:{target}\"]\n"
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

    fn get(&self, path: &str) -> Option<(u16, String)> {
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
    fn query(&self, expr: &str) -> Vec<Value> {
        let q: String = url_encode(expr);
        let (status, body) = self.get(&format!("/api/v1/query?query={q}")).unwrap();
        assert_eq!(status, 200, "{expr}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{expr}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    fn firing(&self) -> Vec<String> {
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

/// The alert expressions of `config/alerts.yml` (one `expr:` line each).
fn alert_exprs() -> Vec<String> {
    config("alerts.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| e.trim().to_owned())
        .collect()
}

/// What an alert compares: its expression without the final `> 0`, `== 1`, `< 0.10`.
fn measured(expr: &str) -> &str {
    for op in [" == ", " != ", " >= ", " <= ", " > ", " < "] {
        if let Some(i) = expr.rfind(op) {
            if expr[i + op.len()..].trim().parse::<f64>().is_ok() {
                return expr[..i].trim();
            }
        }
    }
    expr
}

fn grafana_exprs() -> Vec<String> {
    let d: Value = serde_json::from_str(&config("grafana-dashboard.json")).unwrap();
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

fn alarm_frame(account: &str, seq: u16) -> Vec<u8> {
    let header = Header {
        token: Token::SiaDcs,
        encrypted: false,
        seq: Seq::new(seq).unwrap(),
        receiver: None,
        line: HexId::new("0"),
        account: Account::new(account).unwrap(),
    };
    let data = format!("#{account}|NFA{seq:02}");
    Message::new(header, data, Vec::new(), None)
        .unwrap()
        .encode(None, &[0; 16])
        .unwrap()
}

#[test]
fn promtool_accepts_the_shipped_files() {
    promtool(&["check", "config", "prometheus.yml"]);
    promtool(&["check", "rules", "alerts.yml"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_evaluates_every_dashboard_query_and_alert_and_the_broken_path_alerts() {
    let udp = free_udp_port();
    let mut devices = String::new();
    for i in 0..3 {
        devices += &format!(
            "[[devices]]\ntenant = \"t\"\nid = \"panel-{i}\"\ntype = \"0003\"\ndc09_account = \"10{i}0\"\n"
        );
    }
    // The tenant's canary: the engine plays device 900001 through its own SIP front.
    devices += "[[devices]]\ntenant = \"t\"\nid = \"900001\"\ntype = \"0003\"\npassword = \"canary-secret\"\n";
    let directory = format!(
        "[dc09]\nudp = \"127.0.0.1:{udp}\"\n\
         [[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\nreceipt_deadline_secs = 1\naccept_deadline_secs = 1\n\
         canary = {{ device = \"900001\", every_secs = 10 }}\n\
         [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"{CENTRE_TOKEN}\"\n{devices}"
    );
    let engine = Engine::start(&directory, &[]);
    let prom = Prometheus::start(engine.http);

    // A centre that takes offers and never answers: every alarm misses its receipt deadline
    // and, with nobody after c1 in the chain, becomes unhandled. Before any alarm, Prometheus
    // has scraped the counters at zero (as it would have, long before, in production) and
    // sees tenant t's centre connected.
    let centre = engine.centre(CENTRE_TOKEN).await;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let t = prom.query("vaka_tenant_centres_connected{tenant=\"t\"}");
        let zero = prom.query("vaka_alarms_unhandled_total == 0");
        if t.first().is_some_and(|v| v["value"][1] == "1") && !zero.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "no scrape of c1 connected: {t:?} {zero:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(!prom.firing().iter().any(|f| f == "VakaNoCentreForTenant"));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    for i in 0..3 {
        let frame = alarm_frame(&format!("10{i}0"), 1 + i as u16);
        for _ in 0..2 {
            // The second is a resend: counted as a duplicate, not a second alarm.
            sock.send_to(&frame, ("127.0.0.1", udp)).unwrap();
            sock.recv_from(&mut buf).expect("an answer");
        }
    }
    sock.send_to(
        b"\n0000002A\"SIA-DCS\"0001L0#1000[#1000|NFA01]\r",
        ("127.0.0.1", udp),
    )
    .unwrap(); // a damaged frame: an error series
    let _ = sock.recv_from(&mut buf);

    // Scrapes every second; the tenant gauge refreshes every 5 s.
    let until = Instant::now() + Duration::from_secs(60);
    let mut missing: Vec<String> = Vec::new();
    while Instant::now() < until {
        missing = grafana_exprs()
            .into_iter()
            .chain(alert_exprs().iter().map(|e| measured(e).to_owned()))
            .filter(|e| prom.query(e).is_empty())
            .collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(missing.is_empty(), "no series for: {missing:#?}");
    for e in alert_exprs() {
        prom.query(&e); // the whole expression evaluates (empty when not firing)
    }

    let wait_firing = |names: &[&str]| {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let firing = prom.firing();
            if names.iter().all(|n| firing.iter().any(|f| f == n)) {
                return firing;
            }
            assert!(
                Instant::now() < until,
                "{names:?} not firing; firing: {firing:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    wait_firing(&[
        "VakaUnhandledAlarm",
        "VakaDeadlineMissed",
        "VakaCanaryFailed",
    ]);
    let unhandled = prom.query("vaka_alarms_unhandled_total");
    assert_eq!(unhandled[0]["value"][1], "3", "{unhandled:?}");

    // The centre goes away (or was already cut off for never acknowledging its offers):
    // tenant t has no centre connected.
    drop(centre);
    wait_firing(&["VakaNoCentreForTenant"]);
    let t = prom.query("vaka_tenant_centres_connected{tenant=\"t\"}");
    assert_eq!(t[0]["value"][1], "0", "{t:?}");
    assert!(!prom.firing().iter().any(|f| f == "VakaStoreFailed"));
}
