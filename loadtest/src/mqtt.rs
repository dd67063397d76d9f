//! The peer: the same device pattern as MQTT QoS 1 (rumqttc) to a Mosquitto broker that this
//! tool starts on a spare loopback port with persistence on, and one subscriber as the "centre".
//! Payloads are the same protobuf events vaka/1 carries, one client per device. An event is acked
//! at its PUBACK and delivered when the subscriber receives it.
use std::collections::{HashMap, VecDeque};
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use vaka_proto::{pb, Message};

use crate::queues::{DeviceQueues, GiveUp};
use crate::quic::{to_event, Job};
use crate::record::Recorder;

const TOPIC_ROOT: &str = "vaka-load";

/// Finds the mosquitto binary: `explicit`, else on PATH or in the sbin directories Debian uses.
pub fn find_mosquitto(explicit: Option<&FsPath>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("mosquitto binary {} not found", p.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "mosquitto not found (on PATH or in /usr/sbin): install it with \
             `scripts/install-deps.sh` (Debian package mosquitto) or pass --mosquitto PATH"
                .to_string()
        })
}

/// A Mosquitto broker of our own: loopback only, persistence on. Killed when dropped.
pub struct Broker {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// The broker configuration. `autosave_changes`: the in-memory store is written to disk after
/// this many changes (1 = after every message).
pub fn broker_config(port: u16, dir: &FsPath, autosave_changes: u32) -> String {
    // Started as root, mosquitto drops to the user `mosquitto`, which cannot write our temp
    // directory: stay root then (for a non-root user the directive has no effect).
    let user = if running_as_root() { "user root\n" } else { "" };
    format!(
        "{user}listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence true\n\
         persistence_location {}/\n\
         autosave_on_changes true\n\
         autosave_interval {autosave_changes}\n\
         max_queued_messages 0\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n",
        dir.display()
    )
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

impl Broker {
    pub async fn start(bin: &FsPath, autosave_changes: u32) -> Result<Broker, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        // A spare port: bind, note it, release it for the broker.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("spare port: {e}"))?
            .port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, broker_config(port, dir.path(), autosave_changes))
            .map_err(|e| format!("{}: {e}", conf.display()))?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut broker = Broker { child, port, dir };
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(broker);
            }
            if let Ok(Some(status)) = broker.child.try_wait() {
                return Err(format!(
                    "mosquitto exited at start ({status}); see its stderr above"
                ));
            }
            if Instant::now() > until {
                return Err(format!(
                    "mosquitto did not listen on port {port} within 10 s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where mosquitto writes its persistent store.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.db")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(id: String, port: u16, clean: bool) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(clean)
        .set_inflight(1000)
        .set_request_channel_capacity(100_000)
        .set_max_packet_size(1 << 20, 1 << 20);
    o
}

/// Polls until the broker's CONNACK (and SUBACK, when `subscribe`).
async fn handshake(ev: &mut EventLoop, subscribe: bool) -> Result<(), String> {
    let mut connected = false;
    let wait = async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    if !subscribe {
                        return Ok(());
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) if connected => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| Err("no CONNACK within 10 s".into()))
}

/// The subscriber standing in for the centre: every message it receives is delivered.
pub struct Centre {
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Centre {
    pub async fn start(port: u16, nonce: u64, rec: Arc<Recorder>) -> Result<Centre, String> {
        let (client, mut ev) = AsyncClient::new(
            options(format!("vaka-load-centre-{nonce}"), port, false),
            1024,
        );
        client
            .subscribe(format!("{TOPIC_ROOT}/#"), QoS::AtLeastOnce)
            .await
            .map_err(|e| e.to_string())?;
        handshake(&mut ev, true)
            .await
            .map_err(|e| format!("subscriber: {e}"))?;
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop_rx.changed() => break,
                    e = ev.poll() => match e {
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let device = p.topic.rsplit('/').next().unwrap_or_default();
                            match pb::Event::decode(p.payload.as_ref()) {
                                Ok(event) => { rec.offered(device, &event.key); }
                                Err(_) => rec.error_kind("centre_decode", 1),
                            }
                        }
                        Ok(_) => {}
                        Err(_) => {
                            rec.error_kind("centre_connection", 1);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            let _ = client.disconnect().await;
        });
        Ok(Centre { task, stop })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One MQTT client per device.
pub struct MqttFleet {
    queues: DeviceQueues<Job>,
}

impl MqttFleet {
    pub async fn connect(
        names: Vec<String>,
        port: u16,
        nonce: u64,
        parallel: usize,
        recorder: Arc<Recorder>,
        connected: impl Fn(usize),
    ) -> Result<MqttFleet, String> {
        let mut queues = DeviceQueues::new(names, recorder.clone());
        let stop = queues.stop_signal();
        queues
            .connect_each(
                parallel,
                GiveUp::Never,
                |_, name| {
                    let id = format!("vaka-load-{nonce}-{name}");
                    async move {
                        let (client, mut ev) = AsyncClient::new(options(id, port, true), 100_000);
                        handshake(&mut ev, false)
                            .await
                            .map_err(|e| format!("mqtt device {name}: {e}"))?;
                        Ok((client, ev))
                    }
                },
                |_, name, (client, ev)| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let topic = format!("{TOPIC_ROOT}/{name}");
                    let task = device_task(
                        client,
                        ev,
                        name.into(),
                        topic,
                        rx,
                        recorder.clone(),
                        stop.clone(),
                    );
                    (tx, tokio::spawn(task))
                },
                connected,
            )
            .await?;
        Ok(MqttFleet { queues })
    }

    /// Hands a due event to its device's task; never waits.
    pub fn send(&self, job: Job) {
        self.queues.send(job);
    }

    /// Like `QuicFleet::finish`: waits for the PUBACKs still due, at most until `deadline`.
    pub async fn finish(self, deadline: Instant) {
        self.queues.finish(deadline).await;
    }
}

async fn device_task(
    client: AsyncClient,
    mut ev: EventLoop,
    name: String,
    topic: String,
    mut queue: mpsc::UnboundedReceiver<Job>,
    rec: Arc<Recorder>,
    mut stop: watch::Receiver<bool>,
) {
    // Publishes go out in the order they were queued: `queued` pairs each outgoing packet id with
    // its job; `inflight` waits for the PUBACK.
    let mut queued: VecDeque<Job> = VecDeque::new();
    let mut inflight: HashMap<u16, Job> = HashMap::new();
    let mut open = true;
    while open || !queued.is_empty() || !inflight.is_empty() {
        tokio::select! {
            job = queue.recv(), if open => {
                let Some(job) = job else {
                    open = false;
                    continue;
                };
                let payload = to_event(&job.planned).encode_to_vec();
                // try_publish: the event loop is polled by this same task, so waiting for room
                // here could never end.
                match client.try_publish(&topic, QoS::AtLeastOnce, false, payload) {
                    Ok(()) => queued.push_back(job),
                    Err(_) => rec.error(&name, &job.planned.key, "client_queue_full"),
                }
            }
            e = ev.poll() => match e {
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(job) = queued.pop_front() {
                        inflight.insert(pkid, job);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(job) = inflight.remove(&ack.pkid) {
                        rec.acked(&name, &job.planned.key, job.at, job.path, false);
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    // rumqttc reconnects on the next poll and resends what is in flight.
                    rec.error_kind("connection", 1);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    for job in queued
        .into_iter()
        .chain(inflight.into_values())
        .chain(std::iter::from_fn(|| queue.try_recv().ok()))
    {
        rec.error(&name, &job.planned.key, "unanswered");
    }
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_config_is_loopback_and_persistent() {
        let c = broker_config(18830, FsPath::new("/tmp/x"), 1);
        for line in [
            "listener 18830 127.0.0.1",
            "persistence true",
            "persistence_location /tmp/x/",
            "autosave_on_changes true",
            "autosave_interval 1",
        ] {
            assert!(c.lines().any(|l| l == line), "{line} missing in\n{c}");
        }
    }

    /// With autosave after every change, a QoS 1 message queued for an offline persistent
    /// subscriber (our "centre" uses such a session) is written to the broker's store file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_broker_persists_what_it_queues() {
        let bin = find_mosquitto(None)
            .expect("mosquitto is needed for this test: run scripts/install-deps.sh");
        let broker = Broker::start(&bin, 1).await.unwrap();
        let (sub, mut sub_ev) =
            AsyncClient::new(options("persist-sub".into(), broker.port, false), 10);
        sub.subscribe("vaka-load/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        handshake(&mut sub_ev, true).await.unwrap();
        sub.disconnect().await.unwrap();
        while !matches!(
            sub_ev.poll().await,
            Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)
        ) {}
        drop(sub_ev);

        let (client, mut ev) =
            AsyncClient::new(options("persist-pub".into(), broker.port, true), 10);
        handshake(&mut ev, false).await.unwrap();
        client
            .publish("vaka-load/x", QoS::AtLeastOnce, false, b"payload".to_vec())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while !matches!(ev.poll().await, Ok(Event::Incoming(Packet::PubAck(_)))) {}
        })
        .await
        .expect("PUBACK within 5 s");
        let db = broker.db_path();
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let content = std::fs::read(&db).unwrap_or_default();
                if content.windows(7).any(|w| w == b"payload") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the queued message is not in {}", db.display()));
    }

    #[test]
    fn a_missing_binary_is_named() {
        let e = find_mosquitto(Some(FsPath::new("/nonexistent/mosquitto"))).unwrap_err();
        assert!(e.contains("/nonexistent/mosquitto"), "{e}");
    }
}
