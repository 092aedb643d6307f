//! Per-core connection threads: each serves the connections handed to it on a single-threaded runtime of its own.
//!
//! A work-stealing runtime moves the tasks of one connection between threads and wakes an idle thread for
//! nearly every request, which on a small machine costs more than the request itself. Like nginx's and
//! Envoy's workers, a connection here lives on one thread from accept to close, together with every task it
//! spawns. An acceptor on the caller's runtime hands each accepted connection to the running thread with the
//! fewest open connections.
#![forbid(unsafe_code)]

mod busy_poll;

pub use busy_poll::{BusyPollTooLong, MAX_BUSY_POLL, Watched, check_busy_poll};

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long [`Pool::accept_until`] waits after a failed accept before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

thread_local! {
    /// The index of the pool thread running here; `None` outside any pool.
    static INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index (0-based, in start order) of the pool thread this code runs on; `None` outside a pool's threads.
/// Lets a thread keep state of its own (idle upstream connections, say) in a table shared by all threads.
pub fn thread_index() -> Option<usize> {
    INDEX.with(Cell::get)
}

/// Every thread of the pool has stopped, so no connection can be served.
#[derive(Debug, thiserror::Error)]
#[error("every connection thread has stopped, so no connection can be served; restart the process")]
pub struct AllStopped;

/// How a pool runs its threads.
#[derive(Debug)]
pub struct Spec<'a> {
    /// Threads are named `{name}-{index}`, which is what profilers and `top -H` show.
    pub name: &'a str,
    /// How many threads to start; with none, every hand-off fails with [`AllStopped`].
    pub threads: usize,
    /// How long a stopping thread lets its open connections finish before cutting them off.
    pub grace: Duration,
    /// Cancelling it stops every thread at once: connections handed off but not yet taken are closed
    /// unanswered, as a listener's backlog is, and open ones drain. Without it a thread stops only when the
    /// pool is shut down or dropped, after serving every connection handed to it.
    pub stop: CancellationToken,
    /// How long a thread keeps polling its sockets after the last read or write before it sleeps; zero
    /// sleeps at once. See [`Watched`].
    pub busy_poll: Duration,
}

/// One thread as the acceptor sees it.
struct Thread {
    /// Accepted connections, already detached from the acceptor's runtime.
    connections: mpsc::UnboundedSender<std::net::TcpStream>,
    /// Connections handed to this thread and not yet closed: what least-loaded hand-off compares.
    open: Arc<AtomicUsize>,
    /// Completes (with an error, as the sender is dropped) when the thread has stopped.
    stopped: oneshot::Receiver<()>,
}

/// The running threads. Dropping the pool (or [`Pool::shut_down`]) makes them stop taking connections.
pub struct Pool {
    threads: Vec<Thread>,
}

/// Counts a connection as open until it ends, however it ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    /// Starts `spec.threads` threads. Each calls `serve` (cloned once per thread) for every connection
    /// handed to it and runs the future to completion on its own runtime; the token it is given is cancelled
    /// when the thread stops, and the future should then finish the exchange in progress and return.
    pub fn start<S, F>(spec: Spec<'_>, serve: S) -> std::io::Result<Self>
    where
        S: Fn(Watched<TcpStream>, CancellationToken) -> F + Clone + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let mut threads = Vec::with_capacity(spec.threads);
        for index in 0..spec.threads {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            if !spec.busy_poll.is_zero() {
                runtime.spawn(busy_poll::poll_busily(spec.busy_poll));
            }
            let (connections, incoming) = mpsc::unbounded_channel();
            let (done, stopped) = oneshot::channel::<()>();
            let open = Arc::new(AtomicUsize::new(0));
            let serving = serve_handed(
                incoming,
                serve.clone(),
                Arc::clone(&open),
                spec.stop.child_token(),
                spec.grace,
            );
            std::thread::Builder::new()
                .name(format!("{}-{index}", spec.name))
                .spawn(move || {
                    INDEX.with(|slot| slot.set(Some(index)));
                    runtime.block_on(serving);
                    // Blocking work still running on this runtime's pool past the grace period (a CPU burn,
                    // a name lookup) must not hold up the shutdown; it ends on its own.
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

    /// Hands `stream` to the running thread with the fewest open connections. Fails only when no thread is
    /// left running, so the caller can stop rather than drop every connection it accepts.
    pub fn hand_off(&self, stream: TcpStream) -> Result<(), AllStopped> {
        // A socket registered with the acceptor's reactor must leave it before another runtime can drive it.
        let mut stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "cannot detach an accepted connection; dropping it");
                return Ok(());
            }
        };
        // A thread that stopped has dropped its receiver; with no connections it would otherwise look least
        // loaded forever.
        while let Some(thread) = self
            .threads
            .iter()
            .filter(|t| !t.connections.is_closed())
            .min_by_key(|t| t.open.load(Ordering::Relaxed))
        {
            thread.open.fetch_add(1, Ordering::Relaxed);
            match thread.connections.send(stream) {
                Ok(()) => return Ok(()),
                Err(refused) => {
                    thread.open.fetch_sub(1, Ordering::Relaxed);
                    stream = refused.0;
                }
            }
        }
        Err(AllStopped)
    }

    /// Accepts connections on `listener` and hands each off until `stop` completes, then closes the listener.
    /// Fails only when no thread is left running, so the caller can exit and let its supervisor restart it.
    /// Nagle's algorithm is turned off on every connection: it would hold back the small final writes of an
    /// answer (an event stream's closing chunk) until the client's delayed ACK, up to 40 ms.
    pub async fn accept_until(
        &self,
        listener: TcpListener,
        stop: impl Future<Output = ()>,
    ) -> Result<(), AllStopped> {
        let mut stop = std::pin::pin!(stop);
        loop {
            let accepted = tokio::select! {
                () = &mut stop => return Ok(()),
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "cannot disable Nagle's algorithm on a connection");
                    }
                    self.hand_off(stream)?;
                }
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning on the error.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    /// Stops handing out connections and waits until every thread has stopped; each serves what it was
    /// handed, then bounds its drain by the grace period.
    pub async fn shut_down(self) {
        let mut stopped = Vec::with_capacity(self.threads.len());
        for thread in self.threads {
            drop(thread.connections);
            stopped.push(thread.stopped);
        }
        for thread in stopped {
            // An error only means the thread ended without saying so (it panicked): it has stopped.
            let _ = thread.await;
        }
    }
}

/// Drives an HTTP server connection to its end; once `stop` (the token a pool thread gives each connection)
/// is cancelled, lets it finish the exchange in progress and close, so idle keep-alive connections do not
/// hold the drain up for the whole grace period.
pub async fn serve_until_stopped<C: GracefulConnection>(
    connection: C,
    stop: &CancellationToken,
) -> Result<(), C::Error> {
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        ended = connection.as_mut() => ended,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

/// One thread's loop: serves every connection it is handed until the pool goes away or `stop`, then drains.
async fn serve_handed<S, F>(
    mut incoming: mpsc::UnboundedReceiver<std::net::TcpStream>,
    serve: S,
    open: Arc<AtomicUsize>,
    stop: CancellationToken,
    grace: Duration,
) where
    S: Fn(Watched<TcpStream>, CancellationToken) -> F,
    F: Future<Output = ()> + Send + 'static,
{
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
        let serving = serve(Watched::new(stream), stop.clone());
        connections.spawn(async move {
            let _counted = counted;
            serving.await;
        });
    }
    // Connections handed off but not yet taken are closed unanswered, as a listener's backlog is.
    drop(incoming);
    stop.cancel();
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "connections still open after the grace period; cutting them off"
        );
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Far past any wait in these tests, so only a prompt drain passes.
    const LONG_GRACE: Duration = Duration::from_secs(60);

    fn spec(threads: usize, grace: Duration, stop: &CancellationToken) -> Spec<'static> {
        Spec {
            name: "percore-test",
            threads,
            grace,
            stop: stop.clone(),
            busy_poll: Duration::ZERO,
        }
    }

    /// Writes which thread took the connection, then holds it open until the peer closes it or the thread
    /// stops.
    async fn report_thread(mut stream: Watched<TcpStream>, stop: CancellationToken) {
        let name = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        let index = thread_index().map_or_else(|| "none".to_owned(), |i| i.to_string());
        let _ = stream
            .write_all(format!("{name} {index}\n").as_bytes())
            .await;
        let mut rest = Vec::new();
        tokio::select! {
            _ = stream.read_to_end(&mut rest) => {}
            () = stop.cancelled() => {}
        }
    }

    /// Accepted server-side streams, each with its client side kept open.
    struct Clients {
        listener: TcpListener,
        addr: std::net::SocketAddr,
    }

    impl Clients {
        async fn new() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
            let addr = listener.local_addr().expect("bound address");
            Self { listener, addr }
        }

        async fn accept(&self) -> (TcpStream, TcpStream) {
            let client = TcpStream::connect(self.addr).await.expect("connects");
            let (server, _) = self.listener.accept().await.expect("accepts");
            (server, client)
        }
    }

    async fn first_line(client: &mut TcpStream) -> String {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while client.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        String::from_utf8_lossy(&line).into_owned()
    }

    /// The server closed `client`'s connection without sending anything more.
    async fn assert_closed(client: &mut TcpStream, why: &str) {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
            .await
            .expect("the connection ends");
        assert_eq!(read.expect("reads"), 0, "{why}");
    }

    fn fake_thread(open: usize) -> (Thread, mpsc::UnboundedReceiver<std::net::TcpStream>) {
        let (connections, incoming) = mpsc::unbounded_channel();
        let (_done, stopped) = oneshot::channel();
        let thread = Thread {
            connections,
            open: Arc::new(AtomicUsize::new(open)),
            stopped,
        };
        (thread, incoming)
    }

    #[tokio::test]
    async fn a_stopped_thread_gets_no_connections_and_none_left_is_an_error() {
        let clients = Clients::new().await;
        let (idle_but_stopped, stopped_incoming) = fake_thread(0);
        let (busy, mut busy_incoming) = fake_thread(5);
        drop(stopped_incoming);
        let pool = Pool {
            threads: vec![idle_but_stopped, busy],
        };
        assert!(pool.hand_off(clients.accept().await.0).is_ok());
        assert!(
            busy_incoming.try_recv().is_ok(),
            "the only running thread takes the connection though a stopped one looks less loaded"
        );
        assert_eq!(pool.threads[0].open.load(Ordering::Relaxed), 0);
        assert_eq!(pool.threads[1].open.load(Ordering::Relaxed), 6);

        drop(busy_incoming);
        assert!(pool.hand_off(clients.accept().await.0).is_err());
        assert_eq!(
            pool.threads[1].open.load(Ordering::Relaxed),
            6,
            "a refused hand-off is not counted"
        );
    }

    /// Answers each byte it reads: `p` with how often this thread's runtime has slept (parked) so far, `c` with
    /// the CPU time this thread has used, in ns; both as 8 little-endian bytes.
    async fn report_sleep(mut stream: Watched<TcpStream>, stop: CancellationToken) {
        let mut asked = [0u8; 1];
        loop {
            tokio::select! {
                read = stream.read_exact(&mut asked) => if read.is_err() { break },
                () = stop.cancelled() => break,
            }
            let answer = match asked[0] {
                b'p' => tokio::runtime::Handle::current()
                    .metrics()
                    .worker_park_count(0),
                _ => std::fs::read_to_string("/proc/thread-self/schedstat")
                    .ok()
                    .and_then(|s| s.split_whitespace().next()?.parse().ok())
                    .unwrap_or(u64::MAX),
            };
            if stream.write_all(&answer.to_le_bytes()).await.is_err() {
                break;
            }
        }
    }

    async fn ask(client: &mut TcpStream, question: u8) -> u64 {
        client.write_all(&[question]).await.expect("asks");
        let mut answer = [0u8; 8];
        client.read_exact(&mut answer).await.expect("answered");
        u64::from_le_bytes(answer)
    }

    /// How often a one-thread pool's runtime slept during 50 back-to-back exchanges on one connection.
    async fn sleeps_during_exchanges(busy_poll: Duration) -> u64 {
        let stop = CancellationToken::new();
        let spec = Spec {
            busy_poll,
            ..spec(1, LONG_GRACE, &stop)
        };
        let pool = Pool::start(spec, report_sleep).expect("starts");
        let clients = Clients::new().await;
        let (server, mut client) = clients.accept().await;
        client.set_nodelay(true).expect("nodelay");
        pool.hand_off(server).expect("a thread is running");
        let before = ask(&mut client, b'p').await;
        let mut after = before;
        for _ in 0..50 {
            after = ask(&mut client, b'p').await;
        }
        stop.cancel();
        pool.shut_down().await;
        after - before
    }

    #[tokio::test]
    async fn a_busy_polling_thread_stays_awake_between_a_clients_requests() {
        let asleep = sleeps_during_exchanges(Duration::ZERO).await;
        assert!(
            asleep >= 25,
            "without busy polling the thread sleeps after most answers; slept {asleep} times in 50 exchanges"
        );
        let polling = sleeps_during_exchanges(MAX_BUSY_POLL).await;
        // A client preempted for longer than the window lets the thread sleep now and then on a busy machine.
        assert!(
            polling <= 10,
            "a thread polling for {MAX_BUSY_POLL:?} after each answer should rarely sleep; slept {polling} times in 50 exchanges ({asleep} without polling)"
        );
    }

    #[tokio::test]
    async fn a_busy_polling_thread_without_traffic_sleeps() {
        let stop = CancellationToken::new();
        let spec = Spec {
            name: "busy-poll-idle",
            busy_poll: MAX_BUSY_POLL,
            ..spec(1, LONG_GRACE, &stop)
        };
        let pool = Pool::start(spec, report_sleep).expect("starts");
        let clients = Clients::new().await;
        let (server, mut client) = clients.accept().await;
        pool.hand_off(server).expect("a thread is running");
        let idle = Duration::from_millis(300);
        let first = ask(&mut client, b'c').await;
        tokio::time::sleep(idle).await;
        let second = ask(&mut client, b'c').await;
        assert_ne!(first, u64::MAX, "the thread's CPU time is readable");
        let busy = Duration::from_nanos(second - first);
        assert!(
            busy < idle / 3,
            "after one answer the thread may poll for {MAX_BUSY_POLL:?}, then sleeps; it used {busy:?} of CPU in {idle:?}"
        );
        stop.cancel();
        pool.shut_down().await;
    }

    #[tokio::test]
    async fn open_connections_go_to_the_least_loaded_thread_and_are_counted_until_they_close() {
        let stop = CancellationToken::new();
        let pool = Pool::start(spec(2, LONG_GRACE, &stop), report_thread).expect("starts");
        let clients = Clients::new().await;
        let mut held = Vec::new();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (server, mut client) = clients.accept().await;
            pool.hand_off(server).expect("a thread is running");
            seen.push(first_line(&mut client).await);
            held.push(client);
        }
        assert_eq!(
            seen,
            [
                "percore-test-0 0",
                "percore-test-1 1",
                "percore-test-0 0",
                "percore-test-1 1"
            ],
            "with every connection still open, each goes to the thread with fewer; ties go to the first"
        );
        assert_eq!(
            thread_index(),
            None,
            "the caller's thread is no pool thread"
        );

        // Closing both connections of thread 1 leaves it the less loaded once it has seen them close.
        drop(held.remove(3));
        drop(held.remove(1));
        let settled = async {
            while pool.threads[1].open.load(Ordering::Relaxed) != 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), settled)
            .await
            .expect("a closed connection is no longer counted as open");
        assert_eq!(pool.threads[0].open.load(Ordering::Relaxed), 2);
        let (server, mut client) = clients.accept().await;
        pool.hand_off(server).expect("a thread is running");
        assert_eq!(first_line(&mut client).await, "percore-test-1 1");

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), pool.shut_down())
            .await
            .expect("connections that finish when told to stop drain at once, not after the grace period");
    }

    #[tokio::test]
    async fn shutting_down_serves_what_was_handed_off_and_then_drains() {
        let stop = CancellationToken::new();
        let pool = Pool::start(spec(1, LONG_GRACE, &stop), report_thread).expect("starts");
        let clients = Clients::new().await;
        let (server, mut client) = clients.accept().await;
        pool.hand_off(server).expect("a thread is running");
        tokio::time::timeout(Duration::from_secs(5), pool.shut_down())
            .await
            .expect("a connection told to stop lets the thread stop before the grace period");
        assert_eq!(
            first_line(&mut client).await,
            "percore-test-0 0",
            "a connection handed off before the shutdown is served"
        );
        assert_closed(
            &mut client,
            "the connection is closed once the thread has stopped",
        )
        .await;
    }

    #[tokio::test]
    async fn a_connection_that_ignores_the_stop_is_cut_off_after_the_grace_period() {
        let stop = CancellationToken::new();
        let stubborn = |mut stream: Watched<TcpStream>, _stop: CancellationToken| async move {
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
        };
        let pool =
            Pool::start(spec(1, Duration::from_millis(50), &stop), stubborn).expect("starts");
        let clients = Clients::new().await;
        let (server, mut client) = clients.accept().await;
        pool.hand_off(server).expect("a thread is running");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), pool.shut_down())
            .await
            .expect("the grace period bounds the drain");
        assert_closed(&mut client, "the stubborn connection was closed").await;
    }

    #[tokio::test]
    async fn an_idle_http_connection_closes_once_stopped_and_not_before() {
        let clients = Clients::new().await;
        let (server, mut client) = clients.accept().await;
        let stop = CancellationToken::new();
        let service = hyper::service::service_fn(|_request| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("answered")))
        });
        let builder =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(server), service);
        let serving = serve_until_stopped(connection, &stop);
        let client_side = async {
            client
                .write_all(b"GET / HTTP/1.1\r\nhost: percore\r\n\r\n")
                .await
                .expect("sends a request");
            let mut answer = Vec::new();
            while !answer.ends_with(b"answered") {
                let mut chunk = [0u8; 256];
                let read = client.read(&mut chunk).await.expect("reads");
                assert_ne!(
                    read, 0,
                    "the connection closed before answering: {answer:?}"
                );
                answer.extend_from_slice(&chunk[..read]);
            }
            let mut byte = [0u8; 1];
            let idle =
                tokio::time::timeout(Duration::from_millis(100), client.read(&mut byte)).await;
            assert!(
                idle.is_err(),
                "a keep-alive connection stays open until stopped"
            );
            stop.cancel();
            let closed = tokio::time::timeout(Duration::from_secs(5), client.read(&mut byte))
                .await
                .expect("an idle connection closes at once when stopped");
            assert_eq!(closed.expect("reads"), 0, "closed, with nothing more sent");
        };
        let (ended, ()) = tokio::join!(serving, client_side);
        assert!(ended.is_ok(), "{ended:?}");
    }

    #[tokio::test]
    async fn cancelling_the_stop_token_refuses_later_hand_offs() {
        let stop = CancellationToken::new();
        let pool = Pool::start(spec(2, LONG_GRACE, &stop), report_thread).expect("starts");
        stop.cancel();
        let stopped = async {
            while pool.threads.iter().any(|t| !t.connections.is_closed()) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), stopped)
            .await
            .expect("every thread stops taking connections once the token is cancelled");
        let clients = Clients::new().await;
        assert!(pool.hand_off(clients.accept().await.0).is_err());
    }
}
