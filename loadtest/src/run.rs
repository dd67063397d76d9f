//! The library entry point: one run of a scenario against Vaka (and, with `--peer`, the same run
//! against Mosquitto), returning the report and what the table and the plot need.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indicatif::ProgressBar;
use tokio::time::Instant;

use crate::centre::{CentreOptions, Sim};
use crate::fleet::{check_loopback, Fleet};
use crate::mqtt::{self, MqttFleet};
use crate::quic::{Job, QuicFleet, QuicOptions};
use crate::record::{Measured, Path, Recorder};
use crate::report::{Report, Side};
use crate::scenario::{Plan, Scenario};
use crate::schedule::{drive, Schedule};
use crate::sip::{SipFleet, SipOptions};
use crate::sysmon::{pid_by_port, Monitor, ServerUsage};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// vaka/1 over QUIC (mutual TLS with the device certificates under --certs).
    Quic,
    /// SCAIP in SIP MESSAGE over UDP.
    SipUdp,
    /// SCAIP in SIP MESSAGE over TCP.
    SipTcp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// Mosquitto (MQTT QoS 1, persistence on), started by the tool on a spare port.
    Mosquitto,
}

/// One run. Every option has a default that works against `make run`.
#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Events per second, on a fixed schedule (default: the scenario's natural rate for the
    /// number of devices, e.g. a fix every 10 s per device for gps-fleet).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of schedule.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// At most this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Devices to simulate (default: every device of the tenant in --config).
    #[arg(long)]
    pub devices: Option<usize>,
    #[arg(long, value_enum, default_value_t = Transport::Quic)]
    pub transport: Transport,
    /// The server's device address (default: from --config, with 0.0.0.0 as 127.0.0.1).
    #[arg(long)]
    pub server: Option<SocketAddr>,
    /// The server's configuration: devices, passwords, centre token, ports.
    #[arg(long, default_value = "config/vaka.toml")]
    pub config: PathBuf,
    /// The tenant whose devices are simulated (default: the one with the most devices).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Where `vaka certs` wrote the PEM files.
    #[arg(long, default_value = "certs")]
    pub certs: PathBuf,
    /// UDP sockets the devices share: QUIC client endpoints, or SIP/UDP sockets.
    #[arg(long, default_value_t = 4)]
    pub endpoints: usize,
    /// Device connections (QUIC, SIP/TCP) set up at once.
    #[arg(long, default_value_t = 64)]
    pub connect_parallel: usize,
    /// SIP: milliseconds a device waits after `<mrs>` snu 4 (HOLD) before it resends the same
    /// request (SCAIP devices wait 5-20 s; short for load runs).
    #[arg(long, default_value_t = 1000)]
    pub sip_hold_retry_ms: u64,
    /// SIP: a MESSAGE without a final response this long (at most Timer F, 32 s: a longer value
    /// still gives up then), or without its `<mrs>` this long after the 200 OK, counts as an
    /// error (`timeout`, `no_mrs`).
    #[arg(long, default_value_t = 32_000)]
    pub sip_timeout_ms: u64,
    /// SIP: the user part of the Request-URI (the server's `sip.accept_users`).
    #[arg(long, default_value = "alarm")]
    pub sip_request_user: String,
    /// Run the same pattern against a peer too and report both, with the ratio.
    #[arg(long, value_enum)]
    pub peer: Option<Peer>,
    /// The mosquitto binary (default: found on PATH or in /usr/sbin).
    #[arg(long)]
    pub mosquitto: Option<PathBuf>,
    /// Mosquitto writes its store after this many changes (1: after every message).
    #[arg(long, default_value_t = 1)]
    pub mosquitto_autosave_changes: u32,
    /// Simulate the alarm centre (gRPC): alarms count as delivered when offered to it, and
    /// acked alarms never offered are lost.
    #[arg(long)]
    pub centre: bool,
    /// The centre API's address (default: from --config).
    #[arg(long)]
    pub centre_addr: Option<SocketAddr>,
    /// The centre's bearer token (default: the token of a centre serving the tenant in --config).
    #[arg(long)]
    pub centre_token: Option<String>,
    /// Milliseconds the simulated operator takes from receipt to accept (then it closes).
    #[arg(long, default_value_t = 0)]
    pub operator_delay_ms: u64,
    /// The centre's first Hello resumes after this cursor (default: after its last acknowledged).
    #[arg(long)]
    pub centre_resume_after: Option<u64>,
    /// The server process, for RSS and CPU (default: the process owning the server's port).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Seconds to wait for outstanding replies and offers after the schedule ends.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Seed of the scenario's randomness (positions, the mixed scenario's kinds).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
}

/// What one side of a run gives the table and the plot.
pub struct SideRun {
    pub label: String,
    pub measured: Measured,
    pub side: Side,
    pub server: Option<ServerUsage>,
}

pub struct Outcome {
    pub report: Report,
    pub ours: SideRun,
    pub peer: Option<SideRun>,
}

/// Everything fixed before the first event: the same for both sides of a run.
struct Setup {
    scenario: Scenario,
    schedule: Schedule,
    devices: usize,
    seed: u64,
    nonce: u64,
    drain: Duration,
}

enum Devices {
    Quic(QuicFleet),
    Sip(SipFleet),
    Mqtt(MqttFleet),
}

impl Devices {
    fn send(&self, job: Job) {
        match self {
            Devices::Quic(f) => f.send(job),
            Devices::Sip(f) => f.send(job),
            Devices::Mqtt(f) => f.send(job),
        }
    }
    async fn finish(self, deadline: Instant) {
        match self {
            Devices::Quic(f) => f.finish(deadline).await,
            Devices::Sip(f) => f.finish(deadline).await,
            Devices::Mqtt(f) => f.finish(deadline).await,
        }
    }
}

fn wall_ms(at: Instant) -> i64 {
    let ago = Instant::now().saturating_duration_since(at);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(ago).as_millis() as i64
}

/// Runs the scenario of `opts`. `progress`, if given, is driven while the run goes on.
pub async fn run(opts: &Options, progress: Option<ProgressBar>) -> Result<Outcome, String> {
    let fleet = Fleet::from_config(&opts.config, opts.tenant.as_deref())?;
    let devices = opts.devices.unwrap_or(fleet.devices.len());
    if devices == 0 || devices > fleet.devices.len() {
        return Err(format!(
            "--devices {devices}: {} has {} devices of tenant {:?}; write a bigger fleet with \
             `vaka-load fleet-config` and make its certificates with `vaka certs`",
            opts.config.display(),
            fleet.devices.len(),
            fleet.tenant
        ));
    }
    if !(opts.duration > 0.0 && opts.duration.is_finite()) {
        return Err("--duration must be a positive number of seconds".into());
    }
    let duration = Duration::from_secs_f64(opts.duration);
    let rate = opts
        .rate
        .unwrap_or_else(|| opts.scenario.default_rate(devices, duration));
    if !(rate > 0.0 && rate.is_finite()) {
        return Err("--rate must be a positive number of events per second".into());
    }
    let count = match (opts.count, opts.scenario.natural_count(devices)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let setup = Setup {
        scenario: opts.scenario,
        schedule: Schedule::new(rate, duration, count),
        devices,
        seed: opts.seed,
        nonce,
        drain: Duration::from_secs_f64(opts.drain.max(0.0)),
    };
    if setup.schedule.count == 0 {
        return Err("the schedule is empty: raise --rate, --duration or --count".into());
    }

    let centre_opts = centre_options(opts, &fleet)?;
    let rec = Arc::new(Recorder::new(Instant::now()));
    let bar = progress.clone();
    let connected = |k: usize| {
        if let Some(b) = &bar {
            b.set_message(format!("vaka: {k}/{devices} devices connected"));
        }
    };
    let (devs, pid) = match opts.transport {
        Transport::Quic => {
            let server = opts
                .server
                .or(fleet.quic)
                .unwrap_or_else(|| "127.0.0.1:4433".parse().expect("valid address"));
            check_loopback(server, opts.allow_remote)?;
            let pid = opts.server_pid.or_else(|| pid_by_port(server.port()));
            let qo = QuicOptions {
                server,
                certs: opts.certs.clone(),
                endpoints: opts.endpoints,
                connect_parallel: opts.connect_parallel,
            };
            let quic = QuicFleet::connect(&fleet, devices, &qo, rec.clone(), connected).await?;
            (Devices::Quic(quic), pid)
        }
        Transport::SipUdp | Transport::SipTcp => {
            let tcp = opts.transport == Transport::SipTcp;
            let server = opts
                .server
                .or(if tcp { fleet.sip_tcp } else { fleet.sip_udp })
                .unwrap_or_else(|| "127.0.0.1:5060".parse().expect("valid address"));
            check_loopback(server, opts.allow_remote)?;
            let so = sip_options(opts, server, tcp)?;
            crate::sip::check_devices(&fleet, devices)?;
            let pid = opts.server_pid.or_else(|| pid_by_port(server.port()));
            let sip = SipFleet::connect(&fleet, devices, &so, rec.clone(), connected).await?;
            (Devices::Sip(sip), pid)
        }
    };
    let centre = match centre_opts {
        Some(co) => Some(Sim::start(co, rec.clone()).await?),
        None => None,
    };
    let label = format!("vaka/{}", transport_name(opts.transport));
    let ours = side(&setup, &label, devs, rec, pid, centre.is_some(), &progress).await;
    if let Some(c) = centre {
        c.stop().await;
    }

    let peer = match opts.peer {
        None => None,
        Some(Peer::Mosquitto) => {
            let bin = mqtt::find_mosquitto(opts.mosquitto.as_deref())?;
            let broker = mqtt::Broker::start(&bin, opts.mosquitto_autosave_changes).await?;
            let names: Vec<String> = fleet
                .devices
                .iter()
                .take(devices)
                .map(|d| d.id.clone())
                .collect();
            let rec = Arc::new(Recorder::new(Instant::now()));
            let centre = mqtt::Centre::start(broker.port, nonce, rec.clone()).await?;
            let bar = progress.clone();
            let fleet = MqttFleet::connect(
                names,
                broker.port,
                nonce,
                opts.connect_parallel,
                rec.clone(),
                |k| {
                    if let Some(b) = &bar {
                        b.set_message(format!("mosquitto: {k}/{devices} devices connected"));
                    }
                },
            )
            .await?;
            let r = side(
                &setup,
                "mosquitto",
                Devices::Mqtt(fleet),
                rec,
                Some(broker.pid()),
                false,
                &progress,
            )
            .await;
            centre.stop().await;
            drop(broker);
            Some(r)
        }
    };
    let report = Report::new(ours.side.clone(), peer.as_ref().map(|p| p.side.clone()));
    Ok(Outcome { report, ours, peer })
}

fn sip_options(opts: &Options, server: SocketAddr, tcp: bool) -> Result<SipOptions, String> {
    if opts.sip_hold_retry_ms == 0 {
        return Err("--sip-hold-retry-ms must be at least 1".into());
    }
    if opts.sip_timeout_ms == 0 {
        return Err("--sip-timeout-ms must be at least 1".into());
    }
    let user = &opts.sip_request_user;
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(c);
    if user.is_empty() || !user.chars().all(ok) {
        return Err(format!(
            "--sip-request-user {user:?}: must be a SIP user part (letters, digits, -_.!~*'()&=+$,;?/)"
        ));
    }
    Ok(SipOptions {
        server,
        tcp,
        sockets: opts.endpoints.max(1),
        connect_parallel: opts.connect_parallel,
        hold_retry: Duration::from_millis(opts.sip_hold_retry_ms),
        timeout: Duration::from_millis(opts.sip_timeout_ms),
        request_user: user.clone(),
    })
}

fn centre_options(opts: &Options, fleet: &Fleet) -> Result<Option<CentreOptions>, String> {
    if !opts.centre {
        return Ok(None);
    }
    let addr = opts
        .centre_addr
        .or(fleet.grpc)
        .unwrap_or_else(|| "127.0.0.1:50051".parse().expect("valid address"));
    check_loopback(addr, opts.allow_remote)?;
    let token = opts
        .centre_token
        .clone()
        .or_else(|| fleet.centre_token.clone())
        .ok_or_else(|| {
            format!(
                "--centre: no centre with a token serves tenant {:?} in the config; pass --centre-token",
                fleet.tenant
            )
        })?;
    Ok(Some(CentreOptions {
        addr,
        token,
        operator_delay: Duration::from_millis(opts.operator_delay_ms),
        resume_after: opts.centre_resume_after,
        ca: fleet.grpc_tls.then(|| opts.certs.join("server-ca.pem")),
    }))
}

pub fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Quic => "quic",
        Transport::SipUdp => "sip-udp",
        Transport::SipTcp => "sip-tcp",
    }
}

/// Runs the schedule over connected devices and waits for what is due.
async fn side(
    setup: &Setup,
    label: &str,
    devices: Devices,
    rec: Arc<Recorder>,
    pid: Option<u32>,
    alarms_to_centre: bool,
    progress: &Option<ProgressBar>,
) -> SideRun {
    let monitor = pid.map(Monitor::start);
    // The mosquitto subscriber receives everything; Vaka offers only alarms to a centre.
    let all_to_centre = matches!(devices, Devices::Mqtt(_));
    let start = Instant::now() + Duration::from_millis(50);
    rec.begin(start);
    let ticker = progress.clone().map(|bar| {
        let rec = rec.clone();
        let (label, total) = (label.to_string(), setup.schedule.count);
        bar.set_length(total);
        bar.set_position(0);
        tokio::spawn(async move {
            loop {
                let (sent, acked, errors, p99) = rec.progress();
                bar.set_position(sent);
                bar.set_message(format!(
                    "{label}: acked {acked}, errors {errors}, ack p99 {p99:.1} ms"
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    });
    let mut plan = Plan::new(setup.scenario, setup.devices, setup.seed, setup.nonce);
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    drive(setup.schedule, start, stop, |slot, at| {
        let planned = plan.event(slot, wall_ms(at));
        let path = if all_to_centre || (alarms_to_centre && planned.kind.is_alarm()) {
            Path::EndsAtOffer
        } else {
            Path::EndsAtAck
        };
        devices.send(Job { planned, at, path });
    })
    .await;
    let deadline = Instant::now() + setup.drain;
    devices.finish(deadline).await;
    while rec.awaiting_offer() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(t) = ticker {
        t.abort();
    }
    let server = monitor.map(|m| m.usage());
    let measured = rec.finish();
    SideRun {
        label: label.to_string(),
        side: Side::of(&measured),
        measured,
        server,
    }
}
