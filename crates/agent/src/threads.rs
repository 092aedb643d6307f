//! Connection threads: each serves the MCP connections handed to it on a single-threaded runtime of its own.
//!
//! rmcp spawns several tasks per request (stateless: a service loop, its handler and the response send).
//! On a work-stealing runtime each spawn may wake an idle worker thread to steal it, and on a small
//! machine those cross-thread wake-ups cost more than the request itself. Here a connection lives on one
//! thread from accept to close, and so does every task its requests spawn.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::AgentError;

/// How long the acceptor waits after a failed accept (usually out of file descriptors) before trying
/// again, instead of spinning on the error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// One connection thread as the acceptor sees it.
struct Thread {
    /// Accepted connections, already detached from the acceptor's runtime.
    connections: mpsc::UnboundedSender<std::net::TcpStream>,
    /// Connections handed to this thread and not yet closed: what least-loaded dispatch compares.
    open: Arc<AtomicUsize>,
    /// Completes (with an error, as the sender is dropped) when the thread has stopped.
    stopped: oneshot::Receiver<()>,
}

/// The running connection threads.
pub(crate) struct ConnectionThreads {
    threads: Vec<Thread>,
}

/// Every connection thread has stopped, so no connection can be served.
#[derive(Debug)]
pub(crate) struct AllStopped;

/// Counts a connection as open until it ends, however it ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnectionThreads {
    /// Starts `count` threads serving `app`. Once `stop` is cancelled they take no more connections,
    /// let open ones finish their exchanges for up to `grace`, and cut off the rest.
    pub(crate) fn start(
        count: usize,
        app: &Router,
        stop: &CancellationToken,
        grace: Duration,
    ) -> std::io::Result<Self> {
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (connections, incoming) = mpsc::unbounded_channel();
            let (done, stopped) = oneshot::channel::<()>();
            let open = Arc::new(AtomicUsize::new(0));
            let serving = serve_handed(
                incoming,
                app.clone(),
                Arc::clone(&open),
                stop.clone(),
                grace,
            );
            std::thread::Builder::new()
                .name(format!("agent-io-{index}"))
                .spawn(move || {
                    runtime.block_on(serving);
                    // A CPU burn still running on this runtime's blocking pool past the grace period
                    // must not hold up the shutdown; it ends on its own.
                    runtime.shutdown_background();
                    drop(done);
                })?;
            threads.push(Thread {
                connections,
                open,
                stopped,
            });
        }
        Ok(Self { threads })
    }

    /// Hands `stream` to the running thread with the fewest open connections. Fails only when no
    /// thread is left running.
    fn hand_off(&self, stream: TcpStream) -> Result<(), AllStopped> {
        // A socket registered with the acceptor's reactor must leave it before another runtime can
        // drive it.
        let mut stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "cannot detach an accepted connection; dropping it");
                return Ok(());
            }
        };
        // A thread that stopped has dropped its receiver; with no connections it would otherwise
        // look least loaded forever.
        while let Some(thread) = self
            .threads
            .iter()
            .filter(|t| !t.connections.is_closed())
            .min_by_key(|t| t.open.load(Ordering::Acquire))
        {
            thread.open.fetch_add(1, Ordering::AcqRel);
            match thread.connections.send(stream) {
                Ok(()) => return Ok(()),
                Err(refused) => {
                    thread.open.fetch_sub(1, Ordering::AcqRel);
                    stream = refused.0;
                }
            }
        }
        Err(AllStopped)
    }

    /// Waits until every thread has stopped (each bounds its own drain by the grace period).
    async fn join(self) {
        for thread in self.threads {
            drop(thread.connections);
            // An error only means the thread ended without saying so (it panicked): it has stopped.
            let _ = thread.stopped.await;
        }
    }
}

/// Accepts connections on `listener` and hands each to a connection thread until `stop` is
/// cancelled, then waits for the threads to drain.
pub(crate) async fn serve(
    listener: TcpListener,
    threads: ConnectionThreads,
    stop: CancellationToken,
) -> Result<(), AgentError> {
    let outcome = loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break Ok(()),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                // Nagle's algorithm would hold back the small final writes of an answer (an
                // event stream's closing chunk) until the client's delayed ACK, up to 40 ms.
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, "cannot disable Nagle's algorithm on a connection");
                }
                if threads.hand_off(stream).is_err() {
                    break Err(AgentError::Serve {
                        what: "MCP",
                        source: std::io::Error::other(
                            "every connection thread has stopped; restart the agent",
                        ),
                    });
                }
            }
            Err(error) => {
                tracing::warn!(%error, "accepting an MCP connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    };
    drop(listener);
    threads.join().await;
    outcome
}

/// One thread's loop: serves every connection it is handed until `stop`, then drains them.
async fn serve_handed(
    mut incoming: mpsc::UnboundedReceiver<std::net::TcpStream>,
    app: Router,
    open: Arc<AtomicUsize>,
    stop: CancellationToken,
    grace: Duration,
) {
    let connections = TaskTracker::new();
    loop {
        let handed = tokio::select! {
            () = stop.cancelled() => break,
            handed = incoming.recv() => handed,
        };
        let Some(stream) = handed else { break };
        let counted = Open(Arc::clone(&open));
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "cannot register a handed-off connection; dropping it");
                continue;
            }
        };
        connections.spawn(serve_connection(stream, app.clone(), stop.clone(), counted));
    }
    // Connections handed off but not yet picked up are closed unanswered, as a listener's backlog is.
    drop(incoming);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "MCP connections still open after the grace period; cutting them off"
        );
    }
}

/// Serves HTTP/1.1 or HTTP/2 (prior knowledge) on one connection; once `stop` is cancelled, finishes
/// the exchange in progress and closes.
async fn serve_connection(stream: TcpStream, app: Router, stop: CancellationToken, _counted: Open) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut connection = std::pin::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = ended {
        tracing::debug!(%error, "MCP connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::routing::get;

    use super::*;

    /// A client connection that keeps its one TCP connection alive across requests.
    async fn connection(
        addr: std::net::SocketAddr,
    ) -> hyper::client::conn::http1::SendRequest<String> {
        let stream = TcpStream::connect(addr).await.expect("connects");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(connection);
        sender
    }

    /// Which thread answered one request on `sender`'s connection.
    async fn served_by(sender: &mut hyper::client::conn::http1::SendRequest<String>) -> String {
        use http_body_util::BodyExt;
        let request = hyper::Request::get("/thread")
            .header("host", "agent")
            .body(String::new())
            .expect("valid request");
        let response = sender.send_request(request).await.expect("answer");
        let body = response.into_body().collect().await.expect("body");
        String::from_utf8_lossy(&body.to_bytes()).into_owned()
    }

    #[tokio::test]
    async fn connections_spread_over_threads_and_each_stays_on_one() {
        let app = Router::new().route(
            "/thread",
            get(|| async {
                std::thread::current()
                    .name()
                    .unwrap_or("unnamed")
                    .to_owned()
            }),
        );
        let stop = CancellationToken::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("bound address");
        // A grace period far past the wait below, so only closing idle connections at once passes.
        let threads = ConnectionThreads::start(2, &app, &stop, Duration::from_secs(60))
            .expect("threads start");
        let serving = tokio::spawn(serve(listener, threads, stop.clone()));

        let mut senders = Vec::new();
        let mut names = BTreeSet::new();
        for _ in 0..4 {
            let mut sender = connection(addr).await;
            // Answering before the next connection opens makes the open counts settle, so
            // least-loaded dispatch alternates between the threads.
            let first = served_by(&mut sender).await;
            for _ in 0..3 {
                assert_eq!(
                    served_by(&mut sender).await,
                    first,
                    "every request on a connection is served by the thread that took it"
                );
            }
            names.insert(first);
            senders.push(sender);
        }
        assert_eq!(
            names,
            BTreeSet::from(["agent-io-0".to_owned(), "agent-io-1".to_owned()]),
            "four connections over two threads use both, and no runtime worker of the caller"
        );

        stop.cancel();
        let drained = tokio::time::timeout(Duration::from_secs(3), serving)
            .await
            .expect(
                "idle keep-alive connections close at once at shutdown, not after the grace period",
            );
        assert!(matches!(drained, Ok(Ok(()))), "{drained:?}");
    }

    #[tokio::test]
    async fn a_stopped_thread_gets_no_connections_and_none_left_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("bound address");
        let accepted = async || {
            let _client = TcpStream::connect(addr).await.expect("connects");
            listener.accept().await.expect("accepts").0
        };
        let thread = |open| {
            let (connections, incoming) = mpsc::unbounded_channel();
            let (_done, stopped) = oneshot::channel();
            let open = Arc::new(AtomicUsize::new(open));
            (
                Thread {
                    connections,
                    open,
                    stopped,
                },
                incoming,
            )
        };
        let (idle_but_stopped, stopped_incoming) = thread(0);
        let (busy, mut busy_incoming) = thread(5);
        drop(stopped_incoming);
        let threads = ConnectionThreads {
            threads: vec![idle_but_stopped, busy],
        };
        assert!(threads.hand_off(accepted().await).is_ok());
        assert!(
            busy_incoming.try_recv().is_ok(),
            "the only running thread takes the connection though a stopped one looks less loaded"
        );
        assert_eq!(threads.threads[1].open.load(Ordering::Acquire), 6);

        drop(busy_incoming);
        assert!(threads.hand_off(accepted().await).is_err());
        assert_eq!(
            threads.threads[1].open.load(Ordering::Acquire),
            6,
            "a refused hand-off is not counted"
        );
    }
}
