//! What the admin API tests share: `vaka serve` on free ports with an `[admin]` bootstrap token,
//! started, SIGKILLed and restarted; HTTP calls with `ureq`; a centre on the gRPC API; sipp and
//! QUIC device helpers. Needs `support/binary.rs` and `support/sipp.rs` as modules `binary` and
//! `sipp` of the including test.
#![allow(dead_code)]
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::SinkExt;
use serde_json::Value;
use vaka_centre::console::{self, ClientTls};
use vaka_centre::pb::{self, centre_message::Msg as In, server_message::Msg as Out};
use vaka_device::{Client, DeviceConfig};

use super::binary::{free_tcp_port, free_udp_port, vaka_bin};

/// The platform-operator token of every test engine (`[admin] bootstrap_token`).
pub const OPERATOR: &str = "operator-token-of-the-tests";

/// One answer of the admin API.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub etag: Option<String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// `vaka serve` as a child process with QUIC, SIP over UDP, the centre API and the admin API.
pub struct Engine {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub quic: SocketAddr,
    pub sip: SocketAddr,
    /// SIP over TCP, when started with it (`start_full`).
    pub sip_tcp: Option<SocketAddr>,
    /// SIP over TLS with the demo server certificate (`certs/server.pem`, issued by
    /// `certs/server-ca.pem`), when started with it (`start_sip`).
    pub sip_tls: Option<SocketAddr>,
    pub grpc: SocketAddr,
    pub http: u16,
    child: Option<Child>,
    agent: ureq::Agent,
}

impl Engine {
    /// An engine whose configuration holds `directory` (TOML `[[tenants]]`, `[[centres]]`,
    /// `[[devices]]`, may be empty) and demo certificates for `quic` (tenant, devices): those
    /// tenants get a CA in `quic.tenant_cas` (the tenants must be in `directory`). Started and
    /// ready (the admin API answers) on return.
    pub fn start(directory: &str, quic: &[(&str, &[&str])]) -> Engine {
        Engine::start_with(directory, quic, "")
    }

    /// As `start`, with `sections` (more TOML sections; `{http}` stands for the admin API's
    /// port) added to the configuration.
    pub fn start_with(directory: &str, quic: &[(&str, &[&str])], sections: &str) -> Engine {
        Engine::start_full(directory, quic, sections, false)
    }

    /// As `start_with`, with the SCAIP front also on TCP when `sip_tcp`.
    pub fn start_full(
        directory: &str,
        quic: &[(&str, &[&str])],
        sections: &str,
        sip_tcp: bool,
    ) -> Engine {
        Engine::start_sip(directory, quic, sections, sip_tcp, false)
    }

    /// As `start_full`, with the SCAIP front also on TLS when `sip_tls`.
    pub fn start_sip(
        directory: &str,
        quic: &[(&str, &[&str])],
        sections: &str,
        sip_tcp: bool,
        sip_tls: bool,
    ) -> Engine {
        Engine::start_tuned(directory, quic, sections, sip_tcp, sip_tls, "")
    }

    /// As `start_sip`, with more `[router]` lines (`key = value`, each ending in a newline).
    pub fn start_tuned(
        directory: &str,
        quic: &[(&str, &[&str])],
        sections: &str,
        sip_tcp: bool,
        sip_tls: bool,
        router: &str,
    ) -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        if sip_tls {
            vaka_ingest::certs::generate_demo(&certs, "sip-tls", &[]).unwrap();
        }
        // The server certificate is always needed (QUIC); a tenant for it when none is given.
        let mut cas = Vec::new();
        for (tenant, devices) in quic {
            vaka_ingest::certs::generate_demo(&certs, tenant, devices).unwrap();
            cas.push(format!(
                "{tenant} = \"{}/{tenant}/ca.pem\"",
                certs.display()
            ));
        }
        let quic_section = if quic.is_empty() {
            String::new()
        } else {
            format!(
                "[quic]\nserver_cert = \"{c}/server.pem\"\nserver_key = \"{c}/server-key.pem\"\n\
                 tenant_cas = {{ {} }}\n",
                cas.join(", "),
                c = certs.display()
            )
        };
        let quic_addr: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let grpc: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let http = free_tcp_port();
        let tcp_addr: Option<SocketAddr> =
            sip_tcp.then(|| format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap());
        let tls_addr: Option<SocketAddr> =
            sip_tls.then(|| format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap());
        let quic_listen = if quic.is_empty() {
            String::new()
        } else {
            format!("quic = \"{quic_addr}\"\n")
        };
        let text = format!(
            "[server]\ndata_dir = \"{data}\"\nlog_level = \"warn\"\nshutdown_timeout_secs = 5\n\
             [listen]\n{quic_listen}sip_udp = \"{sip}\"\n{tcp_listen}grpc = \"{grpc}\"\n\
             http = \"127.0.0.1:{http}\"\n\
             [router]\nshards = 2\nreconnect_grace_secs = 1\n{router}\
             [sip]\nudp = true\ntcp = {sip_tcp}\ntls = {sip_tls}\n{tls_files}\
             {quic_section}\
             [grpc]\nheartbeat_secs = 1\n\
             [admin]\nbootstrap_token = \"{OPERATOR}\"\n\
             {sections}\n\
             {directory}\n",
            data = dir.path().join("data").display(),
            sections = sections.replace("{http}", &http.to_string()),
            tcp_listen = [("sip_tcp", tcp_addr), ("sip_tls", tls_addr)]
                .iter()
                .filter_map(|(k, a)| a.map(|a| format!("{k} = \"{a}\"\n")))
                .collect::<String>(),
            tls_files = match sip_tls {
                true => format!(
                    "tls_cert = \"{c}/server.pem\"\ntls_key = \"{c}/server-key.pem\"\n",
                    c = certs.display()
                ),
                false => String::new(),
            },
        );
        let config = dir.path().join("vaka.toml");
        std::fs::write(&config, text).unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            // A connection per call: the server may answer a refused write (401, 404) before
            // reading its body and then close the connection, which a pooled connection would
            // only notice on its next request ("Peer disconnected").
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build()
            .into();
        let mut e = Engine {
            dir,
            config,
            quic: quic_addr,
            sip,
            sip_tcp: tcp_addr,
            sip_tls: tls_addr,
            grpc,
            http,
            child: None,
            agent,
        };
        e.restart();
        e
    }

    /// Starts the engine (again) on the same data and waits until the admin API answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(vaka_bin())
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vaka serve");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("vaka serve exited while starting: {status}");
            }
            if let Ok(r) = self.try_call("GET", "/api/v1/openapi.json", None, None, &[]) {
                if r.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < until,
                "the admin API did not answer within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM, then waits for the exit (at most `within`): its exit code.
    pub fn sigterm(&mut self, within: Duration) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        let until = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGSTOP / SIGCONT: the process is there but does nothing (a hung machine, a long GC-like
    /// stall, a VM paused by its host).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    pub fn sigkill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// One HTTP call: `body` is (content type, bytes); `headers` are added as given.
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, ureq::Error> {
        let mut b = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        if let Some(t) = token {
            b = b.header("Authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut r = match body {
            Some((kind, bytes)) => self
                .agent
                .run(b.header("Content-Type", kind).body(bytes).unwrap())?,
            None => self.agent.run(b.body(()).unwrap())?,
        };
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let etag = header("etag");
        let body = r
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()?;
        Ok(Reply {
            status: r.status().as_u16(),
            content_type,
            etag,
            body,
        })
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.try_call(method, path, token, body, headers)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None, &[])
    }

    /// A JSON write (PUT, POST, DELETE with a body).
    pub fn send(&self, method: &str, path: &str, token: &str, body: &Value) -> Reply {
        self.call(
            method,
            path,
            Some(token),
            Some(("application/json", body.to_string().into_bytes())),
            &[],
        )
    }

    /// The same, answered with one of `ok` (fails the test otherwise).
    pub fn send_ok(&self, method: &str, path: &str, token: &str, body: &Value) -> Reply {
        let r = self.send(method, path, token, body);
        assert!(
            (200..300).contains(&r.status),
            "{method} {path} {body}: {} {}",
            r.status,
            r.body
        );
        r
    }

    /// A new tenant-admin token of `tenant`: (token id, secret).
    pub fn tenant_admin(&self, tenant: &str) -> (String, String) {
        let r = self.send_ok(
            "POST",
            "/api/v1/tokens",
            OPERATOR,
            &serde_json::json!({"role": "tenant-admin", "tenant": tenant, "label": "test"}),
        );
        let v = r.json();
        (
            v["token"]["id"].as_str().unwrap().to_owned(),
            v["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// Posts an import (`kind` is the content type) and reads the whole streamed answer: the
    /// row lines and the summary.
    pub fn import(&self, tenant: &str, kind: &str, body: Vec<u8>) -> Import {
        let path = format!("/api/v1/tenants/{tenant}/device-imports");
        let r = self.call("POST", &path, Some(OPERATOR), Some((kind, body)), &[]);
        assert_eq!(r.status, 200, "import: {}", r.body);
        Import::parse(&r.body)
    }

    /// Starts an import and returns a reader of its streamed answer, line by line.
    pub fn import_stream(&self, tenant: &str, kind: &str, body: Vec<u8>) -> impl BufRead + 'static {
        let req = ureq::http::Request::builder()
            .method("POST")
            .uri(self.url(&format!("/api/v1/tenants/{tenant}/device-imports")))
            .header("Authorization", format!("Bearer {OPERATOR}"))
            .header("Content-Type", kind)
            .body(body)
            .unwrap();
        let r = self.agent.run(req).expect("import");
        assert_eq!(r.status().as_u16(), 200, "import answered");
        std::io::BufReader::new(r.into_body().into_reader())
    }

    /// The admin audit of `tenant` (or the platform's), oldest first, all of it (paged by time:
    /// a page starts at the last page's last millisecond, duplicates dropped).
    /// Alarm `id`'s audit trail as (actor, action, reason), read as the operator.
    pub fn alarm_trail(&self, id: u64) -> Vec<(String, String, String)> {
        let r = self.get(&format!("/api/v1/alarms/{id}"), OPERATOR);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["audit"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
                (s("actor"), s("action"), s("reason"))
            })
            .collect()
    }

    pub fn audit(&self, tenant: Option<&str>) -> Vec<Value> {
        let base = match tenant {
            Some(t) => format!("/api/v1/tenants/{t}/admin-audit"),
            None => "/api/v1/admin-audit".to_owned(),
        };
        let mut all = Vec::new();
        let mut from = 0i64;
        loop {
            let r = self.get(&format!("{base}?from={from}&limit=1000"), OPERATOR);
            assert_eq!(r.status, 200, "admin audit: {}", r.body);
            let page = r.json().as_array().unwrap().clone();
            let full = page.len() == 1000;
            let (first, last) = match (page.first(), page.last()) {
                (Some(f), Some(l)) => (f["at_ms"].as_i64().unwrap(), l["at_ms"].as_i64().unwrap()),
                _ => return dedup_audit(all),
            };
            all.extend(page);
            if !full {
                return dedup_audit(all);
            }
            // A whole page in one millisecond: the next one starts after it.
            from = if first == last { last + 1 } else { last };
        }
    }

    /// The alarms of `tenant` that `query` (e.g. `device=d1`, `state=open&limit=1000`) lists,
    /// as the API shows them.
    pub fn alarms(&self, tenant: &str, query: &str) -> Vec<Value> {
        let page = self
            .get(
                &format!("/api/v1/tenants/{tenant}/alarms?{query}"),
                OPERATOR,
            )
            .json();
        page["alarms"].as_array().expect("a page of alarms").clone()
    }

    /// Device `id` of `tenant` as the API shows it (None: 404).
    pub fn device(&self, tenant: &str, id: &str) -> Option<Value> {
        let r = self.get(&format!("/api/v1/tenants/{tenant}/devices/{id}"), OPERATOR);
        match r.status {
            200 => Some(r.json()),
            404 => None,
            s => panic!("GET device {tenant}/{id}: {s} {}", r.body),
        }
    }

    /// Every device id of `tenant` (paged).
    pub fn device_ids(&self, tenant: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let q = match &after {
                Some(a) => format!("?limit=1000&after={a}"),
                None => "?limit=1000".to_owned(),
            };
            let r = self.get(&format!("/api/v1/tenants/{tenant}/devices{q}"), OPERATOR);
            assert_eq!(r.status, 200, "list devices: {}", r.body);
            let v = r.json();
            for d in v["devices"].as_array().unwrap() {
                ids.push(d["id"].as_str().unwrap().to_owned());
            }
            match v["next_after"].as_str() {
                Some(a) => after = Some(a.to_owned()),
                None => return ids,
            }
        }
    }

    /// The demo certificate files of QUIC device `id` of `tenant`.
    pub fn device_config(&self, tenant: &str, id: &str) -> DeviceConfig {
        let c = self.dir.path().join("certs");
        DeviceConfig::from_pem_files(
            self.quic,
            c.join("server-ca.pem"),
            c.join(format!("{tenant}/{id}.pem")),
            c.join(format!("{tenant}/{id}-key.pem")),
        )
        .unwrap()
    }

    /// Connects QUIC device `tenant/id` (the engine is up: a refusal fails at once).
    pub async fn quic_client(&self, tenant: &str, id: &str) -> Client {
        Client::connect(self.device_config(tenant, id))
            .await
            .unwrap_or_else(|e| panic!("QUIC device {tenant}/{id} cannot connect: {e}"))
    }

    /// A centre stream (gRPC) with `token`.
    pub async fn centre(&self, token: &str) -> Centre {
        Centre::connect(self.grpc, token).await
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn dedup_audit(all: Vec<Value>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    all.into_iter()
        .filter(|e| seen.insert(e.to_string()))
        .collect()
}

/// A streamed import answer, read whole.
#[derive(Debug)]
pub struct Import {
    pub rows: Vec<Value>,
    pub summary: Value,
}

impl Import {
    pub fn parse(body: &str) -> Import {
        let mut rows = Vec::new();
        let mut summary = None;
        for l in body.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("import line {l:?}: {e}"));
            match v.get("summary") {
                Some(s) => summary = Some(s.clone()),
                None => rows.push(v),
            }
        }
        Import {
            rows,
            summary: summary.unwrap_or_else(|| panic!("no summary line in:\n{body}")),
        }
    }

    /// How many rows had `result`.
    pub fn count(&self, result: &str) -> usize {
        self.rows.iter().filter(|r| r["result"] == result).count()
    }
}

/// One centre connection: a Session stream after Hello/Welcome.
pub struct Centre {
    up: mpsc::Sender<pb::CentreMessage>,
    down: tonic::Streaming<pb::ServerMessage>,
    next_request: u64,
    /// Acknowledges every offer and update it reads (as a real centre does); off by default.
    acking: bool,
    /// Offers read while waiting for an input's result, for `offer` to return next.
    early: std::collections::VecDeque<pb::Offer>,
}

impl Centre {
    pub async fn connect(grpc: SocketAddr, token: &str) -> Centre {
        let until = Instant::now() + Duration::from_secs(20);
        let mut client = loop {
            match console::connect(&grpc.to_string(), Some(token), ClientTls::default()).await {
                Ok(c) => break c,
                Err(e) if Instant::now() < until => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("centre API never came up: {e}"),
            }
        };
        let (mut up, rx) = mpsc::channel(16);
        up.send(pb::CentreMessage {
            msg: Some(In::Hello(pb::Hello {
                resume_after: None,
                client: "admin-tests".into(),
            })),
        })
        .await
        .unwrap();
        let mut down = client.session(rx).await.unwrap().into_inner();
        match down.message().await.unwrap().and_then(|m| m.msg) {
            Some(Out::Welcome(_)) => {}
            other => panic!("expected welcome, got {other:?}"),
        }
        Centre {
            up,
            down,
            next_request: 0,
            acking: false,
            early: std::collections::VecDeque::new(),
        }
    }

    /// From now on every offer and update read is acknowledged (its cursor), as a real centre's
    /// console does; without, the engine cuts a centre off that lets too many go unacknowledged.
    pub fn acking(mut self) -> Centre {
        self.acking = true;
        self
    }

    /// Acknowledges `cursor` when acking; `None` once the stream is gone.
    async fn ack(&mut self, cursor: u64) -> Option<()> {
        if self.acking {
            let ack = In::Ack(pb::Ack { cursor });
            self.up
                .send(pb::CentreMessage { msg: Some(ack) })
                .await
                .ok()?;
        }
        Some(())
    }

    /// Sends one input and waits for its result (refused: fails the test).
    async fn act(&mut self, msg: In) {
        self.next_request += 1;
        let id = self.next_request;
        let msg = match msg {
            In::Receipt(r) => In::Receipt(pb::Receipt {
                request_id: id,
                ..r
            }),
            In::Accept(a) => In::Accept(pb::Accept {
                request_id: id,
                ..a
            }),
            In::Close(c) => In::Close(pb::Close {
                request_id: id,
                ..c
            }),
            In::Attended(a) => In::Attended(pb::Attended {
                request_id: id,
                ..a
            }),
            other => other,
        };
        self.up
            .send(pb::CentreMessage { msg: Some(msg) })
            .await
            .unwrap();
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let m = tokio::time::timeout_at(until, self.down.message())
                .await
                .expect("no result within 10 s")
                .expect("stream error")
                .expect("stream ended");
            match m.msg {
                Some(Out::Result(r)) if r.request_id == id => {
                    assert_eq!(r.code, 0, "input refused: {}", r.message);
                    return;
                }
                Some(Out::Offer(o)) => {
                    self.ack(o.cursor).await.expect("stream ended");
                    self.early.push_back(o);
                }
                Some(Out::Update(u)) => self.ack(u.cursor).await.expect("stream ended"),
                _ => continue,
            }
        }
    }

    /// Receipt, accept and close of `alarm`: it is over.
    pub async fn handle_and_close(&mut self, alarm: u64) {
        self.receipt(alarm).await;
        self.accept(alarm).await;
        self.close(alarm).await;
    }

    pub async fn receipt(&mut self, alarm: u64) {
        self.act(In::Receipt(pb::Receipt {
            request_id: 0,
            alarm_id: alarm,
        }))
        .await;
    }

    pub async fn accept(&mut self, alarm: u64) {
        self.act(In::Accept(pb::Accept {
            request_id: 0,
            alarm_id: alarm,
            operator_id: "op".into(),
        }))
        .await;
    }

    /// The responder reached the person (after accept).
    pub async fn attended(&mut self, alarm: u64) {
        self.act(In::Attended(pb::Attended {
            request_id: 0,
            alarm_id: alarm,
        }))
        .await;
    }

    pub async fn close(&mut self, alarm: u64) {
        self.close_with(alarm, "visited", "").await;
    }

    pub async fn close_with(&mut self, alarm: u64, outcome: &str, note: &str) {
        self.act(In::Close(pb::Close {
            request_id: 0,
            alarm_id: alarm,
            outcome: outcome.into(),
            note: note.into(),
        }))
        .await;
    }

    /// The next offer (heartbeats and other notices skipped) within `within`.
    pub async fn offer(&mut self, within: Duration) -> pb::Offer {
        tokio::time::timeout(within, self.next_offer())
            .await
            .unwrap_or_else(|_| panic!("no offer within {within:?}"))
            .expect("stream ended or failed")
    }

    /// The next offer (updates acknowledged on the way), or `None` once the stream ends or
    /// fails: a listener that outlives its engine (killed, or stopped as a test fails) ends
    /// quietly rather than with a panic that would bury the test's own in the output.
    pub async fn next_offer(&mut self) -> Option<pb::Offer> {
        if let Some(o) = self.early.pop_front() {
            return Some(o);
        }
        loop {
            let m = self.down.message().await.ok()??;
            match m.msg {
                Some(Out::Offer(o)) => {
                    self.ack(o.cursor).await?;
                    return Some(o);
                }
                Some(Out::Update(u)) => self.ack(u.cursor).await?,
                _ => {}
            }
        }
    }

    /// The next update within `within` (offers read on the way are kept for `offer`).
    pub async fn update(&mut self, within: Duration) -> pb::Update {
        let until = tokio::time::Instant::now() + within;
        loop {
            let m = tokio::time::timeout_at(until, self.down.message())
                .await
                .unwrap_or_else(|_| panic!("no update within {within:?}"))
                .expect("stream error")
                .expect("stream ended");
            match m.msg {
                Some(Out::Update(u)) => {
                    self.ack(u.cursor).await.expect("stream ended");
                    return u;
                }
                Some(Out::Offer(o)) => {
                    self.ack(o.cursor).await.expect("stream ended");
                    self.early.push_back(o);
                }
                _ => {}
            }
        }
    }

    /// No offer arrives for `d` (heartbeats and updates may).
    pub async fn no_offer_for(&mut self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(until, self.down.message()).await {
                Err(_) => return,
                Ok(Ok(Some(pb::ServerMessage {
                    msg: Some(Out::Offer(o)),
                }))) => panic!("unexpected offer: {o:?}"),
                Ok(Ok(Some(_))) => continue,
                Ok(other) => panic!("stream ended: {other:?}"),
            }
        }
    }
}

/// A SCAIP alarm `<mrq>` of `device` with reference `reference`.
pub fn mrq(device: &str, reference: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><mrq><ref>{reference}</ref><cid>{device}</cid>\
         <dty>0003</dty><mty>ME</mty><stc>0010</stc><pri>2</pri></mrq>"
    )
}

/// A sipp scenario of tests/sipp.
pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo"))
        .join("tests/sipp")
        .join(name)
}

/// VmRSS of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}
