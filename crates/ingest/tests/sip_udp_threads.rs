//! Where the SIP/UDP lanes do their work (invariant 9): telemetry on the front's thread of
//! lower priority (nice 10), so a heartbeat flood's digests, transactions and answers never
//! queue in the engine's runtime ahead of an alarm's, and alarms in the engine's runtime.
//! Seen from the thread each message's handling logs from (a tracing layer records it).
mod sip_support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sip_support::*;
use tokio::net::UdpSocket;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// A message that triages (it carries an `Authorization` header and its body says `mty`) but
/// does not parse as SIP (no Via, From, ...): dropped, logged at debug by whichever thread
/// handled it.
const UNPARSEABLE: &str = "unparseable SIP message dropped";

/// The thread (name, kernel id) each unparseable message from a peer was handled on.
#[derive(Clone, Default)]
struct Handled(Arc<Mutex<Vec<(String, String, i32)>>>);

#[derive(Default)]
struct Fields {
    message: String,
    peer: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "peer" => self.peer = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Handled {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        if f.message == UNPARSEABLE {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            let tid = unsafe { libc::gettid() };
            self.0.lock().unwrap().push((f.peer, name, tid));
        }
    }
}

fn handled() -> Handled {
    static H: OnceLock<Handled> = OnceLock::new();
    H.get_or_init(|| {
        let h = Handled::default();
        let subscriber = tracing_subscriber::registry().with(h.clone());
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        h
    })
    .clone()
}

/// Sends one unparseable MESSAGE whose body says `mty` from `sock`; the thread that handled it
/// (name, kernel thread id).
async fn handled_on(h: &Handled, sock: &UdpSocket, to: SocketAddr, mty: &str) -> (String, i32) {
    let peer = sock.local_addr().unwrap().to_string();
    let before = h.0.lock().unwrap().len();
    let datagram = format!(
        "MESSAGE sip:vaka@h SIP/2.0\r\nAuthorization: Digest x\r\n\r\n<mrq><mty>{mty}</mty></mrq>"
    );
    sock.send_to(datagram.as_bytes(), to).await.unwrap();
    for _ in 0..500 {
        let seen = h.0.lock().unwrap()[before..]
            .iter()
            .find(|(p, _, _)| *p == peer)
            .map(|(_, name, tid)| (name.clone(), *tid));
        if let Some(t) = seen {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the {mty} message was not handled within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_handled_on_the_thread_of_lower_priority_and_alarms_are_not() {
    let h = handled();
    let env = Env::start().await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    let (telemetry, tid) = handled_on(&h, &sock, env.udp(), "PI").await;
    assert_eq!(
        telemetry, "vaka-sip-telem",
        "a heartbeat handled on {telemetry}"
    );
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
    assert_eq!(nice, 10, "the telemetry thread's nice value");
    let (info, _) = handled_on(&h, &sock, env.udp(), "IN").await;
    assert_eq!(info, "vaka-sip-telem");

    let (alarm, _) = handled_on(&h, &sock, env.udp(), "ME").await;
    assert_ne!(
        alarm, "vaka-sip-telem",
        "an alarm handled on the telemetry thread"
    );
    assert!(
        alarm.starts_with("tokio-r"),
        "an alarm handled in the engine's runtime, not on {alarm}"
    );
    env.stop().await;
}
