//! vaka/1 frame decode cost on the QUIC ingest path: split a frame off the receive buffer, walk
//! the ClientFrame to each event's wire bytes, decode each event. Frames of 1 event (a device),
//! 100 and 1000 events (gateway batches), mixing positions, telemetry, heartbeats and alarms.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vaka_proto::bytes::BytesMut;
use vaka_proto::pb::{self, event::Body};
use vaka_proto::{encode_events_frame, parse_client_frame, split_frame, ClientFrameRef, Message};

fn event(i: usize) -> pb::Event {
    let body = match i % 4 {
        0 => Body::Position(pb::Fix {
            time_ms: 1_700_000_000_000 + i as i64 * 10_000,
            lat: 59.336111 + i as f64 * 1e-5,
            lon: 18.072778,
            accuracy_m: Some(8.5),
            speed_mps: Some(1.2),
            course_deg: Some(270.0),
            valid: None,
        }),
        1 => Body::Telemetry(pb::Telemetry {
            name: "temperature".into(),
            value: 21.5,
        }),
        2 => Body::Heartbeat(pb::Heartbeat {}),
        _ => Body::Alarm(pb::Alarm {
            code: "0010".into(),
            priority: 7,
            text: Some("button".into()),
            callback: vec!["+46701234567".into()],
        }),
    };
    pb::Event {
        occurred_ms: None,
        key: format!("{:016x}", i as u64 * 0x9e37_79b9),
        device: format!("4600{:06}", i % 1000),
        fix: None,
        body: Some(body),
    }
}

fn bench_frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("quic_frame_decode");
    for n in [1usize, 100, 1000] {
        let events: Vec<_> = (0..n).map(event).collect();
        let mut wire = Vec::new();
        encode_events_frame(&events, &mut wire);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("events", n), &wire, |b, wire| {
            b.iter(|| {
                let mut buf = BytesMut::from(&wire[..]);
                let frame = split_frame(&mut buf, 1 << 20).unwrap().unwrap();
                let ClientFrameRef::Events(raws) = parse_client_frame(&frame, 1024).unwrap() else {
                    unreachable!()
                };
                for raw in raws {
                    black_box(pb::Event::decode(raw).unwrap());
                }
            })
        });
        // For comparison: prost decoding the whole frame at once (no raw bytes per event).
        g.bench_with_input(
            BenchmarkId::new("prost_whole_frame", n),
            &wire,
            |b, wire| {
                b.iter(|| {
                    let mut buf = BytesMut::from(&wire[..]);
                    let frame = split_frame(&mut buf, 1 << 20).unwrap().unwrap();
                    black_box(pb::ClientFrame::decode(frame).unwrap())
                })
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("quic_frame_encode");
    let events: Vec<_> = (0..100).map(event).collect();
    g.throughput(Throughput::Elements(100));
    g.bench_function("events/100", |b| {
        let mut out = Vec::with_capacity(16 * 1024);
        b.iter(|| {
            out.clear();
            encode_events_frame(&events, &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_frames);
criterion_main!(benches);
