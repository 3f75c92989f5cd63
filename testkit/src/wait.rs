//! Waiting on conditions with a deadline. Every helper polls every 20 ms and reports what it
//! waited for when the deadline passes.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it holds; panics after `timeout`, naming `what`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, timeout, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Polls `check` until it yields a value; panics after `timeout`, naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` until it yields a value; its error, or passing `timeout`, is an error.
pub async fn try_wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_until_the_condition_holds_and_yields_its_value() {
        let mut polls = 0;
        let value = wait_for("the third poll", Duration::from_secs(5), || {
            polls += 1;
            let n = polls;
            async move { (n == 3).then_some(n * 10) }
        })
        .await;
        assert_eq!(value, 30);
    }

    #[tokio::test]
    async fn a_deadline_is_an_error_naming_what_was_awaited() {
        let err = try_wait_for("never", Duration::from_millis(50), || async {
            Ok::<Option<()>, anyhow::Error>(None)
        })
        .await
        .expect_err("times out");
        assert!(err.to_string().contains("never"), "{err}");
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for nothing to hold")]
    async fn wait_until_panics_at_the_deadline() {
        wait_until("nothing to hold", Duration::from_millis(50), || async {
            false
        })
        .await;
    }
}
