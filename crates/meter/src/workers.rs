//! Proxy worker threads: each runs its own single-threaded runtime and serves the client connections handed to it.
//!
//! A work-stealing runtime moves the tasks of one exchange (client connection, upstream connection) between
//! threads and wakes an idle thread for nearly every request, which costs more than the exchange itself on a
//! small machine. Like nginx's and Envoy's workers, a connection here lives on one thread from accept to close,
//! together with the upstream connections it borrows (the pool keeps idle connections per worker).

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::proxy::Proxy;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker running on this thread; 0 outside the workers.
pub fn current() -> usize {
    WORKER.with(Cell::get)
}

/// One worker as the acceptor sees it.
struct Handle {
    connections: mpsc::UnboundedSender<std::net::TcpStream>,
    open: Arc<AtomicUsize>,
    finished: oneshot::Receiver<()>,
}

/// The running workers. Dropping them (or calling [`Workers::shut_down`]) stops them taking connections.
pub struct Workers {
    workers: Vec<Handle>,
}

/// Every worker thread has stopped: the proxy cannot serve any connection.
#[derive(Debug)]
pub struct NoWorkers;

/// Lowers a worker's open-connection count when a connection ends, however it ends.
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    /// Starts `count` worker threads serving `proxy`; each drains its connections for up to `grace` at shutdown.
    pub fn start(count: usize, proxy: &Arc<Proxy>, grace: Duration) -> std::io::Result<Self> {
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let (connections, incoming) = mpsc::unbounded_channel();
            let (done, finished) = oneshot::channel();
            let open = Arc::new(AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (proxy, worker_open) = (Arc::clone(proxy), Arc::clone(&open));
            std::thread::Builder::new()
                .name(format!("meter-worker-{index}"))
                .spawn(move || {
                    WORKER.with(|worker| worker.set(index));
                    runtime.block_on(serve(incoming, proxy, worker_open, grace));
                    let _ = done.send(());
                })?;
            workers.push(Handle {
                connections,
                open,
                finished,
            });
        }
        Ok(Self { workers })
    }

    /// Hands an accepted connection to the running worker with the fewest open connections. Fails only when
    /// no worker is left running (a worker thread died), so the caller can stop rather than drop every
    /// connection it accepts.
    pub fn dispatch(&self, stream: TcpStream) -> Result<(), NoWorkers> {
        // A stream registered with this runtime's reactor must leave it before another runtime can drive it.
        let mut stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "cannot hand the connection to a worker");
                return Ok(());
            }
        };
        // A worker whose thread died has dropped its receiver; it would otherwise look least loaded forever.
        while let Some(worker) = self
            .workers
            .iter()
            .filter(|w| !w.connections.is_closed())
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        {
            worker.open.fetch_add(1, Ordering::Relaxed);
            match worker.connections.send(stream) {
                Ok(()) => return Ok(()),
                Err(returned) => {
                    worker.open.fetch_sub(1, Ordering::Relaxed);
                    stream = returned.0;
                }
            }
        }
        Err(NoWorkers)
    }

    /// Stops handing out connections and waits until every worker has finished (or cut off) its exchanges.
    pub async fn shut_down(self) {
        let mut finished = Vec::with_capacity(self.workers.len());
        for worker in self.workers {
            drop(worker.connections);
            finished.push(worker.finished);
        }
        for worker in finished {
            let _ = worker.await;
        }
    }
}

/// A worker's loop: serves each connection it is given until the acceptor goes away, then drains.
async fn serve(
    mut incoming: mpsc::UnboundedReceiver<std::net::TcpStream>,
    proxy: Arc<Proxy>,
    open: Arc<AtomicUsize>,
    grace: Duration,
) {
    let builder = crate::connection_builder(proxy.config.client_timeout);
    let graceful = GracefulShutdown::new();
    while let Some(stream) = incoming.recv().await {
        let counted = OpenConnection(Arc::clone(&open));
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "worker cannot take the connection");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        let service = service_fn(move |request| Arc::clone(&proxy).handle(request));
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            let _counted = counted;
            if let Err(error) = watched.await {
                tracing::debug!(%error, "client connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing the remaining connections");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(open: usize) -> (Handle, mpsc::UnboundedReceiver<std::net::TcpStream>) {
        let (connections, incoming) = mpsc::unbounded_channel();
        let (_done, finished) = oneshot::channel();
        let handle = Handle {
            connections,
            open: Arc::new(AtomicUsize::new(open)),
            finished,
        };
        (handle, incoming)
    }

    async fn accepted_stream() -> TcpStream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        listener.accept().await.unwrap().0
    }

    #[tokio::test]
    async fn a_dead_worker_gets_no_connections_and_none_left_is_an_error() {
        let (dead, dead_incoming) = handle(0);
        let (busy, mut busy_incoming) = handle(5);
        drop(dead_incoming);
        let workers = Workers {
            workers: vec![dead, busy],
        };
        assert!(workers.dispatch(accepted_stream().await).is_ok());
        assert!(
            busy_incoming.try_recv().is_ok(),
            "the only live worker got the connection although another looked less loaded"
        );
        assert_eq!(workers.workers[0].open.load(Ordering::Relaxed), 0);
        assert_eq!(workers.workers[1].open.load(Ordering::Relaxed), 6);

        drop(busy_incoming);
        assert!(workers.dispatch(accepted_stream().await).is_err());
        assert_eq!(
            workers.workers[1].open.load(Ordering::Relaxed),
            6,
            "a refused hand-off is not counted"
        );
    }
}
