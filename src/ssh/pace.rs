//! Pacing logins per sshd. An sshd drops new connections while too many
//! are still logging in (`MaxStartups`, OpenSSH's default `10:30:100`:
//! from 10 unauthenticated connections on, 30 % of new ones are closed at
//! once, rising to all at 100). A fleet of hosts has one sshd each, but
//! hosts behind one bastion all log in to the bastion's: with `--forks 100`
//! they would arrive together and many be dropped. So at most
//! [`MAX_STARTING`] logins to one `address:port` are in progress at once
//! (TCP connect or jump channel, handshake and login), and an sshd that
//! drops one anyway (a lower `MaxStartups`, or other clients) halves that
//! number for its endpoint; each login that gets through adds one back.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Logins in progress to one endpoint at most: below OpenSSH's default
/// `MaxStartups` start of 10, so a default sshd never drops one of ours.
pub const MAX_STARTING: usize = 8;

/// Times a login the host dropped before saying anything is tried again
/// at once (after a short random wait), before `--connect-retries`' slower
/// retries take over.
pub const DROP_RETRIES: u32 = 8;

/// The endpoints logged in to so far in this run, by `address:port`.
static ENDPOINTS: LazyLock<Mutex<HashMap<String, Arc<Endpoint>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

#[derive(Default)]
struct Endpoint {
    state: Mutex<State>,
    freed: Notify,
}

struct State {
    /// Logins allowed in progress at once now.
    limit: usize,
    /// Logins in progress.
    starting: usize,
}

impl Default for State {
    fn default() -> Self {
        State {
            limit: MAX_STARTING,
            starting: 0,
        }
    }
}

impl Endpoint {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A login in progress to one endpoint; dropping it makes room for the next.
pub struct Start {
    endpoint: Arc<Endpoint>,
}

/// Waits until a login to `endpoint` (`address:port`) may start.
pub async fn start(endpoint: &str) -> Start {
    let endpoint = {
        let mut all = ENDPOINTS.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(all.entry(endpoint.to_owned()).or_default())
    };
    loop {
        let freed = endpoint.freed.notified();
        tokio::pin!(freed);
        // Registered before the check: a login ending in between still
        // wakes this one.
        freed.as_mut().enable();
        {
            let mut state = endpoint.state();
            if state.starting < state.limit {
                state.starting += 1;
                drop(state);
                return Start {
                    endpoint: Arc::clone(&endpoint),
                };
            }
        }
        freed.await;
    }
}

impl Start {
    /// The login got through: one more may start alongside, up to
    /// [`MAX_STARTING`].
    pub fn succeeded(&self) {
        let mut state = self.endpoint.state();
        state.limit = (state.limit + 1).min(MAX_STARTING);
    }

    /// The host dropped the login before saying anything: half as many
    /// may start at once (at least one).
    pub fn dropped(&self) {
        let mut state = self.endpoint.state();
        state.limit = (state.limit / 2).max(1);
    }
}

impl Drop for Start {
    fn drop(&mut self) {
        self.endpoint.state().starting -= 1;
        self.endpoint.freed.notify_waiters();
    }
}

/// The wait before trying a dropped login again for the `n`th time (from
/// 1): 50 ms doubling up to 1.6 s, each within 50-150 % so that logins
/// dropped together do not come back together.
pub fn drop_backoff(n: u32) -> Duration {
    use std::hash::BuildHasher;
    let base = Duration::from_millis(50 << (n.saturating_sub(1)).min(5));
    // RandomState is seeded at random: jitter without a dependency.
    let jitter = std::collections::hash_map::RandomState::new().hash_one(n) % 1001;
    base.mul_f64(0.5 + jitter as f64 / 1000.0)
}

/// The time a connection attempt has spent connecting, not waiting for
/// its turn (or before trying a dropped login again).
pub struct Clock {
    started: Instant,
    /// The waits ended so far, and when the current one began.
    waits: Mutex<(Duration, Option<Instant>)>,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            started: Instant::now(),
            waits: Mutex::new((Duration::ZERO, None)),
        }
    }

    /// `wait`, kept off the clock.
    pub async fn waiting<T>(&self, wait: impl Future<Output = T>) -> T {
        self.waits.lock().unwrap_or_else(PoisonError::into_inner).1 = Some(Instant::now());
        let waited = wait.await;
        let mut waits = self.waits.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(since) = waits.1.take() {
            waits.0 += since.elapsed();
        }
        waited
    }

    /// Time spent connecting so far.
    pub fn connecting(&self) -> Duration {
        let waits = self.waits.lock().unwrap_or_else(PoisonError::into_inner);
        let waiting = waits.1.map_or(Duration::ZERO, |since| since.elapsed());
        self.started
            .elapsed()
            .saturating_sub(waits.0)
            .saturating_sub(waiting)
    }
}

/// A connection's byte stream that keeps the first bytes the host sent:
/// a connection closed before the host's SSH banner is how sshd drops one
/// past `MaxStartups` (saying `Exceeded MaxStartups` first), and how a
/// firewall's connection limit looks.
pub struct Listened<S> {
    inner: S,
    heard: Arc<Mutex<Vec<u8>>>,
}

/// Bytes of the start of a connection kept: the lines a server may send
/// before its banner, and the banner's start.
const KEPT: usize = 256;

/// What a host sent before it closed a connection the handshake failed on.
#[derive(Debug, PartialEq, Eq)]
pub enum Before {
    /// Its SSH banner: it was not dropped at the start.
    Banner,
    /// Not a banner, but sshd's words for a drop past `MaxStartups`.
    ExceededMaxStartups,
    /// Nothing, or other lines than a banner.
    NoBanner,
}

impl<S> Listened<S> {
    /// `inner`, and what will tell what the host sent first.
    pub fn new(inner: S) -> (Self, Heard) {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let stream = Listened {
            inner,
            heard: Arc::clone(&heard),
        };
        (stream, Heard(heard))
    }
}

/// The start of what a [`Listened`] stream's host sent.
pub struct Heard(Arc<Mutex<Vec<u8>>>);

impl Heard {
    /// What the host sent before the connection ended.
    pub fn before(&self) -> Before {
        let heard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut lines = heard.split(|&b| b == b'\n');
        if lines.clone().any(|line| line.starts_with(b"SSH-")) {
            Before::Banner
        } else if lines.any(|line| line.starts_with(b"Exceeded MaxStartups")) {
            Before::ExceededMaxStartups
        } else {
            Before::NoBanner
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Listened<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            let mut heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
            let room = KEPT.saturating_sub(heard.len());
            heard.extend_from_slice(&new[..new.len().min(room)]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Listened<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit_of(endpoint: &str) -> usize {
        let all = ENDPOINTS.lock().unwrap();
        all[endpoint].state().limit
    }

    #[tokio::test]
    async fn no_more_than_the_limit_start_at_once_and_each_end_lets_one_in() {
        let endpoint = "pace-test-limit:22";
        let mut held = Vec::new();
        for _ in 0..MAX_STARTING {
            held.push(start(endpoint).await);
        }
        let next = tokio::spawn(async move { start(endpoint).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!next.is_finished(), "a login started past the limit");
        held.pop();
        let started = tokio::time::timeout(Duration::from_secs(5), next).await;
        assert!(started.is_ok(), "an ended login did not let the next in");
        // Other endpoints are not held back by this one.
        let other = tokio::time::timeout(Duration::from_secs(5), start("pace-test-other:22"));
        assert!(other.await.is_ok());
    }

    #[tokio::test]
    async fn drops_halve_the_limit_down_to_one_and_successes_win_it_back() {
        let endpoint = "pace-test-adapt:22";
        let login = start(endpoint).await;
        for expected in [4, 2, 1, 1] {
            login.dropped();
            assert_eq!(limit_of(endpoint), expected);
        }
        for expected in 2..=MAX_STARTING {
            login.succeeded();
            assert_eq!(limit_of(endpoint), expected);
        }
        login.succeeded();
        assert_eq!(limit_of(endpoint), MAX_STARTING);
    }

    #[test]
    fn drop_backoff_is_short_grows_and_is_jittered() {
        for n in 1..=20 {
            let wait = drop_backoff(n);
            let base = 50u64 << (n - 1).min(5);
            assert!(wait >= Duration::from_millis(base / 2), "{n}: {wait:?}");
            assert!(wait <= Duration::from_millis(base * 3 / 2), "{n}: {wait:?}");
        }
        let waits: std::collections::HashSet<_> = (0..20).map(|_| drop_backoff(3)).collect();
        assert!(waits.len() > 1, "no jitter: {waits:?}");
    }
}
