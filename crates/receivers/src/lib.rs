//! Receivers the engine runs itself: centres of the directory with a `receiver` (webhook,
//! e-mail, SMS, responder page, SCAIP forwarding). Each runs in its own task ([`session`]) that
//! behaves exactly like a gRPC centre client, so chains that mix kinds, deadlines, escalation and
//! audit are the existing machinery. [`Receivers`] starts, restarts (on a changed record) and
//! stops these tasks as the live directory changes.
pub mod config;
pub mod payload;
mod session;
pub mod sign;
pub mod text;
mod webhook;

pub use config::ReceiversConfig;

use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vaka_core::directory::ReceiverRecord;
use vaka_core::CentreId;
use vaka_router::{LiveDirectory, Router};
use vaka_store::Store;

use session::{Ctx, Far};

/// The running receivers.
pub struct Receivers {
    stop: watch::Sender<bool>,
    manager: JoinHandle<()>,
}

impl Receivers {
    /// Starts a session for every receiver in the directory, and follows its changes.
    pub fn start(
        cfg: ReceiversConfig,
        store: Store,
        router: Arc<Router>,
        dir: LiveDirectory,
    ) -> Receivers {
        let ctx = Arc::new(Ctx {
            cursors: vaka_centre::cursors::Cursors::new(store.clone()),
            store,
            router,
            dir,
            cfg: Arc::new(cfg),
        });
        let (stop, stopped) = watch::channel(false);
        let manager = tokio::spawn(manage(ctx, stopped));
        Receivers { stop, manager }
    }

    /// Stops every session (they leave without counting as lost) and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.manager.await;
    }
}

struct Running {
    record: ReceiverRecord,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn manage(ctx: Arc<Ctx>, mut stopped: watch::Receiver<bool>) {
    let mut running: HashMap<CentreId, Running> = HashMap::new();
    let mut revision = ctx.dir.watch();
    loop {
        let wanted: HashMap<CentreId, ReceiverRecord> = ctx
            .dir
            .load()
            .records
            .centres
            .values()
            .filter_map(|c| Some((CentreId::new(&c.id), c.receiver.clone()?)))
            .collect();
        let gone: Vec<CentreId> = running
            .iter()
            .filter(|(id, r)| wanted.get(*id) != Some(&r.record))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            let r = running.remove(&id).expect("listed");
            let _ = r.stop.send(true);
            let _ = r.task.await;
        }
        for (id, record) in wanted {
            if running.contains_key(&id) {
                continue;
            }
            let (stop, rx) = watch::channel(false);
            let far = far(&ctx, &id, &record);
            let kind = record.kind();
            let task = tokio::spawn(session::run(ctx.clone(), id.clone(), kind, far, rx));
            running.insert(id, Running { record, stop, task });
        }
        tokio::select! {
            changed = revision.changed() => if changed.is_err() { break },
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
    for (_, r) in running.drain() {
        let _ = r.stop.send(true);
        let _ = r.task.await;
    }
}

fn far(ctx: &Ctx, id: &CentreId, record: &ReceiverRecord) -> Box<dyn Far> {
    match record {
        ReceiverRecord::Webhook { url, secret } => Box::new(webhook::Webhook::new(
            id.clone(),
            url.clone(),
            secret.clone(),
            ctx.cfg.clone(),
        )),
        _ => Box::new(NotYet(record.kind())),
    }
}

/// A kind this build cannot run yet: never reachable, so chains pass over it.
struct NotYet(&'static str);

impl Far for NotYet {
    fn deliver<'a>(
        &'a mut self,
        _: &'a session::Delivery,
    ) -> futures::future::BoxFuture<'a, session::Handled> {
        let why = format!("{} receivers are not supported by this build", self.0);
        Box::pin(async move { session::Handled::Unreachable(why) })
    }

    fn probe(&mut self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        let why = format!("{} receivers are not supported by this build", self.0);
        Box::pin(async move { Err(why) })
    }
}
