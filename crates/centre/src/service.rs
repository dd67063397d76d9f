//! The `AlarmCentre` gRPC service: authenticate, scope, then the stream or a unary query.
use crate::auth::Credentials;
use crate::config::CentreApiConfig;
use crate::convert;
use crate::cursors::Cursors;
use crate::pb;
use crate::scope::Scope;
use crate::sessions::Sessions;
use crate::shared::Shared;
use crate::stream;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use vaka_core::AlarmId;
use vaka_router::{Clock, LiveDirectory, Router};
use vaka_store::Store;

/// The service object: cheap to clone, shared by every connection.
#[derive(Clone)]
pub struct CentreService {
    pub(crate) shared: Arc<Shared>,
}

impl CentreService {
    pub fn new(
        store: Store,
        router: Arc<Router>,
        dir: impl Into<LiveDirectory>,
        creds: Credentials,
        cfg: CentreApiConfig,
        clock: Clock,
    ) -> Self {
        let (stopping, _) = watch::channel(false);
        CentreService {
            shared: Arc::new(Shared {
                cursors: Cursors::new(store.clone()),
                store,
                router,
                dir: dir.into(),
                creds,
                sessions: Sessions::new(),
                cfg,
                clock,
                stopping,
            }),
        }
    }

    /// The tonic server for this service, with the configured message limit.
    pub fn into_server(self) -> pb::alarm_centre_server::AlarmCentreServer<CentreService> {
        let max = self.shared.cfg.max_message_bytes;
        pb::alarm_centre_server::AlarmCentreServer::new(self).max_decoding_message_size(max)
    }

    /// Ends every stream with UNAVAILABLE (the engine is stopping, not the centres failing: their
    /// alarms are not escalated for it) and refuses new ones.
    pub fn stop_streams(&self) {
        self.shared.stopping.send_replace(true);
    }

    /// Centres with a live stream now.
    pub fn connected(&self) -> usize {
        self.shared.sessions.connected()
    }

    fn scope<T>(&self, req: &Request<T>) -> Result<Scope, Status> {
        let centre = self.shared.creds.authenticate(req)?;
        // A receiver the engine runs follows its outbox itself: a second reader would race it
        // for the cursor.
        let runs_receiver = self
            .shared
            .dir
            .load()
            .records
            .centres
            .get(centre.as_str())
            .is_some_and(|c| c.receiver.is_some());
        if runs_receiver {
            return Err(Status::permission_denied(format!(
                "centre {centre} is a receiver the engine runs; it does not connect"
            )));
        }
        Scope::new(self.shared.dir.clone(), centre)
    }
}

type SessionStream =
    Pin<Box<dyn futures::Stream<Item = Result<pb::ServerMessage, Status>> + Send + 'static>>;

/// Most alarms one ListOpenAlarms answer carries, and open-index entries it looks at.
const LIST_MAX: usize = 1000;
const LIST_SCAN_MAX: usize = 100_000;

#[tonic::async_trait]
impl pb::alarm_centre_server::AlarmCentre for CentreService {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        req: Request<Streaming<pb::CentreMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let scope = self.scope(&req)?;
        if *self.shared.stopping.borrow() {
            return Err(Status::unavailable("server is shutting down"));
        }
        let peer = req.remote_addr();
        let (tx, rx) = mpsc::channel(64);
        let shared = self.shared.clone();
        tokio::spawn(stream::run(shared, scope, req.into_inner(), tx, peer));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_open_alarms(
        &self,
        req: Request<pb::ListOpenAlarmsRequest>,
    ) -> Result<Response<pb::ListOpenAlarmsResponse>, Status> {
        let scope = self.scope(&req)?;
        let q = req.into_inner();
        let limit = match q.limit as usize {
            0 => LIST_MAX,
            n => n.min(LIST_MAX),
        };
        let store = &self.shared.store;
        let (ids, cut_at) = store
            .open_alarm_ids(q.after_alarm_id.saturating_add(1), LIST_SCAN_MAX)
            .map_err(|e| Status::unavailable(format!("reading open alarms: {e}")))?;
        let mut alarms = Vec::new();
        let mut next = 0;
        for id in ids {
            let Ok(a) = scope.load(store, id) else {
                continue;
            };
            if !(q.all_tenant_alarms || scope.is_mine(&a)) {
                continue;
            }
            if alarms.len() == limit {
                next = alarms.last().map(|a: &pb::Alarm| a.alarm_id).unwrap_or(0);
                break;
            }
            let fix = stream::opening_fix(store, a.id);
            alarms.push(convert::alarm(&a, &scope.directory(), fix.as_ref()));
        }
        if let (0, Some(at)) = (next, cut_at) {
            next = at;
        }
        Ok(Response::new(pb::ListOpenAlarmsResponse {
            alarms,
            next_after_alarm_id: next,
        }))
    }

    async fn get_audit(
        &self,
        req: Request<pb::GetAuditRequest>,
    ) -> Result<Response<pb::GetAuditResponse>, Status> {
        let scope = self.scope(&req)?;
        let id = AlarmId(req.into_inner().alarm_id);
        let store = &self.shared.store;
        let alarm = scope.load(store, id)?;
        let records = store
            .alarm_audit(id)
            .map_err(|e| Status::unavailable(format!("reading audit of {id}: {e}")))?;
        let fix = stream::opening_fix(store, id);
        Ok(Response::new(pb::GetAuditResponse {
            alarm: Some(convert::alarm(&alarm, &scope.directory(), fix.as_ref())),
            records: records.iter().map(convert::audit).collect(),
        }))
    }
}
