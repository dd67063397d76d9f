//! The `vaka-centre` console client's logic, kept here so it is tested: connecting with a token,
//! the operator's commands, and how offers and updates are printed (human or one JSON object per
//! line).
use crate::pb::{self, server_message::Msg as Out};
use serde_json::{json, Value};
use std::path::Path;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    pub fn new(token: Option<&str>) -> Result<Bearer, String> {
        token
            .map(|t| {
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| "the token must be printable ASCII".to_string())
            })
            .transpose()
            .map(Bearer)
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub type Client = pb::alarm_centre_client::AlarmCentreClient<InterceptedService<Channel, Bearer>>;

/// TLS for the client: the CA that issued the server's certificate and, for mTLS, the centre's
/// own certificate and key.
#[derive(Clone, Debug, Default)]
pub struct ClientTls<'a> {
    pub ca: Option<&'a Path>,
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
}

/// `host:port` or a full `http(s)://` URL; https when TLS files are given.
pub fn endpoint_url(addr: &str, tls: bool) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else if tls {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

pub async fn connect(
    addr: &str,
    token: Option<&str>,
    tls: ClientTls<'_>,
) -> Result<Client, String> {
    let use_tls = tls.ca.is_some() || tls.cert.is_some();
    let url = endpoint_url(addr, use_tls);
    let mut ep = Endpoint::from_shared(url.clone()).map_err(|e| format!("{url}: {e}"))?;
    ep = ep.tcp_nodelay(true);
    if use_tls {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let mut t = ClientTlsConfig::new();
        if let Some(ca) = tls.ca {
            t = t.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        match (tls.cert, tls.key) {
            (Some(c), Some(k)) => t = t.identity(Identity::from_pem(read(c)?, read(k)?)),
            (None, None) => {}
            _ => return Err("--cert and --key go together".into()),
        }
        ep = ep.tls_config(t).map_err(|e| format!("TLS: {e}"))?;
    }
    let channel = ep
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    Ok(pb::alarm_centre_client::AlarmCentreClient::with_interceptor(channel, Bearer::new(token)?))
}

/// What the operator (or a script) types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Accept {
        alarm: u64,
        operator: String,
    },
    Close {
        alarm: u64,
        outcome: String,
        note: String,
    },
    Refuse {
        alarm: u64,
        reason: String,
    },
    /// The responder reached the person.
    Attended {
        alarm: u64,
    },
    List {
        all: bool,
    },
    Audit {
        alarm: u64,
    },
    Help,
    Quit,
}

pub const HELP: &str = "commands:
  accept ID OPERATOR         an operator takes the alarm
  close ID OUTCOME [NOTE..]  close it (e.g. close 42 visited all well)
  refuse ID REASON..         hand it on to the next centre of its chain
  attended ID                the responder reached the person (after accept)
  list [all]                 open alarms this centre holds (all: of its tenants)
  audit ID                   the alarm's audit trail
  help | quit";

pub fn parse_command(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let Some(verb) = words.next() else {
        return Err("empty command".into());
    };
    let id = |w: Option<&str>| -> Result<u64, String> {
        w.ok_or("missing alarm id")?
            .parse()
            .map_err(|_| "alarm id must be a number".to_string())
    };
    let rest = |w: std::str::SplitWhitespace<'_>| w.collect::<Vec<_>>().join(" ");
    match verb.to_ascii_lowercase().as_str() {
        "accept" | "a" => {
            let alarm = id(words.next())?;
            let operator = words.next().ok_or("missing operator id")?.to_string();
            Ok(Command::Accept { alarm, operator })
        }
        "close" | "c" => {
            let alarm = id(words.next())?;
            let outcome = words.next().ok_or("missing outcome")?.to_string();
            Ok(Command::Close {
                alarm,
                outcome,
                note: rest(words),
            })
        }
        "refuse" => {
            let alarm = id(words.next())?;
            let reason = rest(words);
            if reason.is_empty() {
                return Err("missing reason".into());
            }
            Ok(Command::Refuse { alarm, reason })
        }
        "attended" => Ok(Command::Attended {
            alarm: id(words.next())?,
        }),
        "list" | "ls" => Ok(Command::List {
            all: words.next() == Some("all"),
        }),
        "audit" => Ok(Command::Audit {
            alarm: id(words.next())?,
        }),
        "help" | "?" => Ok(Command::Help),
        "quit" | "exit" | "q" => Ok(Command::Quit),
        other => Err(format!("unknown command {other:?} (try help)")),
    }
}

/// The message carrying a command that goes over the stream (None: a unary call or local).
pub fn command_message(cmd: &Command, request_id: u64) -> Option<pb::CentreMessage> {
    use pb::centre_message::Msg;
    let msg = match cmd.clone() {
        Command::Accept { alarm, operator } => Msg::Accept(pb::Accept {
            request_id,
            alarm_id: alarm,
            operator_id: operator,
        }),
        Command::Close {
            alarm,
            outcome,
            note,
        } => Msg::Close(pb::Close {
            request_id,
            alarm_id: alarm,
            outcome,
            note,
        }),
        Command::Refuse { alarm, reason } => Msg::Refuse(pb::Refuse {
            request_id,
            alarm_id: alarm,
            reason,
        }),
        Command::Attended { alarm } => Msg::Attended(pb::Attended {
            request_id,
            alarm_id: alarm,
        }),
        Command::List { .. } | Command::Audit { .. } | Command::Help | Command::Quit => {
            return None
        }
    };
    Some(pb::CentreMessage { msg: Some(msg) })
}

fn kind_name(k: i32) -> &'static str {
    match pb::AlarmKind::try_from(k) {
        Ok(pb::AlarmKind::Help) => "help",
        Ok(pb::AlarmKind::Technical) => "technical",
        Ok(pb::AlarmKind::Silent) => "silent",
        Ok(pb::AlarmKind::GeofenceExit) => "geofence-exit",
        _ => "unknown",
    }
}

fn update_name(k: i32) -> &'static str {
    match pb::UpdateKind::try_from(k) {
        Ok(pb::UpdateKind::CancelledByDevice) => "cancelled-by-device",
        Ok(pb::UpdateKind::EscalatedElsewhere) => "escalated-elsewhere",
        Ok(pb::UpdateKind::Closed) => "closed",
        Ok(pb::UpdateKind::Repeated) => "repeated",
        Ok(pb::UpdateKind::Restored) => "restored",
        Ok(pb::UpdateKind::TakenElsewhere) => "taken-elsewhere",
        _ => "unknown",
    }
}

pub fn alarm_json(a: &pb::Alarm) -> Value {
    json!({
        "alarm_id": a.alarm_id,
        "tenant": a.tenant,
        "device": a.device,
        "device_type": a.device_type,
        "kind": kind_name(a.kind),
        "code": a.code,
        "priority": a.priority,
        "position": a.position.as_ref().map(|p| json!({
            "lat": p.lat, "lon": p.lon, "accuracy_m": p.accuracy_m, "time_ms": p.time_ms,
        })),
        "text": a.text,
        "callback": a.callback,
        "state": a.state,
        "holder": a.holder,
        "operator_id": a.operator_id,
        "outcome": a.outcome,
        "escalation_step": a.escalation_step,
        "chain": a.chain,
        "deadline": a.deadline.as_ref().map(|d| json!({
            "kind": if d.kind == pb::DeadlineKind::Accept as i32 { "accept" } else { "receipt" },
            "at_ms": d.at_ms,
        })),
        "repeats": a.repeats,
        "created_ms": a.created_ms,
        "updated_ms": a.updated_ms,
        "reference": a.reference,
    })
}

/// One JSON object for a server message (`--json`); heartbeats are not printed.
pub fn message_json(m: &pb::ServerMessage) -> Option<Value> {
    Some(match m.msg.as_ref()? {
        Out::Welcome(w) => json!({
            "type": "welcome", "centre": w.centre_id, "tenants": w.tenants,
            "resume_after": w.resume_after,
        }),
        Out::Offer(o) => json!({
            "type": "offer", "cursor": o.cursor, "unhandled": o.unhandled,
            "alarm": o.alarm.as_ref().map(alarm_json),
        }),
        Out::Update(u) => json!({
            "type": "update", "cursor": u.cursor, "update": update_name(u.kind),
            "alarm": u.alarm.as_ref().map(alarm_json),
        }),
        Out::Result(r) => json!({
            "type": "result", "request_id": r.request_id, "alarm_id": r.alarm_id,
            "ok": r.code == 0, "code": code_name(tonic::Code::from(r.code)), "message": r.message,
        }),
        Out::Heartbeat(_) => return None,
    })
}

fn alarm_line(a: &pb::Alarm) -> String {
    let mut s = format!(
        "alarm {} {}/{} {} code {} priority {}",
        a.alarm_id,
        a.tenant,
        a.device,
        kind_name(a.kind),
        a.code,
        a.priority
    );
    if let Some(p) = &a.position {
        s += &format!(" at {:.5},{:.5}", p.lat, p.lon);
        if let Some(acc) = p.accuracy_m {
            s += &format!(" ±{acc:.0}m");
        }
    }
    if let Some(t) = &a.text {
        s += &format!(" \"{t}\"");
    }
    if !a.callback.is_empty() {
        s += &format!(" call {}", a.callback.join(", "));
    }
    if a.repeats > 0 {
        s += &format!(" repeated {}x", a.repeats);
    }
    s += &format!(" [{}", a.state);
    if a.escalation_step > 0 {
        s += &format!(", escalation step {}", a.escalation_step);
    }
    s + "]"
}

/// One human-readable line for a server message; heartbeats are not printed.
pub fn message_line(m: &pb::ServerMessage) -> Option<String> {
    Some(match m.msg.as_ref()? {
        Out::Welcome(w) => format!(
            "connected as {} (tenants {}), resuming after cursor {}",
            w.centre_id,
            w.tenants.join(", "),
            w.resume_after
        ),
        Out::Offer(o) => {
            let a = o.alarm.as_ref().map(alarm_line).unwrap_or_default();
            let flag = if o.unhandled { "UNHANDLED " } else { "" };
            format!("{flag}OFFER #{}: {a}", o.cursor)
        }
        Out::Update(u) => {
            let a = u.alarm.as_ref().map(alarm_line).unwrap_or_default();
            format!("update #{} {}: {a}", u.cursor, update_name(u.kind))
        }
        Out::Result(r) if r.code == 0 => {
            format!("ok (request {}, alarm {})", r.request_id, r.alarm_id)
        }
        Out::Result(r) => format!(
            "refused (request {}, alarm {}): {}: {}",
            r.request_id,
            r.alarm_id,
            code_name(tonic::Code::from(r.code)),
            r.message
        ),
        Out::Heartbeat(_) => return None,
    })
}

/// The gRPC name of a status code, e.g. NOT_FOUND.
pub fn code_name(c: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match c {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `CODE: message` for a failed call.
pub fn status_line(s: &tonic::Status) -> String {
    format!("{}: {}", code_name(s.code()), s.message())
}

/// The cursor a message carries, to acknowledge once it is printed.
pub fn cursor_of(m: &pb::ServerMessage) -> Option<u64> {
    match m.msg.as_ref()? {
        Out::Offer(o) => Some(o.cursor),
        Out::Update(u) => Some(u.cursor),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_their_arguments() {
        assert_eq!(
            parse_command("accept 42 op-7").unwrap(),
            Command::Accept {
                alarm: 42,
                operator: "op-7".into()
            }
        );
        assert_eq!(
            parse_command("close 42 visited all is well").unwrap(),
            Command::Close {
                alarm: 42,
                outcome: "visited".into(),
                note: "all is well".into()
            }
        );
        assert_eq!(
            parse_command("  list all ").unwrap(),
            Command::List { all: true }
        );
        assert!(parse_command("accept x op").is_err());
        assert!(parse_command("accept 1").is_err());
        assert!(parse_command("refuse 1").is_err());
        assert!(parse_command("dance").is_err());
        assert!(parse_command("").is_err());
    }

    #[test]
    fn offers_print_as_one_json_object_with_their_alarm() {
        let m = pb::ServerMessage {
            msg: Some(Out::Offer(pb::Offer {
                cursor: 7,
                unhandled: false,
                alarm: Some(pb::Alarm {
                    alarm_id: 42,
                    tenant: "demo".into(),
                    device: "100001".into(),
                    kind: pb::AlarmKind::Help as i32,
                    callback: vec!["gsm:+46701234567".into()],
                    position: Some(pb::Position {
                        lat: 57.7,
                        lon: 11.97,
                        accuracy_m: Some(12.0),
                        time_ms: 1,
                    }),
                    ..Default::default()
                }),
            })),
        };
        let j = message_json(&m).unwrap();
        assert_eq!(j["type"], "offer");
        assert_eq!(j["cursor"], 7);
        assert_eq!(j["alarm"]["alarm_id"], 42);
        assert_eq!(j["alarm"]["kind"], "help");
        assert_eq!(j["alarm"]["position"]["lat"], 57.7);
        assert!(!j.to_string().contains('\n'));
        let line = message_line(&m).unwrap();
        assert!(
            line.starts_with("OFFER #7: alarm 42 demo/100001 help"),
            "{line}"
        );
        assert!(line.contains("call gsm:+46701234567"), "{line}");
        assert_eq!(cursor_of(&m), Some(7));
        let hb = pb::ServerMessage {
            msg: Some(Out::Heartbeat(pb::Heartbeat { server_time_ms: 1 })),
        };
        assert!(message_json(&hb).is_none() && message_line(&hb).is_none());
    }
}
