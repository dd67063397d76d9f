//! `vaka check-config`: a bad file names the key and the reason, exits 2, never panics.
use std::process::Command;

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vaka.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vaka"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = r#"
[[tenants]]
id = "t"
centres = ["c"]
[[centres]]
id = "c"
tenants = ["t"]
token = "0123456789abcdef"
[[devices]]
tenant = "t"
id = "1"
type = "0003"
"#;

#[test]
fn demo_config_is_valid() {
    let path = format!(
        "{}/config/vaka.toml",
        std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo")
    );
    let out = Command::new(env!("CARGO_BIN_EXE_vaka"))
        .args(["check-config", path.as_str()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 devices"));
}

#[test]
fn good_config_passes() {
    let (code, out, err) = check(GOOD);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok"));
}

#[test]
fn each_bad_file_names_its_key() {
    let cases: &[(&str, &str, &str)] = &[
        // (what is wrong, the file, text the error must contain)
        (
            "wrong type",
            "[router]\nshards = \"many\"\n",
            "router.shards",
        ),
        ("unknown key", "[router]\nshardz = 2\n", "shardz"),
        (
            "receivers: plain SMTP off loopback",
            "[receivers.smtp]\nhost = \"mail.example.org\"\nstarttls = false\nfrom = \"a@b.se\"\n",
            "receivers.smtp.starttls: may be false only for a relay on loopback",
        ),
        (
            "receivers: SMS template without the link",
            "[receivers.sms]\nurl = \"https://sms.example.org/send\"\ntemplate = \"Larm!\"\n",
            "receivers.sms.template: must contain {link}",
        ),
        (
            "receivers: unknown SMS style",
            "[receivers.sms]\nurl = \"https://sms.example.org/send\"\nstyle = \"xml\"\n",
            "receivers.sms.style",
        ),
        (
            "receivers: base URL with a slash",
            "[receivers]\npublic_base_url = \"https://vaka.example.org/\"\n",
            "receivers.public_base_url",
        ),
        (
            "a webhook receiver with a short secret",
            "[[tenants]]\nid = \"t\"\ncentres = [\"h\"]\n[[centres]]\nid = \"h\"\ntenants = [\"t\"]\n\
             receiver = { kind = \"webhook\", url = \"https://x.se/h\", secret = \"short\" }\n",
            "centres[0].receiver.secret: must be at least 16 characters",
        ),
        (
            "a receiver with a token",
            "[[tenants]]\nid = \"t\"\ncentres = [\"h\"]\n[[centres]]\nid = \"h\"\ntenants = [\"t\"]\n\
             token = \"0123456789abcdef\"\n\
             receiver = { kind = \"email\", to = [\"a@b.se\"] }\n",
            "centres[0].token",
        ),
        (
            "zero queue",
            "[router]\ntelemetry_queue = 0\n",
            "router.telemetry_queue: must be greater than 0",
        ),
        (
            "bad address",
            "[listen]\nquic = \"nowhere\"\n",
            "listen.quic",
        ),
        ("syntax", "[router\nshards = 2\n", "line 1"),
        (
            "quic CA for an unknown tenant",
            &format!("{GOOD}[quic]\ntenant_cas = {{ x = \"ca.pem\" }}\n"),
            "quic.tenant_cas.x: unknown tenant \"x\"",
        ),
        (
            "quic limit out of range",
            &format!("{GOOD}[quic]\ntenant_cas = {{ t = \"ca.pem\" }}\nmax_frame_bytes = 10\n"),
            "quic.max_frame_bytes: must be 1024..=67108864",
        ),
        (
            "a QUIC telemetry port without the QUIC front",
            "[listen]\nquic_telemetry = \"127.0.0.1:4434\"\n",
            "listen.quic_telemetry: a telemetry port needs the QUIC front ([quic])",
        ),
        (
            "the QUIC telemetry port on the alarm port",
            &format!(
                "[listen]\nquic = \"127.0.0.1:4433\"\nquic_telemetry = \"127.0.0.1:4433\"\n\
                 {GOOD}[quic]\ntenant_cas = {{ t = \"ca.pem\" }}\n"
            ),
            "listen.quic_telemetry: must differ from listen.quic",
        ),
        (
            "the telemetry port's nice value out of range",
            &format!("{GOOD}[quic]\ntenant_cas = {{ t = \"ca.pem\" }}\ntelemetry_nice = 20\n"),
            "quic.telemetry_nice: must be 0..=19",
        ),
        (
            "quic address given twice",
            "[quic]\nlisten = \"127.0.0.1:1\"\n",
            "listen",
        ),
        (
            "unknown tenant",
            &GOOD.replace("tenant = \"t\"\nid = \"1\"", "tenant = \"x\"\nid = \"1\""),
            "devices[0].tenant: unknown tenant \"x\"",
        ),
        (
            "unknown centre in chain",
            &GOOD.replace("centres = [\"c\"]", "centres = [\"nope\"]"),
            "tenants[0].centres[0]: unknown centre \"nope\"",
        ),
        (
            "bad device type",
            &GOOD.replace("\"0003\"", "\"3\""),
            "devices[0].type",
        ),
        (
            "short token",
            &GOOD.replace("0123456789abcdef", "abc"),
            "centres[0].token",
        ),
        (
            "zero deadline",
            &format!("{GOOD}receipt_deadline_secs = 0\n"),
            "devices[0].receipt_deadline_secs: must be greater than 0",
        ),
        (
            "DC-09 account not hex",
            &format!("{GOOD}dc09_account = \"12-34\"\n"),
            "devices[0].dc09_account: must be 3-16 hex digits",
        ),
        (
            "DC-09 key of no AES length",
            &format!("{GOOD}dc09_account = \"1234\"\ndc09_key = \"abc\"\n"),
            "devices[0].dc09_key: must be 32, 48 or 64 hex digits",
        ),
        (
            "DC-09 key without account",
            &format!("{GOOD}dc09_key = \"000102030405060708090A0B0C0D0E0F\"\n"),
            "devices[0].dc09_key: only with a dc09_account",
        ),
        (
            "unknown supervision category",
            &format!("{GOOD}supervision = \"DP9\"\n"),
            "devices[0].supervision: unknown supervision category \"DP9\"",
        ),
        (
            "tenant admission rate of zero",
            &GOOD.replace(
                "centres = [\"c\"]\n",
                "centres = [\"c\"]\nadmission = { telemetry = { per_sec = 0, burst = 10 } }\n",
            ),
            "tenants[0].admission.telemetry.per_sec: must be 1-10000000",
        ),
        (
            "category by type for a bad type",
            &GOOD.replace(
                "centres = [\"c\"]\n",
                "centres = [\"c\"]\nsupervision_by_type = { \"3\" = \"SP4\" }\n",
            ),
            "tenants[0].supervision_by_type.3: the device type must be four digits",
        ),
        (
            "DC-09 front without a transport",
            "[dc09]\nmax_pending = 10\n",
            "dc09.udp: give udp or tcp",
        ),
        (
            "no per-source budget for unauthenticated SIP",
            "[sip]\nunauthenticated_burst = 0\n",
            "sip.unauthenticated_burst: must be at least 1",
        ),
        (
            "single-use nonces for a device without a SIP password",
            &format!("{GOOD}digest_single_use_nonce = true\n"),
            "devices[0].digest_single_use_nonce",
        ),
        (
            "field type inside array",
            &GOOD.replace("type = \"0003\"", "type = \"0003\"\nheartbeat_secs = -5"),
            "devices[0].heartbeat_secs",
        ),
    ];
    for (what, text, expect) in cases {
        let (code, _, err) = check(text);
        assert_eq!(code, 2, "{what}: exit code, stderr: {err}");
        assert!(
            err.contains(expect),
            "{what}: expected {expect:?} in {err:?}"
        );
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
}

#[test]
fn missing_file_is_a_config_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_vaka"))
        .args(["check-config", "/nonexistent/vaka.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

/// Invariant 13 / issue 16: the centre API carries bearer tokens and alarm data, so plaintext is
/// allowed only on loopback or when the operator says `grpc.insecure = true`.
#[test]
fn the_centre_api_in_plaintext_off_loopback_is_refused_unless_insecure() {
    let open = format!("[listen]\ngrpc = \"0.0.0.0:50051\"\n{GOOD}");
    let (code, _, err) = check(&open);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("grpc.tls_cert: the centre API on 0.0.0.0:50051"),
        "{err}"
    );
    let insecure = format!("[listen]\ngrpc = \"0.0.0.0:50051\"\n[grpc]\ninsecure = true\n{GOOD}");
    assert_eq!(check(&insecure).0, 0);
    let loopback = format!("[listen]\ngrpc = \"127.0.0.1:50051\"\n{GOOD}");
    assert_eq!(check(&loopback).0, 0);
    // No address given: loopback by default.
    assert_eq!(check(GOOD).0, 0);
}
