//! Busy polling: after socket activity, a pool thread keeps polling its sockets for a short window before it
//! sleeps.
//!
//! A request/response exchange leaves the thread idle between one answer and the next request. Asleep, the
//! thread is woken by an interrupt when the request arrives; in a virtual machine that wakes a halted vCPU,
//! which costs tens of µs, often more than serving the request. A thread still polling when the request
//! arrives reads it at once. Linux's `SO_BUSY_POLL`, Go's spinning scheduler threads and Seastar's reactor
//! make the same trade: CPU for latency. The cost is bounded: at most one window of polling after the last
//! read or write, and none on a thread with no traffic.

use std::cell::Cell;
use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest busy-polling window: a client that takes longer than this to send its next request is not
/// waiting on the answer, and polling past it burns CPU for nothing.
pub const MAX_BUSY_POLL: Duration = Duration::from_millis(1);

/// A busy-polling window past [`MAX_BUSY_POLL`].
#[derive(Debug, thiserror::Error)]
#[error(
    "is {0:?}; use 0 (off) to {MAX_BUSY_POLL:?}, e.g. 200us, which is just longer than a client takes to read an answer and send its next request"
)]
pub struct BusyPollTooLong(pub Duration);

/// Checks a busy-polling window, saying what to use instead when it is out of range.
pub fn check_busy_poll(window: Duration) -> Result<(), BusyPollTooLong> {
    if window > MAX_BUSY_POLL {
        return Err(BusyPollTooLong(window));
    }
    Ok(())
}

thread_local! {
    static ACTIVITY: Activity = const { Activity {
        window: Cell::new(Duration::ZERO),
        last: Cell::new(None),
        poller: Cell::new(None),
    } };
}

/// What this thread's poller needs: how long to keep polling, since when, and how to wake it.
struct Activity {
    /// Zero outside a busy-polling pool thread, which makes [`note_activity`] free.
    window: Cell<Duration>,
    /// The last read or write on a socket of this thread.
    last: Cell<Option<Instant>>,
    /// The poller, parked until the next activity.
    poller: Cell<Option<Waker>>,
}

impl Activity {
    fn recent(&self) -> bool {
        self.last
            .get()
            .is_some_and(|last| last.elapsed() < self.window.get())
    }
}

/// Records a read or write on this thread, waking its poller if it had gone to sleep.
fn note_activity() {
    ACTIVITY.with(|activity| {
        if activity.window.get().is_zero() {
            return;
        }
        activity.last.set(Some(Instant::now()));
        if let Some(poller) = activity.poller.take() {
            poller.wake();
        }
    });
}

/// Keeps this thread's runtime polling its sockets for `window` after each read or write; never returns.
///
/// Yielding leaves the task ready, so a single-threaded runtime checks its sockets without blocking and runs
/// the poller again instead of sleeping; once the window has passed the poller waits for the next activity and
/// the runtime may sleep.
pub(crate) async fn poll_busily(window: Duration) {
    ACTIVITY.with(|activity| activity.window.set(window));
    loop {
        if ACTIVITY.with(Activity::recent) {
            tokio::task::yield_now().await;
        } else {
            poll_fn(|cx| {
                ACTIVITY.with(|activity| {
                    if activity.recent() {
                        Poll::Ready(())
                    } else {
                        activity.poller.set(Some(cx.waker().clone()));
                        Poll::Pending
                    }
                })
            })
            .await;
        }
    }
}

/// A socket watched by its thread's busy poller: its reads and writes count as activity.
#[derive(Debug)]
pub struct Watched<S>(S);

impl<S> Watched<S> {
    /// Wraps `socket`; it counts only on a busy-polling pool thread.
    pub fn new(socket: S) -> Self {
        Self(socket)
    }
}

/// Notes activity when the socket operation completed (bytes moved, or the peer closed).
fn noting_activity<T>(outcome: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
    if let Poll::Ready(Ok(_)) = outcome {
        note_activity();
    }
    outcome
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        noting_activity(Pin::new(&mut self.0).poll_read(cx, buf))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        noting_activity(Pin::new(&mut self.0).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        noting_activity(Pin::new(&mut self.0).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
