//! The agent's connection threads: many clients at once spread over several threads, sessions whose requests arrive on other threads, drain, and a refused thread count.

mod common;

use std::time::{Duration, Instant};

use common::{
    Sessions, call, config, connect, drain_during_a_call, eventually, finish_drain, operations,
    scrape, start, text,
};
use mcpulse_agent::{AgentError, MAX_IO_THREADS, run};
use serde_json::json;

const CLIENTS: usize = 8;
const CALLS: usize = 5;

/// `CLIENTS` rmcp clients at once, each making `CALLS` echo calls. rmcp's default client opens a TCP
/// connection per request, so every call is dispatched to a connection thread afresh; stateful, a
/// session's requests then reach the thread running the session from other threads.
async fn many_clients_at_once(sessions: Sessions) {
    let mut config = config();
    config.io_threads = 3;
    config.stateless = matches!(sessions, Sessions::None);
    let agent = start(config).await;
    let bound = agent.bound;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            tokio::spawn(async move {
                let rmcp = connect(bound).await;
                for call_index in 0..CALLS {
                    let message = format!("client {client} call {call_index}");
                    let answer = call(&rmcp, "echo", json!({"message": message}))
                        .await
                        .expect("every call through any thread is answered");
                    assert_eq!(text(&answer), message, "answers reach their own caller");
                }
                rmcp.cancel().await.expect("client closes");
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client task");
    }
    let metrics = scrape(bound).await;
    assert_eq!(
        operations(&metrics, "tools/call", "echo", ""),
        (CLIENTS * CALLS) as f64,
        "{sessions:?}: every call was served and counted once"
    );
    let started = Instant::now();
    agent.stop().await.expect("clean shutdown");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{sessions:?}: idle connections close at once on shutdown instead of holding it for the grace period (took {:?})",
        started.elapsed()
    );
}

#[tokio::test]
async fn stateless_clients_at_once_are_all_answered() {
    many_clients_at_once(Sessions::None).await;
}

#[tokio::test]
async fn stateful_sessions_are_served_whichever_thread_takes_each_request() {
    many_clients_at_once(Sessions::Counted).await;
}

#[tokio::test]
async fn drain_finishes_a_call_with_several_threads() {
    let mut config = config();
    config.io_threads = 3;
    let mut agent = start(config).await;
    let client = connect(agent.bound).await;
    let in_flight = drain_during_a_call(&mut agent, &client).await;
    finish_drain(agent, in_flight).await;
}

#[tokio::test]
async fn abandoning_the_agent_stops_its_connection_threads() {
    let mut config = config();
    config.io_threads = 2;
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let agent = tokio::spawn(run(config, std::future::pending(), move |bound| {
        let _ = bound_tx.send(bound);
    }));
    let bound = bound_rx.await.expect("agent binds");
    let client = connect(bound).await;
    call(&client, "echo", json!({"message": "up"}))
        .await
        .expect("served before");
    // Dropping `run` without a shutdown: the threads serve outside any runtime, so nothing else
    // would ever stop them.
    agent.abort();
    assert!(
        eventually(Duration::from_secs(3), async || {
            tokio::net::TcpStream::connect(bound.listen).await.is_err()
        })
        .await,
        "the MCP listener closes once the agent is dropped"
    );
}

#[tokio::test]
async fn thread_counts_out_of_range_are_refused_before_binding() {
    // (connection threads, reason)
    let cases = [
        (0, "no thread could ever serve a connection"),
        (MAX_IO_THREADS + 1, "past the bound"),
    ];
    for (io_threads, why) in cases {
        let mut config = config();
        config.io_threads = io_threads;
        let mut bound = false;
        let outcome = run(config, std::future::pending(), |_| bound = true).await;
        match outcome {
            Err(AgentError::Config { field, problem }) => {
                assert_eq!(field, "--io-threads", "{why}");
                assert!(
                    problem.contains(&MAX_IO_THREADS.to_string()),
                    "{why}: the error gives the accepted range: {problem}"
                );
            }
            other => panic!("{why}: expected a configuration error, got {other:?}"),
        }
        assert!(!bound, "{why}: nothing was bound");
    }
}
