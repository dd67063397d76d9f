//! Wiring: open the store, recover, start the router (and, as they land, the fronts), run until a
//! signal, then shut down in order within a bound.
use crate::config::Config;
use crate::inputs;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vaka_admin::Control;
use vaka_centre::{CentreServer, CentreService};
use vaka_core::directory::Directory;
use vaka_ingest::dc09::Dc09Server;
use vaka_ingest::quic::QuicServer;
use vaka_ingest::sip::SipServer;
use vaka_router::{Clock, LiveDirectory, Presence, Router};
use vaka_store::{RecoverOptions, RocksBackend, RocksConfig, Store, StoreError};

/// The running core of the engine: what every front and test talks to.
pub struct Engine {
    pub store: Store,
    pub router: Arc<Router>,
    /// The vaka/1 QUIC front, when `[quic]` is configured.
    pub quic: Option<QuicServer>,
    /// The alarm-centre gRPC API on `listen.grpc`.
    pub centres: Option<CentreServer>,
    /// The SCAIP front, when `[sip]` is configured.
    pub sip: Option<SipServer>,
    /// The SIA DC-09 front, when `[dc09]` is configured.
    pub dc09: Option<Dc09Server>,
    /// The control plane: the one writer of the live directory, tokens and admin audit.
    pub control: Arc<Control>,
    /// Receivers the engine runs as centres (webhooks, e-mail, SMS, responder page, SCAIP).
    receivers: Option<vaka_receivers::Receivers>,
    /// The periodic position-retention sweep (aborted at shutdown).
    retention: tokio::task::JoinHandle<()>,
    /// Per-tenant connected centres and disk space gauges (aborted at shutdown).
    gauges: tokio::task::JoinHandle<()>,
    /// A cluster node's input-log follower and reconciliation (aborted at shutdown).
    cluster_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// A cluster node's partition leases (released at shutdown).
    leases: Option<inputs::leases::Keeper>,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Engine {
    /// Opens the store under `data_dir`, recovers it and starts the router shards.
    /// Must be called inside a tokio runtime.
    pub async fn start(cfg: &Config) -> Result<Engine, String> {
        let mut phase = Phases::default();
        let dir = &cfg.server.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| format!("data dir {}: {e}", dir.display()))?;
        let mut rocks = RocksConfig::new(crate::salvage::db_dir(dir));
        rocks.write_buffer_size = cfg.store.write_buffer_mb << 20;
        rocks.max_open_files = cfg.store.max_open_files as i32;
        let backend = RocksBackend::open(&rocks).map_err(|e| refused(e, dir, "opening"))?;
        let open_ms = phase.lap();
        let mut router_cfg = cfg.router_config();
        let (store, mut recovered) = Store::open(
            Arc::new(backend),
            cfg.group_config(),
            RecoverOptions {
                now_ms: wall_ms(),
                idem_window_ms: router_cfg.idempotency_window_ms,
            },
        )
        .map_err(|e| refused(e, dir, "recovering"))?;
        let recover_ms = phase.lap();
        metrics::gauge!("vaka_store_recovery_seconds").set(recovered.took.as_secs_f64());
        let (open_alarms, idem) = (recovered.open_alarms.len(), recovered.idem.len());
        let (idem_expired, next_event_id) = (recovered.idem_expired, recovered.next_event_id);
        // A cluster node catches up with the cluster's directory log here, before any front
        // opens: a device the cluster knows is never refused at start.
        let loaded = match &cfg.cluster {
            None => load_directory(cfg, &store).map(|d| (d, None, None)),
            Some(c) => cluster_directory(c, cfg, &store)
                .await
                .map(|(d, f, js)| (d, Some(f), Some(js))),
        };
        let (directory, follower, js) = match loaded {
            Ok((d, f, js)) => (LiveDirectory::new(d), f, js),
            Err(e) => {
                close_store(&store);
                return Err(e);
            }
        };
        // A cluster node's shards append device events to the input log; what other nodes
        // appended is stored here before any front opens.
        let mut cluster_tasks = Vec::new();
        let mut cluster_node = None;
        if let (Some(c), Some(js)) = (&cfg.cluster, js) {
            match cluster_inputs(c, js, &store).await {
                Ok((intake, node, tasks)) => {
                    // Before the shards run: what another node took over meanwhile is not
                    // offered or escalated here again.
                    if let Err(e) =
                        inputs::adopt::settle_recovered(&store, &mut recovered, node.range).await
                    {
                        close_store(&store);
                        return Err(e);
                    }
                    router_cfg.intake = Some(intake);
                    router_cfg.telemetry_linger = c.telemetry_linger();
                    router_cfg.owners = vaka_router::Owners::cluster(c.partitions);
                    router_cfg.id_range = node.range;
                    cluster_node = Some(node);
                    cluster_tasks = tasks;
                }
                Err(e) => {
                    close_store(&store);
                    return Err(e);
                }
            }
        }
        let directory_ms = phase.lap();
        let clock = Clock::new();
        let owners = router_cfg.owners.clone();
        let mut leases = None;
        // Every centre counts as away from now on: the reconnect grace starts with the engine.
        let router = Router::start(
            router_cfg,
            store.clone(),
            recovered,
            directory.clone(),
            Presence::new(),
            clock,
        );
        // A cluster node's follower hands the router what its catch-up stored, then what it
        // stores; only then do its leases say which devices the router speaks for.
        if let (Some(node), Some(c)) = (cluster_node, &cfg.cluster) {
            let (ready, caught_up) = tokio::sync::oneshot::channel();
            let following = inputs::leases::Following {
                ready: caught_up,
                handed: node.follower.handed(),
                log: node.log,
                adopter: inputs::adopt::Adopter::new(store.clone(), router.clone(), node.range),
            };
            cluster_tasks.push(node.follower.spawn(router.clone(), ready));
            leases = Some(inputs::leases::spawn(
                node.leases,
                c.partitions,
                owners,
                c.lease_renew(),
                following,
            ));
        }
        let router_ms = phase.lap();
        tracing::info!(
            open_ms,
            recover_ms,
            directory_ms,
            router_ms,
            devices = directory.load().devices.len(),
            directory_revision = directory.load().revision,
            open_alarms,
            idempotency_entries = idem,
            idempotency_expired = idem_expired,
            next_event_id,
            "store recovered"
        );
        let sip = match &cfg.sip {
            None => None,
            Some(sc) => {
                let l = &cfg.listen;
                let listen = sc.listen(l.sip_udp, l.sip_tcp, l.sip_tls);
                let started =
                    SipServer::start(sc, listen, router.clone(), directory.clone(), clock);
                match started {
                    Ok(s) => Some(s),
                    Err(e) => {
                        stop_router(&router, &store);
                        return Err(format!("starting the SCAIP front: {e}"));
                    }
                }
            }
        };
        let dc09 = match &cfg.dc09 {
            None => None,
            Some(dc) => match Dc09Server::start(dc, router.clone(), directory.clone(), clock) {
                Ok(s) => Some(s),
                Err(e) => {
                    drop(sip); // the process exits on this error
                    stop_router(&router, &store);
                    return Err(format!("starting the DC-09 front: {e}"));
                }
            },
        };
        let quic = match &cfg.quic {
            Some(q) => match QuicServer::start(q, router.clone(), directory.clone()) {
                Ok(server) => {
                    tracing::info!(addrs = ?server.local_addrs(), "vaka/1 QUIC front listening");
                    Some(server)
                }
                Err(e) => {
                    drop((sip, dc09)); // the process exits on this error
                    stop_router(&router, &store);
                    return Err(format!("starting the QUIC front: {e}"));
                }
            },
            None => None,
        };
        let retention = vaka_router::retention::spawn(
            cfg.retention_config(),
            store.clone(),
            router.clone(),
            directory.clone(),
            clock,
        );
        let gauges = crate::service_gauges::spawn(
            directory.clone(),
            router.presence().clone(),
            cfg.server.data_dir.clone(),
        );
        let control = match follower
            .map_or_else(
                || Control::new(store.clone(), directory.clone(), router.clone(), clock),
                |f| {
                    let (s, d, r) = (store.clone(), directory.clone(), router.clone());
                    Control::new_replicated(s, d, r, clock, f)
                },
            )
            .map_err(|e| format!("reading API tokens: {e}"))
            .and_then(|c| {
                if let Some(t) = &cfg.admin.bootstrap_token {
                    c.ensure_bootstrap_token(t)
                        .map_err(|e| format!("storing admin.bootstrap_token: {e}"))?;
                }
                Ok(c)
            }) {
            Ok(c) => c,
            Err(e) => {
                stop_router(&router, &store);
                return Err(e);
            }
        };
        let mut engine = Engine {
            store,
            router,
            control,
            centres: None,
            receivers: None,
            quic,
            sip,
            dc09,
            retention,
            gauges,
            cluster_tasks,
            leases,
        };
        match engine.start_centres(cfg, directory.clone(), clock) {
            Ok(c) => engine.centres = Some(c),
            Err(e) => {
                stop_router(&engine.router, &engine.store);
                return Err(e);
            }
        }
        let receivers = vaka_receivers::Receivers::start(
            cfg.receivers.clone(),
            engine.store.clone(),
            engine.router.clone(),
            directory,
        )
        .await;
        match receivers {
            Ok(r) => engine.receivers = Some(r),
            Err(e) => {
                stop_router(&engine.router, &engine.store);
                return Err(format!("starting the receivers: {e}"));
            }
        }
        Ok(engine)
    }

    /// The centre API: offers and updates out of the store's outboxes, centre inputs into the router.
    fn start_centres(
        &self,
        cfg: &Config,
        directory: LiveDirectory,
        clock: Clock,
    ) -> Result<CentreServer, String> {
        if cfg.centre_api_in_plaintext_off_loopback() {
            tracing::warn!(
                addr = %cfg.listen.grpc,
                "grpc.insecure: the centre API serves WITHOUT TLS on a non-loopback address; bearer \
                 tokens and alarm data cross the network in the clear"
            );
        }
        let service = CentreService::new(
            self.store.clone(),
            self.router.clone(),
            directory,
            cfg.centre_credentials().with_api_tokens({
                let control = self.control.clone();
                Arc::new(move |secret: &str| {
                    let t = control.authenticate(secret)?;
                    (t.role == vaka_core::access::Role::Centre)
                        .then(|| t.centre.map(vaka_core::CentreId::new))
                        .flatten()
                })
            }),
            cfg.centre_api_config(),
            clock,
        );
        CentreServer::start(cfg.listen.grpc, service, cfg.centre_tls().as_ref())
    }

    /// The admin API's handlers over this engine.
    pub fn admin_api(
        &self,
        cfg: &Config,
        metrics: Option<vaka_admin::http::MetricsText>,
    ) -> vaka_admin::http::Api {
        let sip = self.sip.as_ref().map(|s| s.registration_lookup());
        let quic = self.quic.as_ref().map(|q| q.connection_lookup());
        vaka_admin::http::Api {
            control: self.control.clone(),
            realm: cfg.sip_realm(),
            links: Arc::new(move |device| {
                let mut out = Vec::new();
                if let Some(q) = &quic {
                    for (remote, since) in q(device) {
                        out.push(vaka_admin::http::Link {
                            transport: "quic".into(),
                            remote: remote.to_string(),
                            since_ms: Some(since),
                            until_ms: None,
                        });
                    }
                }
                if let Some((uri, until)) = sip.as_ref().and_then(|s| s(device)) {
                    out.push(vaka_admin::http::Link {
                        transport: "sip-register".into(),
                        remote: uri,
                        since_ms: None,
                        until_ms: Some(until as i64),
                    });
                }
                out
            }),
            metrics,
        }
    }

    /// Where the centre API listens (port 0 in config gives an ephemeral port).
    pub fn centre_addr(&self) -> Option<std::net::SocketAddr> {
        self.centres.as_ref().map(|c| c.local_addr())
    }

    /// Stops taking events, drains the shards, then closes the store (flushing it).
    pub async fn shutdown(mut self) -> Result<(), String> {
        // Centres first: their streams end without counting as lost, so nothing escalates for it.
        if let Some(centres) = self.centres.take() {
            centres.shutdown(Duration::from_secs(2)).await;
        }
        if let Some(receivers) = self.receivers.take() {
            receivers.shutdown().await;
        }
        // Then the fronts: they answer what they already submitted, then the shards drain.
        if let Some(q) = &self.quic {
            q.shutdown().await;
        }
        if let Some(sip) = &self.sip {
            sip.shutdown().await;
        }
        if let Some(dc09) = &self.dc09 {
            dc09.shutdown().await;
        }
        self.retention.abort();
        self.gauges.abort();
        // The fronts take nothing more: another node may speak for this one's partitions now.
        if let Some(leases) = self.leases.take() {
            leases.release().await;
        }
        for t in &self.cluster_tasks {
            t.abort();
        }
        self.control.stop_following().await;
        self.router.shutdown().await;
        let store = self.store.clone();
        let closed = tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(|e| format!("store close task: {e}"))?;
        // Every acknowledged event is in the synced log already: a store that cannot flush at
        // close (a storage error) loses nothing, so the shutdown is still a clean one.
        if let Err(e) = closed {
            tracing::error!(error = %e, "closing the store: not flushed; the next start replays its log");
        }
        Ok(())
    }
}

/// Milliseconds spent in each phase of a start, for the `store recovered` line.
struct Phases(Instant);

impl Default for Phases {
    fn default() -> Self {
        Phases(Instant::now())
    }
}

impl Phases {
    /// Milliseconds since the previous lap (or the start).
    fn lap(&mut self) -> f64 {
        let ms = self.0.elapsed().as_secs_f64() * 1000.0;
        self.0 = Instant::now();
        (ms * 10.0).round() / 10.0
    }
}

/// Why the store cannot be opened; for damage, also what the operator can do (invariant 12).
fn refused(e: StoreError, data_dir: &std::path::Path, doing: &str) -> String {
    let damaged = match &e {
        StoreError::Damaged(_) | StoreError::Corrupt { .. } => true,
        StoreError::Engine(text) => text.starts_with("Corruption"),
        StoreError::Closed | StoreError::Format { .. } => false,
    };
    if damaged {
        format!("{doing} store: {e}; {}", crate::salvage::advice(data_dir))
    } else {
        format!("{doing} store: {e}")
    }
}

/// The stored directory with the file's bootstrap records applied (each one absent or different
/// from the stored record is written, synced, before anything runs).
fn load_directory(cfg: &Config, store: &Store) -> Result<Directory, String> {
    let (records, revision) = store
        .load_directory()
        .map_err(|e| format!("reading the directory: {e}"))?;
    let mut dir = Directory::from_records(cfg.directory_defaults(), records, revision);
    let changed = vaka_admin::bootstrap(store, &mut dir, cfg.bootstrap_changes(), wall_ms())
        .map_err(|e| format!("applying the configuration's directory entries: {e}"))?;
    if changed > 0 {
        tracing::info!(
            changed,
            revision = dir.revision,
            "directory: configuration entries applied"
        );
    }
    Ok(dir)
}

/// A cluster node's directory: the servers checked (each must sync every write), the store's
/// id range taken (`cluster_ids`), the directory log `VAKA_DIR` opened (created R3 on file
/// storage, or checked), the file's entries appended if the log is empty, and every batch this
/// node has not applied yet applied.
async fn cluster_directory(
    cluster: &vaka_cluster::ClusterConfig,
    cfg: &Config,
    store: &Store,
) -> Result<
    (
        Directory,
        vaka_admin::replicated::Follower,
        async_nats::jetstream::Context,
    ),
    String,
> {
    const SETTLE: Duration = Duration::from_secs(30);
    let js = vaka_cluster::connect(cluster)
        .await
        .map_err(|e| format!("joining the cluster: {e}"))?;
    // Before anything on this node gives an id.
    crate::cluster_ids::take(&js, store, &cluster.node_id).await?;
    let log = crate::settling::open_while_settling(
        "the cluster's directory log",
        // A wrong stream is not going to settle.
        |e| matches!(e, vaka_cluster::DirectoryLogError::Substrate(_)),
        || vaka_cluster::DirectoryLog::open(js.clone()),
    )
    .await?;
    let (dir, follower) = vaka_admin::replicated::start(
        log,
        store,
        cfg.directory_defaults(),
        cfg.bootstrap_changes(),
        wall_ms(),
        SETTLE,
    )
    .await?;
    tracing::info!(
        node = %cluster.node_id,
        directory_log_sequence = follower.applied(),
        "cluster: directory caught up"
    );
    Ok((dir, follower, js))
}

/// What a cluster node starts once its router runs: the input log's follower (caught up) and
/// the lease bucket.
struct ClusterNode {
    follower: inputs::follow::Follower,
    /// This node's id range (`cluster_ids`).
    range: u64,
    leases: vaka_cluster::lease::LeaseBucket,
    /// What the lease loop reads the stream's end from.
    log: vaka_cluster::InputLog,
}

/// A cluster node's input log: `VAKA_IN` opened (a start without it is refused, like one without
/// the directory log), every input this node does not hold stored (`inputs::follow`), and
/// reconciliation (a pass at once, then every `reconcile_every_ms`) started; the lease bucket
/// opened. Returns the shards' appender, the follower and the bucket (started with the router),
/// and the reconciliation task. A catch-up that fails (the stream busy electing a leader) does
/// not stop the start: the follower goes on from the same mark.
async fn cluster_inputs(
    cluster: &vaka_cluster::ClusterConfig,
    js: async_nats::jetstream::Context,
    store: &Store,
) -> Result<
    (
        vaka_router::Intake,
        ClusterNode,
        Vec<tokio::task::JoinHandle<()>>,
    ),
    String,
> {
    let range = store
        .id_range()
        .map_err(|e| format!("reading this node's id range: {e}"))?;
    let leases = inputs::leases::open(cluster, js.clone())
        .await?
        .with_range(range);
    let log = inputs::open(cluster, js).await?;
    let mut follower = inputs::follow::Follower::new(log.clone(), store.clone(), &cluster.node_id);
    match follower.catch_up().await {
        Ok(stored) => tracing::info!(
            node = %cluster.node_id,
            inputs_stored = stored,
            input_log_read = store.input_read().unwrap_or(0),
            "cluster: input log caught up"
        ),
        Err(e) => tracing::warn!(
            node = %cluster.node_id,
            error = %e,
            "cluster: catching up with the input log failed; the follower goes on from where it is"
        ),
    }
    let appender = inputs::append::Appender::new(log.clone(), cluster.partitions, range);
    let log_for_leases = log.clone();
    let tasks = vec![
        inputs::reconcile::Reconciler::new(log, store.clone()).spawn(cluster.reconcile_every())
    ];
    Ok((
        vaka_router::Intake(Arc::new(appender)),
        ClusterNode {
            follower,
            range,
            leases,
            log: log_for_leases,
        },
        tasks,
    ))
}

/// Closes a store that was opened but not handed to a router.
fn close_store(store: &Store) {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let _ = store.close();
    });
}

/// A start that fails after the router is up must still stop its shards and close the store,
/// so that the RocksDB lock is released and nothing is left half-written.
fn stop_router(router: &Arc<Router>, store: &Store) {
    let (router, store) = (router.clone(), store.clone());
    tokio::spawn(async move {
        router.shutdown().await;
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    });
}

/// `vaka serve`: runs until SIGINT or SIGTERM. `began` is when the process started (before the
/// configuration was read), for the start-up time in the `vaka ready` line.
pub async fn run(mut cfg: Config, began: Instant) -> Result<(), String> {
    let mut stop = StopSignals::install();
    let metrics = crate::observe::init_metrics()?;
    let tls = cfg
        .admin
        .tls_cert
        .as_deref()
        .zip(cfg.admin.tls_key.as_deref())
        .map(|(cert, key)| crate::http::Tls {
            cert,
            key,
            client_ca: cfg.admin.client_ca.as_deref(),
        });
    let https = tls.is_some();
    let metrics_text: vaka_admin::http::MetricsText = {
        let handle = metrics.clone();
        Arc::new(move || handle.render())
    };
    let (api_slot, http_addr) = crate::http::start(cfg.listen.http, metrics, tls).await?;
    if !https && !cfg.listen.http.ip().is_loopback() {
        tracing::warn!(
            addr = %http_addr,
            "the admin API serves WITHOUT TLS on a non-loopback address; set admin.tls_cert and \
             admin.tls_key"
        );
    }
    let config_ms = began.elapsed().as_secs_f64() * 1000.0;
    apply_descriptor_budget(&mut cfg)?;
    let engine = Engine::start(&cfg).await?;
    let mut api = vaka_admin::http::router(engine.admin_api(&cfg, Some(metrics_text)));
    if let Some(r) = &engine.receivers {
        // The responder page (`/r/...`) beside the API, on the same server.
        api = api.merge(r.routes());
    }
    let _ = api_slot.set(api);
    let _canaries = crate::canary::spawn(
        engine.control.clone(),
        engine.sip.as_ref().and_then(|s| s.addrs().udp),
    );
    let mut udp = Vec::new();
    if let Some(q) = &engine.quic {
        udp.extend(q.local_addrs().iter().map(|a| ("quic", a.port())));
        udp.extend(q.telemetry_addr().map(|a| ("quic_telemetry", a.port())));
    }
    if let Some(a) = engine.sip.as_ref().and_then(|s| s.addrs().udp) {
        udp.push(("sip", a.port()));
    }
    udp.dedup(); // endpoints sharing a port (SO_REUSEPORT) are counted together
    let drops = crate::udp_drops::spawn(udp);
    tracing::info!(
        startup_ms = (began.elapsed().as_secs_f64() * 10_000.0).round() / 10.0,
        config_ms = (config_ms * 10.0).round() / 10.0,
        shards = engine.router.shards(),
        metrics = %format!("http://{http_addr}/metrics"),
        admin_api = %format!("{}://{http_addr}/api/v1", if https { "https" } else { "http" }),
        centre_api = ?engine.centre_addr(),
        data_dir = %cfg.server.data_dir.display(),
        "vaka ready"
    );
    let signal = stop.wait().await;
    if let Some(d) = drops {
        d.abort();
    }
    tracing::info!(signal, "shutting down: no new events, draining shards");
    let bound = Duration::from_secs(cfg.server.shutdown_timeout_secs);
    match tokio::time::timeout(bound, engine.shutdown()).await {
        Ok(Ok(())) => {
            tracing::info!("shutdown complete");
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "shutdown did not finish within {}s; unacknowledged events were not acknowledged",
            bound.as_secs()
        )),
    }
}

/// Invariant 13: raise the open-files limit, then cap SIP connections to what the store's and
/// the centre API's reserves leave.
fn apply_descriptor_budget(cfg: &mut Config) -> Result<(), String> {
    let (before, limit, hard) = crate::fds::raise_open_files_limit()
        .map_err(|e| format!("reading the open files limit: {e}"))?;
    let store_files = cfg.store.max_open_files;
    let dc09 = cfg
        .dc09
        .as_ref()
        .filter(|d| d.tcp.is_some())
        .map_or(0, |d| d.max_connections);
    let sip = match &mut cfg.sip {
        Some(sip) if sip.tcp || sip.tls => {
            let cap =
                crate::fds::sip_connection_cap(limit, store_files, dc09, sip.max_connections)?;
            let configured = sip.max_connections;
            sip.max_connections = cap;
            Some((configured, cap))
        }
        _ => None,
    };
    tracing::info!(
        soft_limit_before = before,
        soft_limit = limit,
        hard_limit = hard,
        store_max_open_files = store_files,
        centre_reserve = crate::fds::CENTRE_RESERVE,
        dc09_max_connections = dc09,
        sip_max_connections_configured = sip.map(|s| s.0),
        sip_max_connections = sip.map(|s| s.1),
        sip_max_unauthenticated = sip.map(|s| (s.1 / 2).max(1)),
        "descriptor budget"
    );
    Ok(())
}

/// SIGTERM and SIGINT, listened for from the start of `run`: a stop asked for while the engine is
/// still starting (recovering a large store, say) is carried out cleanly once it has started,
/// instead of the default action killing it half-way.
struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> StopSignals {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for {name}");
                None
            }
        };
        StopSignals {
            term: listen(SignalKind::terminate(), "SIGTERM"),
            int: listen(SignalKind::interrupt(), "SIGINT"),
        }
    }

    async fn wait(&mut self) -> &'static str {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.term) => "SIGTERM",
            _ = recv(&mut self.int) => "SIGINT",
        }
    }
}
