//! `vaka-centre`: a console alarm centre. Connects to Vaka's centre API, prints every offer and
//! update (with `--json`, one JSON object per line on stdout), confirms receipt of offers at once,
//! acknowledges what it printed, and takes an operator's commands on stdin (`help` lists them).
use clap::Parser;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use vaka_centre::console::{self, ClientTls, Command};
use vaka_centre::pb::{self, centre_message::Msg, server_message::Msg as Out};

#[derive(Parser)]
#[command(
    name = "vaka-centre",
    version,
    about = "A console alarm centre for Vaka: prints offers, lets an operator accept and close"
)]
struct Args {
    /// The centre API, host:port or a URL.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// The centre's bearer token (config: centres[].token).
    #[arg(long)]
    token: Option<String>,
    /// Print one JSON object per offer, update and result on stdout.
    #[arg(long)]
    json: bool,
    /// Resume after this cursor instead of the last one acknowledged.
    #[arg(long)]
    resume_after: Option<u64>,
    /// CA certificate (PEM) of the server; turns on TLS.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate (PEM, CN = centre id) for mTLS, with --key.
    #[arg(long)]
    cert: Option<PathBuf>,
    #[arg(long)]
    key: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.token.is_none() && args.cert.is_none() {
        eprintln!("error: give --token (or --cert and --key for mTLS)");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads stdin on a plain thread (tokio's stdin needs a feature the workspace does not enable).
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

struct Console {
    json: bool,
    client: console::Client,
    up: mpsc::Sender<pb::CentreMessage>,
    next_request: u64,
}

impl Console {
    /// Status and help text: stderr in JSON mode, so stdout stays one object per line.
    fn note(&self, s: &str) {
        if self.json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }

    async fn send(&self, msg: Msg) -> Result<(), String> {
        self.up
            .send(pb::CentreMessage { msg: Some(msg) })
            .await
            .map_err(|_| "stream closed".to_string())
    }

    async fn on_message(&mut self, m: pb::ServerMessage) -> Result<(), String> {
        if self.json {
            if let Some(j) = console::message_json(&m) {
                println!("{j}");
            }
        } else if let Some(line) = console::message_line(&m) {
            println!("{line}");
        }
        if let Some(Out::Offer(o)) = &m.msg {
            let alarm_id = o.alarm.as_ref().map_or(0, |a| a.alarm_id);
            self.next_request += 1;
            let r = pb::Receipt {
                request_id: self.next_request,
                alarm_id,
            };
            self.send(Msg::Receipt(r)).await?;
        }
        if let Some(cursor) = console::cursor_of(&m) {
            self.send(Msg::Ack(pb::Ack { cursor })).await?;
        }
        Ok(())
    }

    /// Returns false to quit.
    async fn on_line(&mut self, line: &str) -> Result<bool, String> {
        if line.trim().is_empty() {
            return Ok(true);
        }
        let cmd = match console::parse_command(line) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return Ok(true);
            }
        };
        match &cmd {
            Command::Quit => return Ok(false),
            Command::Help => self.note(console::HELP),
            Command::List { all } => self.list(*all).await,
            Command::Audit { alarm } => self.audit(*alarm).await,
            _ => {
                self.next_request += 1;
                if let Some(m) = console::command_message(&cmd, self.next_request) {
                    self.up
                        .send(m)
                        .await
                        .map_err(|_| "stream closed".to_string())?;
                }
            }
        }
        Ok(true)
    }

    async fn list(&mut self, all: bool) {
        let req = pb::ListOpenAlarmsRequest {
            all_tenant_alarms: all,
            ..Default::default()
        };
        match self.client.list_open_alarms(req).await {
            Ok(r) => {
                let alarms = r.into_inner().alarms;
                if alarms.is_empty() && !self.json {
                    println!("no open alarms");
                }
                for a in &alarms {
                    if self.json {
                        println!(
                            "{}",
                            serde_json::json!({"type": "open", "alarm": console::alarm_json(a)})
                        );
                    } else {
                        println!("open: {}", console::alarm_json(a));
                    }
                }
            }
            Err(s) => eprintln!("list: {}", console::status_line(&s)),
        }
    }

    async fn audit(&mut self, alarm_id: u64) {
        match self
            .client
            .get_audit(pb::GetAuditRequest { alarm_id })
            .await
        {
            Ok(r) => {
                for rec in r.into_inner().records {
                    if self.json {
                        println!(
                            "{}",
                            serde_json::json!({"type": "audit", "alarm_id": alarm_id,
                                "at_ms": rec.at_ms, "actor": rec.actor, "action": rec.action,
                                "reason": rec.reason})
                        );
                    } else {
                        println!(
                            "audit {alarm_id}: {} {} {} {}",
                            rec.at_ms, rec.actor, rec.action, rec.reason
                        );
                    }
                }
            }
            Err(s) => eprintln!("audit: {}", console::status_line(&s)),
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let tls = ClientTls {
        ca: args.ca.as_deref(),
        cert: args.cert.as_deref(),
        key: args.key.as_deref(),
    };
    let mut client = console::connect(&args.addr, args.token.as_deref(), tls).await?;
    let (up, rx) = mpsc::channel(64);
    let hello = pb::Hello {
        resume_after: args.resume_after,
        client: format!("vaka-centre {}", env!("CARGO_PKG_VERSION")),
    };
    up.send(pb::CentreMessage {
        msg: Some(Msg::Hello(hello)),
    })
    .await
    .map_err(|_| "stream closed".to_string())?;
    let mut down = client
        .session(ReceiverStream::new(rx))
        .await
        .map_err(|s| console::status_line(&s))?
        .into_inner();
    let mut c = Console {
        json: args.json,
        client,
        up,
        next_request: 0,
    };
    let mut lines = stdin_lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            m = down.message() => match m {
                Ok(Some(m)) => c.on_message(m).await?,
                Ok(None) => return Err("the server closed the stream".into()),
                Err(s) => return Err(console::status_line(&s)),
            },
            line = lines.recv(), if stdin_open => match line {
                Some(l) => {
                    if !c.on_line(&l).await? {
                        return Ok(());
                    }
                }
                // No more commands (e.g. stdin is /dev/null): keep printing.
                None => stdin_open = false,
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
