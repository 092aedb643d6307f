//! Connection threads: each serves the MCP connections handed to it on a single-threaded runtime of its own.
//!
//! rmcp spawns several tasks per request (stateless: a service loop, its handler and the response send).
//! On a work-stealing runtime each spawn may wake an idle worker thread to steal it, and on a small
//! machine those cross-thread wake-ups cost more than the request itself. Here a connection lives on one
//! thread from accept to close, and so does every task its requests spawn.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use mcpulse_percore::{Pool, Spec, Watched};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::AgentError;

/// Starts `count` threads serving `app`. Once `stop` is cancelled they take no more connections,
/// let open ones finish their exchanges for up to `grace`, and cut off the rest.
pub(crate) fn start(
    count: usize,
    busy_poll: Duration,
    app: &Router,
    stop: &CancellationToken,
    grace: Duration,
) -> std::io::Result<Pool> {
    let spec = Spec {
        name: "agent-io",
        threads: count,
        grace,
        stop: stop.clone(),
        busy_poll,
    };
    let app = app.clone();
    Pool::start(spec, move |stream, stop| {
        serve_connection(stream, app.clone(), stop)
    })
}

/// Accepts connections on `listener` and hands each to a connection thread until `stop` is
/// cancelled, then waits for the threads to drain.
pub(crate) async fn serve(
    listener: TcpListener,
    threads: Pool,
    stop: CancellationToken,
) -> Result<(), AgentError> {
    let outcome = threads
        .accept_until(listener, stop.cancelled())
        .await
        .map_err(|_| AgentError::Serve {
            what: "MCP",
            source: std::io::Error::other("every connection thread has stopped; restart the agent"),
        });
    threads.shut_down().await;
    outcome
}

/// Serves HTTP/1.1 or HTTP/2 (prior knowledge) on one connection; once `stop` is cancelled, finishes
/// the exchange in progress and closes.
async fn serve_connection(stream: Watched<TcpStream>, app: Router, stop: CancellationToken) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    if let Err(error) = mcpulse_percore::serve_until_stopped(connection, &stop).await {
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
        let threads =
            start(2, Duration::ZERO, &app, &stop, Duration::from_secs(60)).expect("threads start");
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
}
