//! The centre API end to end over real gRPC on 127.0.0.1 with real RocksDB: a device alarm reaches
//! the centre's stream, receipt and accept move it on, the audit trail shows every step; tokens,
//! tenant scoping, one stream per centre, resume from a cursor, health and reflection.
mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use vaka_centre::pb::{self, centre_message::Msg as In, server_message::Msg as Out};
use vaka_core::{AlarmState, CentreId};
use vaka_router::Clock;
use vaka_store::{Backend, RocksBackend, RocksConfig};

async fn world() -> (tempfile::TempDir, World) {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> =
        Arc::new(RocksBackend::open(&RocksConfig::new(dir.path())).unwrap());
    let w = World::start(backend, Clock::new(), test_config()).await;
    (dir, w)
}

fn actions(records: &[pb::AuditRecord]) -> Vec<String> {
    records.iter().map(|r| r.action.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_alarm_reaches_the_centre_and_is_taken_with_an_audit_trail() {
    let (_dir, w) = world().await;
    let mut ca1 = Centre::connect(&w, "ca1", None).await;
    assert_eq!(ca1.welcome.centre_id, "ca1");
    assert_eq!(ca1.welcome.tenants, ["a"]);
    eventually("ca1 reachable", || w.is_reachable("ca1")).await;

    let (id, available) = w.raise("a", "d1", "r1").await;
    assert!(available, "the device hears that a centre can act");
    let offer = ca1.offer().await;
    assert!(!offer.unhandled);
    assert!(offer.cursor > 0);
    let a = offer.alarm.unwrap();
    assert_eq!(a.alarm_id, id.0);
    assert_eq!((a.tenant.as_str(), a.device.as_str()), ("a", "d1"));
    assert_eq!(a.device_type, "0003");
    assert_eq!(a.kind, pb::AlarmKind::Help as i32);
    assert_eq!((a.code.as_str(), a.priority), ("0010", 2));
    assert_eq!(a.text.as_deref(), Some("fallen in the kitchen"));
    assert_eq!(a.callback, ["gsm:+46701234567"]);
    let pos = a.position.unwrap();
    assert_eq!(
        (pos.lat, pos.lon, pos.accuracy_m),
        (57.7089, 11.9746, Some(15.0))
    );
    assert_eq!(a.state, "offered");
    assert_eq!(a.holder, "ca1");
    assert_eq!(a.escalation_step, 0);
    assert_eq!(a.chain, ["ca1", "ca2"]);
    let dl = a.deadlines.unwrap();
    assert_eq!((dl.receipt_ms, dl.accept_ms), (10_000, 60_000));
    let running = a.deadline.unwrap();
    assert_eq!(running.kind, pb::DeadlineKind::Receipt as i32);
    assert_eq!(running.at_ms, a.updated_ms + 10_000);
    ca1.ack(offer.cursor).await;

    assert_eq!(code(&ca1.receipt(id.0).await), tonic::Code::Ok);
    assert_eq!(code(&ca1.accept(id.0, "op-7").await), tonic::Code::Ok);

    let mut client = w.client("ca1").await;
    let open = client
        .list_open_alarms(pb::ListOpenAlarmsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alarms;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].state, "accepted");
    assert_eq!(open[0].operator_id, "op-7");
    assert!(open[0].deadline.is_none(), "accepted: no deadline runs");

    assert_eq!(
        code(&ca1.close(id.0, "visited", "helped up, unhurt").await),
        tonic::Code::Ok
    );
    let audit = client
        .get_audit(pb::GetAuditRequest { alarm_id: id.0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        actions(&audit.records),
        [
            "received",
            "offered to ca1",
            "receipt",
            "accepted",
            "closed"
        ]
    );
    let r = &audit.records;
    assert_eq!(r[2].actor, "centre:ca1");
    assert_eq!(r[3].actor, "operator:op-7");
    assert_eq!(r[4].reason, "visited: helped up, unhurt");
    assert!(r.windows(2).all(|p| p[0].at_ms <= p[1].at_ms));
    assert_eq!(audit.alarm.unwrap().state, "closed");
    let open = client
        .list_open_alarms(pb::ListOpenAlarmsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alarms;
    assert!(open.is_empty());
    // A closed alarm takes no more input; the answer says why.
    let late = ca1.accept(id.0, "op-8").await;
    assert_eq!(code(&late), tonic::Code::FailedPrecondition, "{late:?}");
    drop(ca1);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_credentials_are_unauthenticated() {
    let (_dir, w) = world().await;
    let e = Centre::try_connect(&w.url(), "token-of-nobody", None)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let mut anon = vaka_centre::console::connect(&w.url(), None, Default::default())
        .await
        .unwrap();
    let e = anon
        .get_audit(pb::GetAuditRequest { alarm_id: 1 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let e = anon
        .list_open_alarms(pb::ListOpenAlarmsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(!w.is_reachable("ca1"));
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_centre_never_sees_or_touches_another_tenants_alarm() {
    let (_dir, w) = world().await;
    let mut ca1 = Centre::connect(&w, "ca1", None).await;
    let mut cb = Centre::connect(&w, "cb", None).await;
    eventually("both reachable", || {
        w.is_reachable("ca1") && w.is_reachable("cb")
    })
    .await;
    let (a_id, _) = w.raise("a", "d1", "r1").await;
    let (b_id, _) = w.raise("b", "d1", "r1").await;
    assert_eq!(ca1.offer().await.alarm.unwrap().alarm_id, a_id.0);
    assert_eq!(cb.offer().await.alarm.unwrap().alarm_id, b_id.0);
    // Nothing else reaches either of them.
    cb.quiet_for(Duration::from_millis(300)).await;
    ca1.quiet_for(Duration::from_millis(50)).await;

    // cb acting on, or asking about, tenant a's alarm: as if it did not exist.
    let r = cb.accept(a_id.0, "op-x").await;
    assert_eq!(code(&r), tonic::Code::NotFound, "{r:?}");
    let r = cb.receipt(a_id.0).await;
    assert_eq!(code(&r), tonic::Code::NotFound);
    let mut cb_client = w.client("cb").await;
    let e = cb_client
        .get_audit(pb::GetAuditRequest { alarm_id: a_id.0 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let all = cb_client
        .list_open_alarms(pb::ListOpenAlarmsRequest {
            all_tenant_alarms: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alarms;
    assert_eq!(
        all.iter().map(|a| a.alarm_id).collect::<Vec<_>>(),
        [b_id.0],
        "only tenant b's alarm"
    );

    // ca2 serves tenant a but was not offered this alarm (ca1 holds it).
    let mut ca2 = Centre::connect(&w, "ca2", None).await;
    let r = ca2.accept(a_id.0, "op-y").await;
    assert_eq!(code(&r), tonic::Code::PermissionDenied, "{r:?}");
    // ...but may read its audit trail: same tenant.
    let mut ca2_client = w.client("ca2").await;
    assert!(ca2_client
        .get_audit(pb::GetAuditRequest { alarm_id: a_id.0 })
        .await
        .is_ok());
    // The holder is untouched by all of this.
    let alarm = vaka_store::load_alarm(w.backend.as_ref(), a_id)
        .unwrap()
        .unwrap();
    assert_eq!(
        alarm.state,
        AlarmState::Offered {
            centre: CentreId::new("ca1")
        }
    );
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_replaces_the_first_without_a_disconnect() {
    let (_dir, w) = world().await;
    let mut first = Centre::connect(&w, "cc", None).await;
    eventually("cc reachable", || w.is_reachable("cc")).await;
    let (id, _) = w.raise("c", "d1", "r1").await;
    let offer = first.offer().await;
    assert_eq!(code(&first.receipt(id.0).await), tonic::Code::Ok);

    let mut second = Centre::connect(&w, "cc", None).await;
    let ended = first.ended().await;
    assert_eq!(ended.code(), tonic::Code::Aborted, "{ended:?}");
    // The hand-over is no disconnect: the alarm stays with cc, not escalated to unhandled.
    assert!(w.is_reachable("cc"));
    // Nothing was acknowledged, so the new stream gets the offer again (at-least-once).
    let again = second.offer().await;
    assert_eq!(again.cursor, offer.cursor);
    assert_eq!(again.alarm.unwrap().alarm_id, id.0);
    assert_eq!(code(&second.accept(id.0, "op-1").await), tonic::Code::Ok);
    let alarm = vaka_store::load_alarm(w.backend.as_ref(), id)
        .unwrap()
        .unwrap();
    assert!(matches!(alarm.state, AlarmState::Accepted { .. }));
    drop(second);
    eventually("cc gone", || !w.is_reachable("cc")).await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_centre_resumes_from_its_cursor_and_loses_nothing() {
    // No reconnect grace: the disconnect escalates at once, so the resumed backlog holds notices
    // of an alarm that moved on while the centre was away.
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> =
        Arc::new(RocksBackend::open(&RocksConfig::new(dir.path())).unwrap());
    let w = World::start_without_grace(backend, Clock::new(), test_config()).await;
    let mut cc = Centre::connect(&w, "cc", None).await;
    assert_eq!(cc.welcome.resume_after, 0);
    eventually("cc reachable", || w.is_reachable("cc")).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(w.raise("c", &format!("d{i}"), "r1").await.0);
    }
    let mut cursors = Vec::new();
    for id in &ids[..2] {
        let o = cc.offer().await;
        assert_eq!(o.alarm.unwrap().alarm_id, id.0);
        cursors.push(o.cursor);
        assert_eq!(code(&cc.receipt(id.0).await), tonic::Code::Ok);
        assert_eq!(code(&cc.accept(id.0, "op").await), tonic::Code::Ok);
    }
    let third = cc.offer().await;
    assert_eq!(third.alarm.unwrap().alarm_id, ids[2].0);
    // The centre handled the first two and acknowledges them; then its connection drops.
    cc.ack(cursors[1]).await;
    eventually("cursor persisted", || {
        vaka_store::load_cursor(w.backend.as_ref(), &CentreId::new("cc")).unwrap() == cursors[1]
    })
    .await;
    drop(cc);
    eventually("cc gone", || !w.is_reachable("cc")).await;

    // Alarms arrive while it is away: stored, the devices told nobody can act.
    for i in 3..7 {
        let (id, available) = w.raise("c", &format!("d{i}"), "r1").await;
        assert!(!available, "invariant 5: no centre reachable");
        ids.push(id);
    }
    // Acknowledged notices are pruned from the outbox; what is left starts after the cursor.
    let left = vaka_store::read_outbox(w.backend.as_ref(), &CentreId::new("cc"), 0, 100).unwrap();
    assert!(left.iter().all(|(seq, _)| *seq > cursors[1]), "{left:?}");

    // Reconnect without naming a cursor: the stored one is used.
    let mut cc = Centre::connect(&w, "cc", None).await;
    assert_eq!(cc.welcome.resume_after, cursors[1]);
    // What it gets, per alarm, in cursor order: "offer", "unhandled" or "update".
    let mut got: std::collections::BTreeMap<u64, Vec<&str>> = Default::default();
    let mut last = 0;
    let complete = |got: &std::collections::BTreeMap<u64, Vec<&str>>| {
        got.len() == 5 && got[&ids[2].0].contains(&"unhandled")
    };
    while !complete(&got) {
        let (cursor, alarm, what) = match cc.next().await.unwrap() {
            Out::Offer(o) if o.unhandled => (o.cursor, o.alarm.unwrap(), "unhandled"),
            Out::Offer(o) => (o.cursor, o.alarm.unwrap(), "offer"),
            Out::Update(u) => (u.cursor, u.alarm.unwrap(), "update"),
            other => panic!("{other:?}"),
        };
        assert!(cursor > last, "in cursor order");
        last = cursor;
        got.entry(alarm.alarm_id).or_default().push(what);
    }
    let want: Vec<u64> = ids[2..].iter().map(|i| i.0).collect();
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        want,
        "none lost, none extra"
    );
    // Alarm 3's offer was never acknowledged: it comes again, as the alarm is now (the disconnect
    // escalated it, and its chain is cc alone, so it is unhandled: offered with the flag, never
    // as a plain offer), then the news of the escalation, then the unhandled offers.
    assert_eq!(got[&ids[2].0][..2], ["unhandled", "update"], "{got:?}");
    assert!(!got[&ids[2].0].contains(&"offer"), "{got:?}");
    for id in &ids[3..] {
        assert_eq!(got[&id.0], ["offer"], "offered as the centre connects");
    }
    cc.ack(last).await;
    eventually("cursor persisted", || {
        vaka_store::load_cursor(w.backend.as_ref(), &CentreId::new("cc")).unwrap() == last
    })
    .await;
    drop(cc);

    // An explicit older cursor re-reads what is still kept; a cursor from the future is refused.
    let e = Centre::try_connect(&w.url(), &token("cc"), Some(last + 1000))
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), tonic::Code::OutOfRange);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_end_the_stream_with_a_clear_status() {
    let (_dir, w) = world().await;
    // Acknowledging what was never sent would prune unseen notices.
    let mut cc = Centre::connect(&w, "cc", None).await;
    cc.ack(5).await;
    let e = cc.ended().await;
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    // The first message must be hello.
    let mut client = w.client("cc").await;
    let (up, rx) = tokio::sync::mpsc::channel(4);
    up.send(pb::CentreMessage {
        msg: Some(In::Ack(pb::Ack { cursor: 0 })),
    })
    .await
    .unwrap();
    let mut down = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let e = down.message().await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);

    // Bad input fields are answered, the stream lives on.
    let mut cc = Centre::connect(&w, "cc", None).await;
    eventually("cc reachable", || w.is_reachable("cc")).await;
    let (id, _) = w.raise("c", "d1", "r1").await;
    cc.offer().await;
    let r = cc.accept(id.0, "").await;
    assert_eq!(code(&r), tonic::Code::InvalidArgument);
    let r = cc.accept(id.0, &"x".repeat(65)).await;
    assert_eq!(code(&r), tonic::Code::InvalidArgument);
    assert_eq!(code(&cc.accept(id.0, "op").await), tonic::Code::Ok);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_streams_without_escalating_their_alarms() {
    let (_dir, w) = world().await;
    let mut ca1 = Centre::connect(&w, "ca1", None).await;
    let _ca2 = Centre::connect(&w, "ca2", None).await;
    eventually("reachable", || {
        w.is_reachable("ca1") && w.is_reachable("ca2")
    })
    .await;
    let (id, _) = w.raise("a", "d1", "r1").await;
    ca1.offer().await;
    let backend = w.backend.clone();
    let mut w = w;
    w.server
        .take()
        .unwrap()
        .shutdown(Duration::from_secs(2))
        .await;
    assert_eq!(ca1.ended().await.code(), tonic::Code::Unavailable);
    w.router.shutdown().await;
    let alarm = vaka_store::load_alarm(backend.as_ref(), id)
        .unwrap()
        .unwrap();
    assert_eq!(
        alarm.state,
        AlarmState::Offered {
            centre: CentreId::new("ca1")
        },
        "the engine stopping is not the centre failing"
    );
    w.store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer_so_grpcurl_works() {
    let (_dir, w) = world().await;
    let channel = tonic::transport::Endpoint::from_shared(w.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "vaka.centre.v1.AlarmCentre".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let mut refl = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("{answer:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"vaka.centre.v1.AlarmCentre".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );

    // The same over v1alpha (older grpcurl, Postman, Evans, Python grpcio-reflection).
    use tonic_reflection::pb::v1alpha as alpha;
    let channel = tonic::transport::Endpoint::from_shared(w.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut refl = alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let req = alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .expect("v1alpha reflection is served")
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("{answer:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"vaka.centre.v1.AlarmCentre".to_string()),
        "{names:?}"
    );
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_message_kind_is_what_the_centre_expects() {
    // Repeats and device resets reach the holder as updates, not second offers.
    let (_dir, w) = world().await;
    let mut cc = Centre::connect(&w, "cc", None).await;
    eventually("cc reachable", || w.is_reachable("cc")).await;
    let (id, _) = w.raise("c", "d1", "r1").await;
    let offer = cc.offer().await;
    let (again, _) = w.raise("c", "d1", "r2").await;
    assert_eq!(again, id, "a repeat updates the open alarm");
    let u = cc.update().await;
    assert_eq!(u.kind, pb::UpdateKind::Repeated as i32);
    assert!(u.cursor > offer.cursor);
    let a = u.alarm.unwrap();
    assert_eq!((a.alarm_id, a.repeats, a.priority), (id.0, 1, 3));
    let reset = vaka_core::Event {
        kind: vaka_core::EventKind::Reset {
            reference: "r1".into(),
        },
        ..alarm("c", "d1", "r3")
    };
    w.router.submit(reset).await.unwrap();
    let u = cc.update().await;
    assert_eq!(u.kind, pb::UpdateKind::CancelledByDevice as i32);
    assert_eq!(u.alarm.unwrap().state, "cancelled");
    cc.quiet_for(Duration::from_millis(100)).await;
    w.shutdown().await;
}
