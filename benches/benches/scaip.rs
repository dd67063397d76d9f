//! SCAIP ingest decode cost: a SIP MESSAGE carrying an `<mrq>` (as a personal trigger sends
//! it, with digest credentials), its XML body, both together, and the digest check.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vaka_scaip::auth::{authorize, Credential, DigestAlgorithm, Expected, WithoutQop};
use vaka_scaip::sip::NewRequest;
use vaka_scaip::{Authorization, Mrq, Mrs, NonceCounter, NonceIssuer, SipMessage, Snu};

const MRQ: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<mrq xmlns=\"http://www.hi.se/2012/XScaipXML\">\n  <ref>A1B2C3</ref>\n  <ver>01.00</ver>\n  <mty>ME</mty>\n  \
<cid>4600123456</cid>\n  <dty>0051</dty>\n  <dco>002</dco>\n  <crd>gsm:+46701234567</crd>\n  <stc>0010</stc>\n  \
<pri>7</pri>\n  <lco>034</lco>\n  <lge><geo>59.336111,18.072778</geo><tim>2024-05-17T14:30:00+02</tim></lge>\n</mrq>\n";

fn message(authorization: &str) -> Vec<u8> {
    format!(
        "MESSAGE sip:arc@alarm.vaka.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK4f2a9c77;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:4600123456@alarm.vaka.example>;tag=a73kszlfl\r\n\
To: <sip:arc@alarm.vaka.example>\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@10.20.30.40\r\n\
CSeq: 17 MESSAGE\r\n\
Contact: <sip:4600123456@10.20.30.40:5060>\r\n\
Authorization: {authorization}\r\n\
User-Agent: TryggLarm/2.1\r\n\
Content-Type: application/scaip+xml\r\n\
Content-Length: {}\r\n\r\n{MRQ}",
        MRQ.len()
    )
    .into_bytes()
}

fn bench_scaip(c: &mut Criterion) {
    let issuer = NonceIssuer::new(b"bench secret", 300_000);
    let challenge = issuer.challenge("alarm.vaka.example", DigestAlgorithm::Md5, 1_000, 1, false);
    let creds = authorize(
        &challenge,
        "MESSAGE",
        "sip:arc@alarm.vaka.example",
        "4600123456",
        "pw",
        "cn",
        1,
    );
    let wire = message(&creds.to_header_value());

    let mut g = c.benchmark_group("scaip");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sip_parse_message", |b| {
        b.iter(|| SipMessage::parse(black_box(&wire)).unwrap())
    });
    g.bench_function("mrq_parse", |b| {
        b.iter(|| Mrq::parse(black_box(MRQ)).unwrap())
    });
    g.bench_function("sip_and_mrq_parse", |b| {
        b.iter(|| {
            let msg = SipMessage::parse(black_box(&wire)).unwrap();
            Mrq::parse(msg.body_str().unwrap()).unwrap()
        })
    });
    g.bench_function("mrs_to_xml", |b| {
        b.iter(|| Mrs::new(black_box("A1B2C3"), Snu::Ok).to_xml())
    });
    g.bench_function("digest_parse_and_verify", |b| {
        let header = creds.to_header_value();
        b.iter(|| {
            // A fresh counter each time, so nc=1 is never a replay.
            let mut counter = NonceCounter::new(4);
            let auth = Authorization::parse(black_box(&header)).unwrap();
            let expected = Expected {
                method: "MESSAGE",
                request_uri: "sip:arc@alarm.vaka.example",
                realm: "alarm.vaka.example",
                algorithm: DigestAlgorithm::Md5,
                without_qop: WithoutQop::Refused,
            };
            issuer.verify(
                &auth,
                &expected,
                Credential::Password("pw"),
                2_000,
                &mut counter,
            )
        })
    });
    // The front's per-request codec work (issue 5 target: under 5 us): decode the MESSAGE and
    // its <mrq>, then encode the <mrs> and the SIP MESSAGE that carries it, as the front does.
    g.bench_function("decode_and_mrs_message_encode", |b| {
        b.iter(|| {
            let msg = SipMessage::parse(black_box(&wire)).unwrap();
            let mrq = Mrq::parse(msg.body_str().unwrap()).unwrap();
            let xml = Mrs::new(mrq.reference, Snu::Ok).to_xml();
            NewRequest {
                request_uri: "sip:4600123456@10.20.30.40:5060",
                sent_by: "192.0.2.1:5060",
                branch: "z9hG4bK5e1f",
                from_uri: &msg.to().uri,
                from_tag: "7c1d",
                to_uri: &msg.from().uri,
                call_id: msg.call_id(),
                cseq: 1,
                ..NewRequest::default()
            }
            .scaip_message_bytes(&xml)
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_scaip);
criterion_main!(benches);
