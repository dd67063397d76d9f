//! Invariant 13 on the whole binary: `vaka serve` under `ulimit -n 256` with hundreds of idle and
//! trickling SIP/TCP connections without credentials. The store keeps committing, alarms over
//! UDP, QUIC and from an authenticated TCP device pass, and the centre API keeps accepting.
#[path = "support/binary.rs"]
mod binary;
#[path = "../crates/ingest/tests/sip_support/mod.rs"]
mod sip_support;

use binary::{free_tcp_port, free_udp_port, vaka_bin};
use sip_support::{mrq, StreamDevice, UdpDevice, PASSWORD};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use vaka_scaip::scaip::Snu;

const DEVICE: &str = "100001";
const ALARM: &str = "<stc>0010</stc><pri>5</pri>";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn centre_api_accepts(grpc: SocketAddr) -> bool {
    let Ok(ep) = tonic::transport::Endpoint::from_shared(format!("http://{grpc}")) else {
        return false;
    };
    let ep = ep.connect_timeout(Duration::from_secs(2));
    match ep.connect().await {
        Ok(ch) => HealthClient::new(ch)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok(),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_descriptor_flood_of_strangers_starves_neither_the_store_nor_devices_nor_centres() {
    let dir = tempfile::tempdir().unwrap();
    let udp: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let tcp: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let grpc: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let http = free_tcp_port();
    let text = format!(
        "[server]\ndata_dir = \"{data}\"\nlog_level = \"info\"\nshutdown_timeout_secs = 5\n\
         [listen]\nsip_udp = \"{udp}\"\nsip_tcp = \"{tcp}\"\ngrpc = \"{grpc}\"\n\
         http = \"127.0.0.1:{http}\"\n\
         [router]\nshards = 1\n\
         [store]\nmax_open_files = 64\n\
         [sip]\nudp = true\ntcp = true\ntls = false\nheader_timeout_secs = 2\n\
         [[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
         [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-centre-c1\"\n\
         [[devices]]\ntenant = \"t\"\nid = \"{DEVICE}\"\ntype = \"0003\"\npassword = \"{PASSWORD}\"\n",
        data = dir.path().join("data").display(),
    );
    let config = dir.path().join("vaka.toml");
    std::fs::write(&config, text).unwrap();
    let _engine = Killed(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n 256 && exec {} serve --config {}",
                vaka_bin().display(),
                config.display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let until = Instant::now() + Duration::from_secs(30);
    while !centre_api_accepts(grpc).await {
        assert!(Instant::now() < until, "vaka serve never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The authenticated TCP device connects first and stays.
    let mut dev = StreamDevice {
        io: TcpStream::connect(tcp).await.unwrap(),
        buf: Vec::new(),
        transport: "TCP",
    };
    assert_eq!(
        dev.exchange(&mrq("T0", DEVICE, ALARM)).await.snu,
        Snu::NotTreated
    );

    // 400 strangers: idle ones, and ones trickling a request a byte at a time.
    let mut idle = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = TcpStream::connect(tcp).await {
            idle.push(s);
        }
    }
    let trickles: Vec<_> = (0..100)
        .map(|_| {
            tokio::spawn(async move {
                let Ok(mut s) = TcpStream::connect(tcp).await else {
                    return;
                };
                for b in b"MESSAGE sip:100001@vaka SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n".iter() {
                    if s.write_all(&[*b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            })
        })
        .collect();

    // Meanwhile, for 8 s: the store commits, devices are served, centres get in.
    let mut udp_dev = UdpDevice::new(udp, DEVICE, PASSWORD).await;
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(8) {
        round += 1;
        let r = udp_dev
            .exchange(
                &format!("u{round}"),
                &mrq(&format!("U{round}"), DEVICE, ALARM),
            )
            .await;
        assert_eq!(r.snu, Snu::NotTreated, "UDP alarm {round}");
        let r = dev
            .exchange(&mrq(&format!("T{round}"), DEVICE, ALARM))
            .await;
        assert_eq!(r.snu, Snu::NotTreated, "TCP alarm {round}");
        assert!(centre_api_accepts(grpc).await, "centre API, round {round}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("{round} rounds of UDP + TCP alarms and centre connections under the flood");
    for t in trickles {
        t.abort();
    }
    drop(idle);
}
