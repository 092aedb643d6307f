//! Proxy worker threads: each runs its own single-threaded runtime and serves the client connections handed to it.
//!
//! A work-stealing runtime moves the tasks of one exchange (client connection, upstream connection) between
//! threads and wakes an idle thread for nearly every request, which costs more than the exchange itself on a
//! small machine. Like nginx's and Envoy's workers, a connection here lives on one thread from accept to close,
//! together with the upstream connections it borrows (the pool keeps idle connections per worker).

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mcpulse_percore::{Pool, Spec, Watched};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::proxy::Proxy;

/// The index of the worker running on this thread; 0 outside the workers.
pub fn current() -> usize {
    mcpulse_percore::thread_index().unwrap_or(0)
}

/// Starts `count` worker threads serving `proxy`; each drains its connections for up to `grace` at shutdown.
pub fn start(
    count: usize,
    busy_poll: Duration,
    proxy: &Arc<Proxy>,
    grace: Duration,
) -> std::io::Result<Pool> {
    let spec = Spec {
        name: "meter-worker",
        threads: count,
        grace,
        // The workers stop only when the acceptor shuts the pool down, after serving what it handed them.
        stop: CancellationToken::new(),
        busy_poll,
    };
    let builder = crate::connection_builder(proxy.config.client_timeout);
    let proxy = Arc::clone(proxy);
    Pool::start(
        spec,
        move |stream: Watched<TcpStream>, stop: CancellationToken| {
            let proxy = Arc::clone(&proxy);
            let service = service_fn(move |request| Arc::clone(&proxy).handle(request));
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            async move {
                if let Err(error) = mcpulse_percore::serve_until_stopped(connection, &stop).await {
                    tracing::debug!(%error, "client connection ended with an error");
                }
            }
        },
    )
}
