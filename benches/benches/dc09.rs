//! SIA DC-09 front cost per message: decode (CRC, header, decryption, timestamp window, data)
//! plus the ACK written back, plain and AES-128 encrypted, SIA-DCS and ADM-CID; and the
//! mapping of a decoded message to core events. Peer: `scaip` (SIP + `<mrq>` parse).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vaka_core::DeviceKey;
use vaka_dc09::{ack, decode, Account, Header, HexId, Key, Message, Seq, Timestamp, Token, Window};
use vaka_ingest::dc09::convert;

const NOW_MS: u64 = 1_758_730_801_000;
const KEY: &str = "000102030405060708090A0B0C0D0E0F";

fn frame(token: Token, data: &str, key: Option<&Key>) -> Vec<u8> {
    let header = Header {
        token,
        encrypted: key.is_some(),
        seq: Seq::new(42).unwrap(),
        receiver: HexId::new("12"),
        line: HexId::new("3"),
        account: Account::new("1234").unwrap(),
    };
    let ts = Some(Timestamp::from_unix_ms(NOW_MS));
    let msg = Message::new(header, data.to_owned(), Vec::new(), ts).unwrap();
    msg.encode(key, &[9; 16]).unwrap()
}

fn bench_dc09(c: &mut Criterion) {
    let key = Key::parse(KEY).unwrap();
    let window = Window::default();
    let cases = [
        (
            "sia_plain",
            frame(Token::SiaDcs, "#1234|Nri1/BA01", None),
            None,
        ),
        (
            "sia_aes128",
            frame(Token::SiaDcs, "#1234|Nri1/BA01", Some(&key)),
            Some(&key),
        ),
        (
            "cid_plain",
            frame(Token::AdmCid, "#1234|1101 01 015", None),
            None,
        ),
        (
            "cid_aes128",
            frame(Token::AdmCid, "#1234|1101 01 015", Some(&key)),
            Some(&key),
        ),
    ];
    let mut g = c.benchmark_group("dc09");
    g.throughput(Throughput::Elements(1));
    for (name, wire, k) in &cases {
        g.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| decode(black_box(wire), |_| *k, NOW_MS, &window).unwrap())
        });
        g.bench_function(format!("decode_and_ack_{name}"), |b| {
            b.iter(|| {
                let m = decode(black_box(wire), |_| *k, NOW_MS, &window).unwrap();
                ack(&m.header, *k, Timestamp::from_unix_ms(NOW_MS), &[5; 16]).unwrap()
            })
        });
    }
    let m = decode(&cases[0].1, |_| None, NOW_MS, &window).unwrap();
    let device = DeviceKey::new("t", "panel");
    g.bench_function("to_events_sia", |b| {
        b.iter(|| convert::to_events(black_box(&m), &device, NOW_MS as i64, &cases[0].1))
    });
    g.finish();
}

criterion_group!(benches, bench_dc09);
criterion_main!(benches);
