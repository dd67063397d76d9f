//! What the QUIC, SIP and MQTT fleets share: per device a queue to its task, the dispatcher's
//! `send` into it, connecting the devices a bounded number at a time, and the bounded wait for
//! the tasks at the end.
use std::future::Future;
use std::sync::Arc;

use futures::stream::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::quic::Job;
use crate::record::Recorder;

/// What a device task's queue carries: the jobs, and in some fleets other inputs too.
pub trait Queued: Sized {
    fn from_job(job: Job) -> Self;
    /// The job in what a closed queue handed back, to count it as not sent.
    fn into_job(self) -> Option<Job>;
    /// What tells a task that no more jobs come, for tasks whose queue stays open when the
    /// fleet drops its sender (others hold senders to it too).
    fn end() -> Option<Self> {
        None
    }
}

impl Queued for Job {
    fn from_job(job: Job) -> Self {
        job
    }

    fn into_job(self) -> Option<Job> {
        Some(self)
    }
}

/// When connecting stops before every device was tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// Every device is tried.
    Never,
    /// When the whole first wave failed and none came up: the server is not there (or refuses
    /// everyone). Saying so at once beats timing out device by device.
    AfterFailedFirstWave,
}

/// The devices of a fleet: per device its queue, or `None` if it did not connect, and the tasks
/// serving the queues.
pub struct DeviceQueues<T> {
    queues: Vec<Option<mpsc::UnboundedSender<T>>>,
    names: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    recorder: Arc<Recorder>,
}

impl<T: Queued> DeviceQueues<T> {
    /// The devices `names`, none connected yet.
    pub fn new(names: Vec<String>, recorder: Arc<Recorder>) -> Self {
        let (stop, _) = watch::channel(false);
        DeviceQueues {
            queues: (0..names.len()).map(|_| None).collect(),
            tasks: Vec::with_capacity(names.len()),
            names,
            stop,
            recorder,
        }
    }

    /// Changes when the device tasks must stop at once (the deadline of [`Self::finish`]).
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Device `i` is up: its jobs go to `queue`, which `task` serves.
    pub fn start(&mut self, i: usize, queue: mpsc::UnboundedSender<T>, task: JoinHandle<()>) {
        self.queues[i] = Some(queue);
        self.tasks.push(task);
    }

    /// Connects every device, at most `parallel` at once, and starts the task of each as it
    /// comes up (`start` returns its queue and task); `connected(k)` is called as they do.
    /// A device that fails is counted as a `connect` error and left out; the first error is the
    /// answer if none came up.
    pub async fn connect_each<'a, C, F>(
        &'a mut self,
        parallel: usize,
        give_up: GiveUp,
        connect: impl Fn(usize, &'a str) -> F,
        mut start: impl FnMut(usize, &str, C) -> (mpsc::UnboundedSender<T>, JoinHandle<()>),
        connected: impl Fn(usize),
    ) -> Result<(), String>
    where
        F: Future<Output = Result<C, String>>,
    {
        let parallel = parallel.max(1);
        let names = &self.names;
        let mut attempts = futures::stream::iter(names.iter().enumerate().map(|(i, name)| {
            let attempt = connect(i, name);
            async move { (i, attempt.await) }
        }))
        .buffer_unordered(parallel);
        let (mut up, mut failed, mut first_error) = (0, 0, None);
        while let Some((i, r)) = attempts.next().await {
            match r {
                Ok(c) => {
                    let (queue, task) = start(i, &names[i], c);
                    self.queues[i] = Some(queue);
                    self.tasks.push(task);
                    up += 1;
                    connected(up);
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    self.recorder.error_kind("connect", 1);
                    failed += 1;
                    first_error.get_or_insert(e);
                    if give_up == GiveUp::AfterFailedFirstWave
                        && up == 0
                        && failed >= parallel.min(names.len())
                    {
                        break;
                    }
                }
            }
        }
        if up == 0 {
            return Err(first_error.unwrap_or_else(|| "no devices".into()));
        }
        Ok(())
    }

    /// Hands a due event to its device's task; never waits.
    pub fn send(&self, job: Job) {
        let d = job.planned.device % self.queues.len();
        self.recorder
            .sent(&self.names[d], &job.planned.key, job.at, job.path);
        let refused = match &self.queues[d] {
            Some(q) => q.send(T::from_job(job)).err().and_then(|e| e.0.into_job()),
            None => Some(job),
        };
        if let Some(job) = refused {
            self.recorder
                .error(&self.names[d], &job.planned.key, "not_connected");
        }
    }

    /// Stops sending and waits for the device tasks, at most until `deadline`; then signals
    /// those still busy to stop, and waits for them to count what is left.
    pub async fn finish(self, deadline: Instant) {
        let DeviceQueues {
            queues,
            mut tasks,
            stop,
            ..
        } = self;
        for q in queues.iter().flatten() {
            if let Some(end) = T::end() {
                let _ = q.send(end);
            }
        }
        drop(queues); // device tasks see their queue end once it is empty
        let all = futures::future::join_all(tasks.iter_mut());
        if tokio::time::timeout_at(deadline, all).await.is_err() {
            let _ = stop.send(true);
            // The tasks that ended were polled to their end above: polling their handles again
            // panics ("JoinHandle polled after completion"), so wait only for the others.
            let busy = tasks.into_iter().filter(|t| !t.is_finished());
            futures::future::join_all(busy).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::record::Path;
    use crate::scenario::{Kind, Planned};

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("d{i}")).collect()
    }

    fn job(device: usize, key: &str) -> Job {
        Job {
            planned: Planned {
                device,
                key: key.into(),
                kind: Kind::Heartbeat,
            },
            at: Instant::now(),
            path: Path::EndsAtAck,
        }
    }

    #[tokio::test]
    async fn a_failed_first_wave_gives_up_only_when_asked() {
        for (give_up, tried) in [(GiveUp::AfterFailedFirstWave, 2), (GiveUp::Never, 10)] {
            let rec = Arc::new(Recorder::new(Instant::now()));
            let mut devices = DeviceQueues::<Job>::new(names(10), rec.clone());
            let e = devices
                .connect_each(
                    2,
                    give_up,
                    |_, name| async move { Err::<(), _>(format!("device {name}: refused")) },
                    |_, _, ()| unreachable!("no device comes up"),
                    |_| {},
                )
                .await
                .unwrap_err();
            assert!(e.starts_with("device d") && e.ends_with(": refused"), "{e}");
            assert_eq!(rec.finish().counts.errors.get("connect"), Some(&tried));
        }
    }

    /// A run whose deadline passes while one device is still busy and another has ended: the
    /// busy one is told to stop and waited for, the ended one is not polled again (that panicked
    /// at the end of some `gps-fleet` runs, and the report was never written).
    #[tokio::test]
    async fn finish_past_the_deadline_stops_the_busy_and_leaves_the_ended_alone() {
        let rec = Arc::new(Recorder::new(Instant::now()));
        let mut devices = DeviceQueues::<Job>::new(names(2), rec);
        let (quick_tx, mut quick_rx) = mpsc::unbounded_channel::<Job>();
        let quick = tokio::spawn(async move { while quick_rx.recv().await.is_some() {} });
        let (busy_tx, _busy_rx) = mpsc::unbounded_channel::<Job>();
        let mut stop = devices.stop_signal();
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = stopped.clone();
        let busy = tokio::spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        devices.start(0, quick_tx, quick);
        devices.start(1, busy_tx, busy);
        devices
            .finish(Instant::now() + std::time::Duration::from_millis(200))
            .await;
        assert!(stopped.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn jobs_reach_connected_devices_and_the_others_are_not_connected() {
        let rec = Arc::new(Recorder::new(Instant::now()));
        let mut devices = DeviceQueues::<Job>::new(names(3), rec.clone());
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let ups = RefCell::new(Vec::new());
        // d0 fails, but d1 of the same first wave comes up: no giving up.
        devices
            .connect_each(
                2,
                GiveUp::AfterFailedFirstWave,
                |i, name| async move {
                    if i == 0 {
                        Err(format!("{name} is down"))
                    } else {
                        Ok(())
                    }
                },
                |_, name, ()| {
                    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
                    let (seen, name) = (seen_tx.clone(), name.to_string());
                    let task = tokio::spawn(async move {
                        while let Some(job) = rx.recv().await {
                            let _ = seen.send(format!("{name}:{}", job.planned.key));
                        }
                    });
                    (tx, task)
                },
                |k| ups.borrow_mut().push(k),
            )
            .await
            .unwrap();
        assert_eq!(*ups.borrow(), [1, 2]);
        for (device, key) in [(0, "a"), (1, "b"), (2, "c"), (4, "d")] {
            devices.send(job(device, key));
        }
        drop(seen_tx);
        devices
            .finish(Instant::now() + std::time::Duration::from_secs(5))
            .await;
        let mut got = Vec::new();
        while let Some(s) = seen.recv().await {
            got.push(s);
        }
        got.sort();
        assert_eq!(got, ["d1:b", "d1:d", "d2:c"]);
        let counts = rec.finish().counts;
        assert_eq!(counts.sent, 4);
        assert_eq!(counts.errors.get("connect"), Some(&1));
        assert_eq!(counts.errors.get("not_connected"), Some(&1));
    }
}
