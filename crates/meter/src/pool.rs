//! Keep-alive HTTP/1 connections to one upstream, checked out and given back without a general-purpose client.
//!
//! A shared client's pool keys connections by scheme and authority, hashes that key twice per request and spawns
//! a task per request to learn when the connection is free again. The meter knows its upstream already and
//! learns when a response ends from the body it relays, so a locked stack of idle senders is all it needs.
//!
//! Idle connections are kept apart per worker thread: a connection's I/O runs on the worker that opened it, so
//! lending it to another worker would wake that thread for every read and write of the exchange.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::workers;

/// Time allowed to open a TCP connection to an upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections older than this are closed rather than reused: servers close theirs after a while too.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Most idle connections kept per upstream; a burst past it closes the surplus once it is over.
const MAX_IDLE: usize = 1024;

type Sender = SendRequest<Full<Bytes>>;

/// Why a request did not get a response head from the upstream.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened: nothing was sent.
    Connect(std::io::Error),
    /// The connection failed while sending or before the response head arrived.
    Http(hyper::Error),
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(error) => write!(f, "cannot connect: {error}"),
            SendError::Http(error) => write!(f, "{error}"),
        }
    }
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// The connections of one upstream.
pub struct Pool {
    /// `host:port` to connect to.
    address: String,
    /// Sent as `Host` when the client sent none (HTTP/2 clients carry the authority in the URI instead).
    host: HeaderValue,
    /// Per worker (index [`workers::current`]), most recently used last, so the warmest connection is reused
    /// first and the oldest expire at the front.
    idle: Mutex<Vec<VecDeque<Idle>>>,
}

/// A connection lent to one exchange: given back with [`Lease::release`] once the response has been read to
/// its end, or closed when dropped (the exchange was cut short and the connection is mid-response).
pub struct Lease {
    sender: Sender,
    pool: Arc<Pool>,
    /// The worker whose runtime drives the connection.
    worker: usize,
}

impl Lease {
    pub fn release(self, now: Instant) {
        self.pool.give_back(self.worker, self.sender, now);
    }
}

impl Pool {
    /// The pool for an upstream reached at `base` (an `http://` URL, validated by the configuration).
    pub fn new(base: &Uri) -> Arc<Self> {
        let authority = base.authority().map_or("", |a| a.as_str());
        let host = base.host().unwrap_or("");
        let port = base.port_u16().unwrap_or(80);
        Arc::new(Self {
            address: format!("{host}:{port}"),
            host: HeaderValue::from_str(authority).unwrap_or(HeaderValue::from_static("")),
            idle: Mutex::new(Vec::new()),
        })
    }

    pub fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// Sends `request` (origin-form URI, `Host` set) on an idle connection, or a new one when none is left.
    /// A request that an idle connection could not even start (the upstream had closed it) is sent again on the
    /// next, as nothing of it reached the upstream.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        let worker = workers::current();
        while let Some(mut sender) = self.checkout(worker) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, self.lease(worker, sender))),
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::Http(error.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        match sender.send_request(request).await {
            Ok(response) => Ok((response, self.lease(worker, sender))),
            Err(error) => Err(SendError::Http(error)),
        }
    }

    fn lease(self: &Arc<Self>, worker: usize, sender: Sender) -> Lease {
        Lease {
            sender,
            pool: Arc::clone(self),
            worker,
        }
    }

    fn checkout(&self, worker: usize) -> Option<Sender> {
        let mut shards = self.idle.lock().ok()?;
        let idle = shards.get_mut(worker)?;
        while let Some(entry) = idle.pop_back() {
            if !entry.sender.is_closed() {
                return Some(entry.sender);
            }
        }
        None
    }

    fn give_back(&self, worker: usize, sender: Sender, now: Instant) {
        if sender.is_closed() {
            return;
        }
        let Ok(mut shards) = self.idle.lock() else {
            return;
        };
        if shards.len() <= worker {
            shards.resize_with(worker + 1, VecDeque::new);
        }
        let idle = &mut shards[worker];
        while idle
            .front()
            .is_some_and(|oldest| now.saturating_duration_since(oldest.since) >= IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        // The bound is per upstream, whichever workers hold the connections.
        if shards.iter().map(VecDeque::len).sum::<usize>() < MAX_IDLE {
            shards[worker].push_back(Idle { sender, since: now });
        }
    }

    async fn connect(&self) -> Result<Sender, SendError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.address))
            .await
            .map_err(|_| {
                SendError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{} did not accept within {CONNECT_TIMEOUT:?}", self.address),
                ))
            })?
            .map_err(SendError::Connect)?;
        // MCP messages are small and latency-bound: never wait for Nagle.
        stream.set_nodelay(true).map_err(SendError::Connect)?;
        // The upstream's answer is activity too: the worker that forwarded a request keeps polling for it.
        let (sender, connection) =
            http1::handshake(TokioIo::new(mcpulse_percore::Watched::new(stream)))
                .await
                .map_err(|error| SendError::Connect(std::io::Error::other(error)))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    #[cfg(test)]
    fn idle_len(&self) -> usize {
        self.idle
            .lock()
            .map_or(0, |shards| shards.iter().map(VecDeque::len).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An HTTP/1 server that answers every request with its connection's number, counting connections; without
    /// keep-alive it closes each connection after one response, as a restarting upstream would.
    async fn server(keep_alive: bool) -> (Uri, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let service = service_fn(move |_request: Request<Incoming>| async move {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(n.to_string()))))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (format!("http://{addr}").parse().unwrap(), accepted)
    }

    fn request(pool: &Pool) -> Request<Full<Bytes>> {
        Request::post("/mcp")
            .header(http::header::HOST, pool.host().clone())
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    }

    async fn read(response: Response<Incoming>) -> String {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_released_connection_is_reused() {
        let (base, accepted) = server(true).await;
        let pool = Pool::new(&base);
        for _ in 0..3 {
            let (response, lease) = pool.send(request(&pool)).await.unwrap();
            assert_eq!(
                read(response).await,
                "0",
                "every request rides connection 0"
            );
            lease.release(Instant::now());
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 1);
        assert_eq!(pool.idle_len(), 1);
    }

    #[tokio::test]
    async fn a_lease_still_held_is_not_shared() {
        let (base, accepted) = server(true).await;
        let pool = Pool::new(&base);
        let (first, held) = pool.send(request(&pool)).await.unwrap();
        let (second, _other) = pool.send(request(&pool)).await.unwrap();
        assert_eq!(
            (read(first).await, read(second).await),
            ("0".into(), "1".into())
        );
        assert_eq!(accepted.load(Ordering::Relaxed), 2);
        drop(held);
        assert_eq!(pool.idle_len(), 0, "a dropped lease closes its connection");
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced() {
        let (base, accepted) = server(false).await;
        let pool = Pool::new(&base);
        for n in 0..3 {
            let (response, lease) = pool.send(request(&pool)).await.unwrap();
            assert_eq!(read(response).await, n.to_string());
            lease.release(Instant::now());
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn idle_connections_expire_and_a_closed_port_is_a_connect_error() {
        let (base, _) = server(true).await;
        let pool = Pool::new(&base);
        let start = Instant::now();
        let (first, early) = pool.send(request(&pool)).await.unwrap();
        let (second, late) = pool.send(request(&pool)).await.unwrap();
        read(first).await;
        read(second).await;
        early.release(start);
        assert_eq!(pool.idle_len(), 1);
        // Given back much later: the connection idle since `start` is closed, this one is kept.
        late.release(start + IDLE_TIMEOUT * 2);
        assert_eq!(pool.idle_len(), 1);

        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let dead = Pool::new(&format!("http://{closed}").parse().unwrap());
        let error = dead.send(request(&dead)).await.err().unwrap();
        assert!(error.is_connect(), "{error}");
    }
}
