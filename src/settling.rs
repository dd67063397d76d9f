//! Opening what a cluster that is just starting may not serve yet (a stream whose leader is
//! still being elected): tried again every 200 ms for up to 30 s.
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// Calls `open` until it succeeds, `fatal` says its error will not settle (a stream configured
/// wrongly), or 30 s have passed; an error is named by `what`.
pub async fn open_while_settling<T, E: Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    fatal: impl Fn(&E) -> bool,
    mut open: impl FnMut() -> F,
) -> Result<T, String> {
    const SETTLE: Duration = Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        match open().await {
            Ok(v) => return Ok(v),
            Err(e) if fatal(&e) || tokio::time::Instant::now() >= deadline => {
                return Err(format!("{what}: {e}"))
            }
            Err(e) => {
                tracing::debug!(error = %e, "opening {what}; retrying while the cluster settles");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
