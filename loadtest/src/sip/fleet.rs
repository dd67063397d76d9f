//! The fleet: sets up the devices' wires (shared UDP sockets after a probe of the server, or one
//! TCP connection each, a bounded number at a time), starts a task per device, hands them the
//! dispatcher's jobs and ends them.
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::device::{Common, Device};
use super::inbox::Input;
use super::mapping::check_devices;
use super::wire::{
    bind_udp, connect_tcp, local_ip_towards, probe_udp, udp_reader, AbortOnDrop, Wire,
};
use super::SipOptions;
use crate::fleet::Fleet;
use crate::queues::{DeviceQueues, GiveUp};
use crate::quic::Job;
use crate::record::Recorder;

/// The SCAIP devices of a run, each served by its own task.
pub struct SipFleet {
    /// Over TCP, a device that could not connect has no queue.
    queues: DeviceQueues<Input>,
    /// UDP socket readers, stopped at the end.
    readers: Vec<AbortOnDrop>,
}

impl SipFleet {
    /// Sets up the first `n` devices of `fleet` (checked with [`check_devices`]): over UDP the
    /// shared sockets (after an OPTIONS probe of the server), over TCP one connection per device
    /// (`connected(k)` as they come up; devices that cannot connect are counted as `connect`
    /// errors, and the run goes on without them unless none connected).
    pub async fn connect(
        fleet: &Fleet,
        n: usize,
        opts: &SipOptions,
        recorder: Arc<Recorder>,
        connected: impl Fn(usize),
    ) -> Result<SipFleet, String> {
        check_devices(fleet, n)?;
        let devices = &fleet.devices[..n];
        let common = Arc::new(Common {
            server: opts.server,
            request_uri: format!("sip:{}@{}", opts.request_user, opts.server),
            hold_retry: opts.hold_retry,
            timeout: opts.timeout,
            rec: recorder.clone(),
        });
        let names = devices.iter().map(|d| d.id.clone()).collect();
        let mut queues = DeviceQueues::new(names, recorder.clone());
        let stop = queues.stop_signal();
        let device = |i: usize, wire: Wire| Device::new(i, &devices[i], common.clone(), wire);
        let mut readers = Vec::new();
        if !opts.tcp {
            let ip = local_ip_towards(opts.server)
                .map_err(|e| format!("no route to {}: {e}", opts.server))?;
            let socks = (0..opts.sockets.max(1))
                .map(|_| bind_udp(ip).map(Arc::new))
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|e| format!("SIP/UDP socket: {e}"))?;
            probe_udp(&socks[0], opts.server, &common.request_uri).await?;
            let mut senders = Vec::with_capacity(n);
            let mut receivers = Vec::with_capacity(n);
            for _ in 0..n {
                let (tx, rx) = mpsc::unbounded_channel();
                senders.push(tx);
                receivers.push(rx);
            }
            let locals: Vec<Arc<str>> = socks
                .iter()
                .map(|s| s.local_addr().map(|a| Arc::from(a.to_string())))
                .collect::<std::io::Result<_>>()
                .map_err(|e| format!("SIP/UDP socket: {e}"))?;
            for (i, rx) in receivers.into_iter().enumerate() {
                let k = i % socks.len();
                let wire = Wire::udp(socks[k].clone(), locals[k].clone());
                let task = tokio::spawn(device(i, wire).run(rx, stop.clone()));
                queues.start(i, senders[i].clone(), task);
            }
            let senders = Arc::new(senders);
            for s in &socks {
                readers.push(AbortOnDrop(tokio::spawn(udp_reader(
                    s.clone(),
                    senders.clone(),
                    recorder.clone(),
                ))));
            }
            connected(n);
        } else {
            let server = opts.server;
            queues
                .connect_each(
                    opts.connect_parallel,
                    GiveUp::Never,
                    |_, name| {
                        // The device's queue exists before its connection: the reader feeds it.
                        let (tx, rx) = mpsc::unbounded_channel();
                        let rec = recorder.clone();
                        async move {
                            let conn = connect_tcp(server, &tx, 0, &rec)
                                .await
                                .map_err(|e| format!("device {name}: SIP/TCP to {server}: {e}"))?;
                            Ok((tx, rx, conn))
                        }
                    },
                    |i, _, (tx, rx, conn)| {
                        let wire = Wire::tcp(conn, tx.clone());
                        (tx, tokio::spawn(device(i, wire).run(rx, stop.clone())))
                    },
                    connected,
                )
                .await?;
        }
        Ok(SipFleet { queues, readers })
    }

    /// Hands a due event to its device's task; never waits.
    pub fn send(&self, job: Job) {
        self.queues.send(job);
    }

    /// Stops sending and waits for the `<mrs>` still due, at most until `deadline`; events still
    /// unanswered then are counted as `unanswered`. Closes every socket and connection.
    pub async fn finish(self, deadline: Instant) {
        self.queues.finish(deadline).await;
        drop(self.readers); // the UDP readers last: device tasks get responses until they end
    }
}
