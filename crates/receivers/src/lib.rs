//! Receivers the engine runs itself: centres of the directory with a `receiver` (webhook,
//! e-mail, SMS, responder page, SCAIP forwarding). Each runs in its own task ([`session`]) that
//! behaves exactly like a gRPC centre client, so chains that mix kinds, deadlines, escalation and
//! audit are the existing machinery. [`Receivers`] starts, restarts (on a changed record) and
//! stops these tasks as the live directory changes.
mod callback;
pub mod config;
mod email;
pub mod link;
mod page;
pub mod payload;
mod people;
mod scaip;
mod session;
pub mod sign;
mod sip_conn;
mod sms;
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
use sip_conn::Transport;

/// The running receivers.
pub struct Receivers {
    stop: watch::Sender<bool>,
    manager: JoinHandle<()>,
    page: Arc<page::PageState>,
}

/// What every kind's far side may use, made once.
struct Shared {
    links: Arc<people::Links>,
    mailer: Option<Arc<email::Mailer>>,
    sms: Option<sms::Gateway>,
    /// Whom SCAIP forwarding over TLS trusts.
    scaip_tls: Arc<tokio_rustls::rustls::ClientConfig>,
}

impl Receivers {
    /// Starts a session for every receiver in the directory, and follows its changes. Makes
    /// the responder links' key on the first start (kept in the store).
    pub async fn start(
        cfg: ReceiversConfig,
        store: Store,
        router: Arc<Router>,
        dir: LiveDirectory,
    ) -> Result<Receivers, String> {
        let key = link_key(&store).await?;
        let mailer = match &cfg.smtp {
            Some(s) => Some(Arc::new(email::Mailer::new(s, &cfg)?)),
            None => None,
        };
        let sms = cfg.sms.as_ref().map(|s| sms::Gateway::new(s, &cfg));
        let scaip_tls = scaip::tls_client(cfg.scaip_ca_file.as_deref())?;
        let shared = Arc::new(Shared {
            links: Arc::new(people::Links {
                key: key.clone(),
                base: cfg.public_base_url.clone(),
                secs: cfg.link_secs,
            }),
            mailer,
            sms,
            scaip_tls,
        });
        let ctx = Arc::new(Ctx {
            cursors: vaka_centre::cursors::Cursors::new(store.clone()),
            store,
            router,
            dir,
            cfg: Arc::new(cfg),
        });
        let page = Arc::new(page::PageState::new(ctx.clone(), key));
        let (stop, stopped) = watch::channel(false);
        let manager = tokio::spawn(manage(ctx, shared, stopped));
        Ok(Receivers {
            stop,
            manager,
            page,
        })
    }

    /// The responder page's routes (`/r/...`) and webhooks' signed callbacks (`/hooks/...`),
    /// for the engine's HTTP server.
    pub fn routes(&self) -> axum::Router {
        page::router(self.page.clone()).merge(callback::router(self.page.ctx.clone()))
    }

    /// Stops every session (they leave without counting as lost) and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.manager.await;
    }
}

/// The responder links' key: read, or made (32 random bytes) and written synced.
async fn link_key(store: &Store) -> Result<Vec<u8>, String> {
    if let Some(k) = store
        .receiver_link_key()
        .map_err(|e| format!("reading the responder link key: {e}"))?
    {
        return Ok(k);
    }
    let key: [u8; 32] = rand::random();
    let mut set = vaka_store::WriteSet::new();
    vaka_store::put_receiver_link_key(&mut set, &key);
    store
        .commit(vaka_core::Lane::Alarm, set)
        .await
        .map_err(|e| format!("storing the responder link key: {e}"))?;
    Ok(key.to_vec())
}

struct Running {
    record: ReceiverRecord,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn manage(ctx: Arc<Ctx>, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
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
            let far = far(&ctx, &shared, &id, &record);
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

fn far(ctx: &Ctx, shared: &Shared, id: &CentreId, record: &ReceiverRecord) -> Box<dyn Far> {
    match record {
        ReceiverRecord::Email { .. }
        | ReceiverRecord::Sms { .. }
        | ReceiverRecord::Responder { .. } => Box::new(people::People {
            centre: id.clone(),
            members: record.members(),
            links: shared.links.clone(),
            mailer: shared.mailer.clone(),
            sms: shared.sms.clone(),
        }),
        ReceiverRecord::Webhook { url, secret } => Box::new(webhook::Webhook::new(
            id.clone(),
            url.clone(),
            secret.clone(),
            ctx.cfg.clone(),
        )),
        ReceiverRecord::Scaip {
            uri,
            username,
            password,
            cid,
            per_device_cid,
            transport,
        } => Box::new(scaip::Forward::new(
            id.clone(),
            uri.clone(),
            username.clone(),
            password.clone(),
            match per_device_cid {
                true => scaip::Cid::PerDevice,
                false => scaip::Cid::Fixed(cid.clone().unwrap_or_else(|| username.clone())),
            },
            match transport.as_deref() {
                Some("tcp") => Transport::Tcp,
                Some("tls") => Transport::Tls(shared.scaip_tls.clone()),
                _ => Transport::Udp,
            },
        )),
    }
}
