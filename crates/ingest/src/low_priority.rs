//! Work that must yield to alarms runs on a thread of its own: a tokio runtime on one OS thread
//! whose scheduling priority is lowered (a nice value). Under a flood its tasks queue behind
//! nothing of the alarm path's, and when the CPU is contested the kernel runs the engine's
//! other threads first; when it is not, the thread has all it needs. Used by the QUIC
//! telemetry port (its endpoint's driver, accept loop and connections) and by the SIP/UDP
//! front's refuser (the 503s answering a shed flood).
use std::io;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

pub(crate) struct LowPriorityThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Runs `task` to its end on a thread of its own at `nice`, then the thread ends.
pub(crate) fn run(
    name: &str,
    nice: i32,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
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
    /// the port still works, only without its lower priority.
    pub(crate) fn start(name: &str, nice: i32) -> io::Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                lower_priority(nice);
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        let _ = ready_tx.send(Ok(rt.handle().clone()));
                        // Until told to stop, or the server is dropped; then its tasks end.
                        rt.block_on(async {
                            let _ = stopped.await;
                        });
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?;
        let handle = ready_rx
            .recv()
            .map_err(|_| io::Error::other("telemetry thread ended before its runtime started"))??;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Ends the runtime (its remaining tasks are dropped) and the thread, without blocking.
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Not joined: it ends on its own once its runtime is dropped.
        drop(self.thread.take());
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
