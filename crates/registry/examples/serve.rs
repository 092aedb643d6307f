//! Serves a registry on 127.0.0.1 over a data directory, printing its address: for contract tests.
//!
//! Usage: `cargo run -p mcpulse-registry --example serve -- DATA_DIR [SEED_TOKEN_FILE]`. With a token
//! file, an admin token is created, written there, and one server is published so reads see data.

use std::net::SocketAddr;
use std::path::PathBuf;

use mcpulse_registry::{RegistryConfig, RegistryError, Role, StorageConfig};

#[tokio::main]
async fn main() -> Result<(), RegistryError> {
    let mut args = std::env::args().skip(1);
    let data_dir =
        PathBuf::from(args.next().ok_or_else(|| {
            RegistryError::Config("usage: serve DATA_DIR [TOKEN_FILE]".to_owned())
        })?);
    let storage = StorageConfig::Sqlite { data_dir };
    if let Some(token_file) = args.next() {
        let token = mcpulse_registry::create_token(&storage, Role::Admin, None).await?;
        std::fs::write(&token_file, &token).map_err(|source| RegistryError::Io {
            action: "write token file",
            path: token_file.clone(),
            source,
        })?;
    }
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = mcpulse_registry::bind(RegistryConfig::new(listen, storage)).await?;
    // The caller waits for this line to learn the port.
    println!("listening on http://{}", server.local_addr()?);
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
