//! `vaka admin`: the admin REST API from the command line, the way `nats` or `etcdctl` work. The
//! server and token come from flags or the environment (`VAKA_ADMIN_URL`, `VAKA_ADMIN_TOKEN`);
//! `--json` prints the API's JSON as it is, for scripts. Errors print the problem document's
//! detail (and each field at fault) and exit 1.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::Value;

mod transfer;

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The engine's HTTP address (its `listen.http`).
    #[arg(long, env = "VAKA_ADMIN_URL", default_value = "http://127.0.0.1:9100")]
    pub server: String,
    /// An API token (see `vaka admin tokens create`; the configuration's admin.bootstrap_token).
    #[arg(long, env = "VAKA_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// CA certificate (PEM) to trust for an https server (e.g. certs/server-ca.pem).
    #[arg(long, env = "VAKA_ADMIN_CA")]
    pub ca: Option<PathBuf>,
    /// Print the API's JSON as it is.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Tenants (municipalities, regions).
    Tenants {
        #[command(subcommand)]
        command: ListGet,
    },
    /// Alarm centres.
    Centres {
        #[command(subcommand)]
        command: ListGet,
    },
    /// Devices of a tenant.
    Devices {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Alarms.
    Alarms {
        #[command(subcommand)]
        command: AlarmCommand,
    },
    /// API tokens.
    Tokens {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// All of one tenant's data as a tar: JSON Lines per kind (directory, devices, alarms with
    /// audit trails, events, positions, admin audit), a JSON Schema per kind and a README.
    Export {
        #[arg(long, env = "VAKA_TENANT")]
        tenant: String,
        /// The archive to write (through `<out>.partial`, renamed when whole).
        #[arg(long)]
        out: PathBuf,
    },
    /// Brings a tenant's export into this engine; a refused archive changes nothing.
    Import {
        file: PathBuf,
        #[arg(long, env = "VAKA_TENANT")]
        tenant: String,
    },
    /// Any API call: `vaka admin raw GET /api/v1/tenants/demo/admin-audit`.
    Raw {
        method: String,
        path: String,
        /// Request body (JSON).
        #[arg(long)]
        body: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ListGet {
    List,
    Get { id: String },
}

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Import devices from a CSV file (header row: id,type,password,heartbeat_secs,centres,...)
    /// or JSON Lines (.jsonl/.ndjson): applied in durable batches, each row's result reported.
    Import {
        file: PathBuf,
        #[arg(long, env = "VAKA_TENANT")]
        tenant: Option<String>,
    },
    /// One device (searched in every tenant the token sees when --tenant is not given).
    Get {
        id: String,
        #[arg(long, env = "VAKA_TENANT")]
        tenant: Option<String>,
    },
    /// A tenant's devices.
    List {
        #[arg(long, env = "VAKA_TENANT")]
        tenant: Option<String>,
    },
    /// Create or replace a device.
    Put {
        id: String,
        #[arg(long, env = "VAKA_TENANT")]
        tenant: Option<String>,
        /// SCAIP device type (four digits), e.g. 0003 personal trigger.
        #[arg(long = "type")]
        device_type: String,
        /// SIP digest password (stored as HA1 only).
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        heartbeat_secs: Option<u32>,
        /// Own escalation chain (centre ids, first first); default: the tenant's.
        #[arg(long, value_delimiter = ',')]
        centres: Vec<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Remove a device: refused at the fronts from now on; its open alarms stay until handled.
    Delete {
        id: String,
        #[arg(long, env = "VAKA_TENANT")]
        tenant: Option<String>,
    },
    /// Last heard, open alarms, latest position and connections.
    Status {
        id: String,
        #[arg(long, env = "VAKA_TENANT")]
        tenant: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AlarmCommand {
    /// Alarms of a tenant (every tenant the token sees when --tenant is not given).
    List {
        #[arg(long, env = "VAKA_TENANT")]
        tenant: Option<String>,
        /// any, open, pending, offered, receipted, accepted, unhandled, closed, cancelled.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        device: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One alarm with its audit trail.
    Get { id: u64 },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    List,
    /// Make a token; its secret is printed once.
    Create {
        /// platform-operator, tenant-admin or centre.
        #[arg(long)]
        role: String,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        centre: Option<String>,
        #[arg(long, default_value = "")]
        label: String,
    },
    Delete {
        id: String,
    },
}

struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
}

type Failed = String;

impl Client {
    fn new(args: &AdminArgs) -> Result<Client, Failed> {
        let mut cfg = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(600)));
        if let Some(ca) = &args.ca {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect::<Vec<_>>();
            if certs.is_empty() {
                return Err(format!("{}: no certificate", ca.display()));
            }
            cfg = cfg.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        Ok(Client {
            agent: cfg.build().new_agent(),
            base: args.server.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
        })
    }

    /// A call; the JSON answer, or the problem's text.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failed> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", auth)
            .header("Content-Type", "application/json");
        let req = req
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .map_err(|e| e.to_string())?;
        let mut resp = self
            .agent
            .run(req)
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status >= 400 {
            return Err(problem_text(status, &value));
        }
        Ok(value)
    }
}

fn problem_text(status: u16, v: &Value) -> String {
    let mut s = format!(
        "{status}: {}",
        v.get("detail")
            .and_then(Value::as_str)
            .unwrap_or(&v.to_string())
    );
    for e in v
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = e.get("field").and_then(Value::as_str).unwrap_or("");
        let reason = e.get("reason").and_then(Value::as_str).unwrap_or("");
        s.push_str(&format!("\n  {field}: {reason}"));
    }
    s
}

/// Runs one `vaka admin` command; the text to print, or why it failed.
pub fn run(args: AdminArgs) -> Result<(), Failed> {
    let c = Client::new(&args)?;
    let json = args.json;
    let show = |v: &Value| {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    };
    match args.command {
        AdminCommand::Tenants { command } => match command {
            ListGet::List => {
                let v = c.call("GET", "/api/v1/tenants", None)?;
                if json {
                    show(&v)
                } else {
                    for t in v.as_array().into_iter().flatten() {
                        println!(
                            "{}\t{}\tchain {}",
                            s(t, "id"),
                            s(t, "name"),
                            list(t, "centres")
                        );
                    }
                }
            }
            ListGet::Get { id } => show(&c.call("GET", &format!("/api/v1/tenants/{id}"), None)?),
        },
        AdminCommand::Centres { command } => match command {
            ListGet::List => {
                let v = c.call("GET", "/api/v1/centres", None)?;
                if json {
                    show(&v)
                } else {
                    for x in v.as_array().into_iter().flatten() {
                        println!(
                            "{}\t{}\ttenants {}",
                            s(x, "id"),
                            s(x, "name"),
                            list(x, "tenants")
                        );
                    }
                }
            }
            ListGet::Get { id } => show(&c.call("GET", &format!("/api/v1/centres/{id}"), None)?),
        },
        AdminCommand::Devices { command } => devices(&c, command, json)?,
        AdminCommand::Alarms { command } => alarms(&c, command, json)?,
        AdminCommand::Tokens { command } => match command {
            TokenCommand::List => {
                let v = c.call("GET", "/api/v1/tokens", None)?;
                if json {
                    show(&v)
                } else {
                    for t in v.as_array().into_iter().flatten() {
                        println!(
                            "{}\t{}\t{}\t{}",
                            s(t, "id"),
                            s(t, "role"),
                            t.get("tenant")
                                .and_then(Value::as_str)
                                .or(t.get("centre").and_then(Value::as_str))
                                .unwrap_or("-"),
                            s(t, "label")
                        );
                    }
                }
            }
            TokenCommand::Create {
                role,
                tenant,
                centre,
                label,
            } => {
                let body = serde_json::json!({"role": role, "tenant": tenant, "centre": centre, "label": label});
                let v = c.call("POST", "/api/v1/tokens", Some(&body))?;
                if json {
                    show(&v)
                } else {
                    println!("token {} ({role})", s(&v["token"], "id"));
                    println!("secret (shown once, keep it): {}", s(&v, "secret"));
                }
            }
            TokenCommand::Delete { id } => {
                c.call("DELETE", &format!("/api/v1/tokens/{id}"), None)?;
                if !json {
                    println!("token {id} revoked");
                }
            }
        },
        AdminCommand::Export { tenant, out } => transfer::export(&c, &tenant, &out, json)?,
        AdminCommand::Import { file, tenant } => transfer::import(&c, &tenant, &file, json)?,
        AdminCommand::Raw { method, path, body } => {
            let body = match body {
                Some(b) => Some(serde_json::from_str(&b).map_err(|e| format!("--body: {e}"))?),
                None => None,
            };
            show(&c.call(&method.to_ascii_uppercase(), &path, body.as_ref())?);
        }
    }
    Ok(())
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn list(v: &Value, k: &str) -> String {
    let items: Vec<&str> = v
        .get(k)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

/// The tenants the token sees.
fn tenants(c: &Client) -> Result<Vec<String>, Failed> {
    let v = c.call("GET", "/api/v1/tenants", None)?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .map(|t| s(t, "id").to_owned())
        .collect())
}

/// The tenant to use: the one given, else the only one the token sees.
fn one_tenant(c: &Client, given: Option<String>) -> Result<String, Failed> {
    if let Some(t) = given {
        return Ok(t);
    }
    let all = tenants(c)?;
    match all.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("this token sees no tenant".into()),
        _ => Err(format!(
            "this token sees several tenants ({}): name one with --tenant",
            all.join(", ")
        )),
    }
}

fn devices(c: &Client, command: DeviceCommand, json: bool) -> Result<(), Failed> {
    match command {
        DeviceCommand::Import { file, tenant } => {
            let tenant = one_tenant(c, tenant)?;
            import(c, &tenant, &file, json)
        }
        DeviceCommand::Get { id, tenant } => {
            let ts = match tenant {
                Some(t) => vec![t],
                None => tenants(c)?,
            };
            for t in &ts {
                match c.call("GET", &format!("/api/v1/tenants/{t}/devices/{id}"), None) {
                    Ok(v) => {
                        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                        return Ok(());
                    }
                    Err(e) if e.starts_with("404") => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(format!(
                "404: device \"{id}\" not found in {}",
                ts.join(", ")
            ))
        }
        DeviceCommand::List { tenant } => {
            let tenant = one_tenant(c, tenant)?;
            let mut after: Option<String> = None;
            loop {
                let q = after
                    .as_ref()
                    .map(|a| format!("&after={a}"))
                    .unwrap_or_default();
                let v = c.call(
                    "GET",
                    &format!("/api/v1/tenants/{tenant}/devices?limit=1000{q}"),
                    None,
                )?;
                for d in v["devices"].as_array().into_iter().flatten() {
                    if json {
                        println!("{d}");
                    } else {
                        println!(
                            "{}\t{}\t{}\theartbeat {}",
                            s(d, "id"),
                            s(d, "type"),
                            if d["enabled"].as_bool() == Some(false) {
                                "disabled"
                            } else {
                                "enabled"
                            },
                            d["heartbeat_secs"]
                                .as_u64()
                                .map_or("-".into(), |h| format!("{h}s"))
                        );
                    }
                }
                match v["next_after"].as_str() {
                    Some(n) => after = Some(n.to_owned()),
                    None => return Ok(()),
                }
            }
        }
        DeviceCommand::Put {
            id,
            tenant,
            device_type,
            password,
            heartbeat_secs,
            centres,
            disabled,
        } => {
            let tenant = one_tenant(c, tenant)?;
            let body = serde_json::json!({
                "type": device_type, "password": password, "heartbeat_secs": heartbeat_secs,
                "centres": centres, "enabled": !disabled,
            });
            let v = c.call(
                "PUT",
                &format!("/api/v1/tenants/{tenant}/devices/{id}"),
                Some(&body),
            )?;
            if json {
                println!("{v}");
            } else {
                println!("device {tenant}/{id} stored (revision {})", v["revision"]);
            }
            Ok(())
        }
        DeviceCommand::Delete { id, tenant } => {
            let tenant = one_tenant(c, tenant)?;
            c.call(
                "DELETE",
                &format!("/api/v1/tenants/{tenant}/devices/{id}"),
                None,
            )?;
            if !json {
                println!("device {tenant}/{id} removed");
            }
            Ok(())
        }
        DeviceCommand::Status { id, tenant } => {
            let tenant = one_tenant(c, tenant)?;
            let v = c.call(
                "GET",
                &format!("/api/v1/tenants/{tenant}/devices/{id}/status"),
                None,
            )?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(())
        }
    }
}

/// Posts the file and follows the streamed answer with a progress bar.
fn import(c: &Client, tenant: &str, file: &Path, json: bool) -> Result<(), Failed> {
    let body = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let jsonl = matches!(
        file.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "ndjson")
    );
    let rows = if jsonl {
        body.split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .count()
    } else {
        body.split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .count()
            .saturating_sub(1)
    };
    let url = format!("{}/api/v1/tenants/{tenant}/device-imports", c.base);
    let kind = if jsonl {
        "application/x-ndjson"
    } else {
        "text/csv"
    };
    let req = ureq::http::Request::builder()
        .method("POST")
        .uri(&url)
        .header("Authorization", format!("Bearer {}", c.token))
        .header("Content-Type", kind)
        .body(body)
        .map_err(|e| e.to_string())?;
    let mut resp = c.agent.run(req).map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status().as_u16();
    if status >= 400 {
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        return Err(problem_text(status, &v));
    }
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(rows as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut errors = Vec::new();
    let mut summary = Value::Null;
    let reader = BufReader::new(resp.body_mut().as_reader());
    for line in reader.lines() {
        let line = line.map_err(|e| format!("reading the answer: {e}"))?;
        let v: Value = serde_json::from_str(&line).map_err(|e| format!("answer line: {e}"))?;
        if json {
            println!("{line}");
        }
        if let Some(sum) = v.get("summary") {
            summary = sum.clone();
            continue;
        }
        bar.inc(1);
        if v["result"] == "error" {
            errors.push(v);
        }
    }
    bar.finish_and_clear();
    if summary.is_null() {
        return Err("the answer ended before its summary: the connection broke; rows reported above are stored, run the file again (it is idempotent)".into());
    }
    if !json {
        for e in &errors {
            println!(
                "row {}: {}{}: {}",
                e["row"],
                e["device"]
                    .as_str()
                    .map(|d| format!("device {d}, "))
                    .unwrap_or_default(),
                e["field"]
                    .as_str()
                    .filter(|f| !f.is_empty())
                    .unwrap_or("row"),
                s(e, "reason")
            );
        }
        println!(
            "{} rows: {} created, {} updated, {} unchanged, {} errors (directory revision {})",
            summary["rows"],
            summary["created"],
            summary["updated"],
            summary["unchanged"],
            summary["errors"],
            summary["revision"]
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} rows were not imported", errors.len()))
    }
}

fn alarms(c: &Client, command: AlarmCommand, json: bool) -> Result<(), Failed> {
    match command {
        AlarmCommand::List {
            tenant,
            state,
            device,
            limit,
        } => {
            let ts = match tenant {
                Some(t) => vec![t],
                None => tenants(c)?,
            };
            for t in ts {
                let mut q = format!("limit={limit}");
                if let Some(s) = &state {
                    q.push_str(&format!("&state={s}"));
                }
                if let Some(d) = &device {
                    q.push_str(&format!("&device={d}"));
                }
                let v = c.call("GET", &format!("/api/v1/tenants/{t}/alarms?{q}"), None)?;
                for a in v["alarms"].as_array().into_iter().flatten() {
                    if json {
                        println!("{a}");
                    } else {
                        println!(
                            "{}\t{}/{}\t{}\t{}\t{}\t{}",
                            a["id"],
                            s(a, "tenant"),
                            s(a, "device"),
                            s(a, "kind"),
                            s(a, "code"),
                            s(a, "state"),
                            a["centre"].as_str().unwrap_or("-")
                        );
                    }
                }
            }
            Ok(())
        }
        AlarmCommand::Get { id } => {
            let v = c.call("GET", &format!("/api/v1/alarms/{id}"), None)?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(())
        }
    }
}
