//! Zero-cost tool call round trip through rmcp over loopback, client and agent in one process.

use std::net::SocketAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use mcpulse_agent::{AgentConfig, run};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio::sync::oneshot;

fn round_trip(c: &mut Criterion) {
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        panic!("cannot build a tokio runtime");
    };
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let (_stop, stopped) = oneshot::channel::<()>();
    let (bound_tx, bound_rx) = oneshot::channel();
    runtime.spawn(run(
        AgentConfig::new(any, any),
        async move {
            let _ = stopped.await;
        },
        move |bound| {
            let _ = bound_tx.send(bound);
        },
    ));
    let client = runtime.block_on(async {
        let bound = bound_rx.await.expect("agent binds");
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", bound.listen)),
        );
        ClientConfig::default()
            .serve(transport)
            .await
            .expect("session opens")
    });

    let mut group = c.benchmark_group("tool_call_round_trip");
    for (tool, args) in [
        ("echo", serde_json::json!({"message": "hi"})),
        ("work", serde_json::json!({})),
    ] {
        let args = args.as_object().cloned().unwrap_or_default();
        group.bench_function(tool, |b| {
            b.to_async(&runtime).iter(|| {
                let request = CallToolRequestParams::new(tool).with_arguments(args.clone());
                let client = &client;
                async move { client.call_tool(request).await.expect("call succeeds") }
            });
        });
    }
    group.finish();
    runtime.block_on(async { client.cancel().await.expect("session closes") });
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
