//! Work that must yield to alarms runs on a thread of its own: a tokio runtime on one OS thread
//! whose scheduling priority is lowered (a nice value). Under a flood its tasks queue behind
//! nothing of the alarm path's, and when the CPU is contested the kernel runs the engine's
//! other threads first; when it is not, the thread has all it needs. Used by the QUIC
//! telemetry port (its endpoint's driver, accept loop and connections) and by the SIP/UDP
//! front's telemetry lane and refuser (the 503s answering a shed flood).
use std::future::Future;
use std::io;

use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;

/// A runtime on a thread at a lowered priority, running what is spawned on it until stopped.
pub(crate) struct LowPriorityThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
}

/// Runs `task` to its end on a thread of its own at `nice`, then the thread ends.
pub(crate) fn run(
    name: &str,
    nice: i32,
    task: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    run_on(runtime()?, name, nice, task)
}

/// A current-thread runtime, made where the caller can see it fail.
fn runtime() -> io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn run_on(
    rt: Runtime,
    name: &str,
    nice: i32,
    task: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            lower_priority(nice);
            rt.block_on(task)
        })?;
    Ok(())
}

impl LowPriorityThread {
    /// Starts the thread and its runtime. A nice value the system refuses is logged, not fatal:
    /// the work still runs, only without its lower priority.
    pub(crate) fn start(name: &str, nice: i32) -> io::Result<Self> {
        let rt = runtime()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        // Until told to stop, or the owner is dropped; then its tasks end with the runtime.
        run_on(rt, name, nice, async {
            let _ = stopped.await;
        })?;
        Ok(Self {
            handle,
            stop: Some(stop),
        })
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Ends the runtime (its remaining tasks are dropped) and so the thread, without blocking.
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) {
    // On Linux a nice value set for a thread id applies to that thread alone.
    let tid = unsafe { libc::gettid() } as libc::id_t;
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } != 0 {
        tracing::warn!(thread = ?std::thread::current().name(), nice, error = %io::Error::last_os_error(), "could not lower a thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(nice: i32) {
    tracing::warn!(nice, "a thread's priority is lowered on Linux only");
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The thread runs at the nice value asked (read back from /proc, per thread).
    #[test]
    fn the_thread_runs_at_the_lower_priority() {
        let mut t = LowPriorityThread::start("vaka-quic-telem", 7).unwrap();
        let on_the_thread = t.handle().spawn(async {
            let tid = unsafe { libc::gettid() };
            let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap();
            assert_eq!(name.trim(), "vaka-quic-telem");
            unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) }
        });
        let nice = futures::executor::block_on(on_the_thread).unwrap();
        assert_eq!(nice, 7);
        t.stop();
    }
}
