//! Self-registration: registers with the registry, heartbeats, re-registers after an outage, deregisters on drain.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::AgentError;
use crate::config::RegistrationConfig;

/// First retry delay after a failed registry call; doubles up to the heartbeat interval.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest registry error body quoted in a log line.
const MAX_QUOTED_BODY: usize = 512;

/// The registry's `POST /api/v1/instances` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Registration<'a> {
    server_name: &'a str,
    version: &'a str,
    endpoint: &'a str,
    labels: &'a BTreeMap<String, String>,
}

/// The part of the registry's instance view the agent needs.
#[derive(Debug, Deserialize)]
struct Instance {
    id: String,
}

/// What a heartbeat found.
#[derive(Debug, PartialEq, Eq)]
enum Beat {
    Alive,
    /// The registry no longer knows the instance (expired, or its data was reset): register again.
    Forgotten,
}

/// A client for the registry's instances API.
#[derive(Debug)]
pub(crate) struct Registrar {
    client: reqwest::Client,
    instances: Url,
    token: Option<String>,
    server_name: String,
    version: String,
    endpoint: String,
    labels: BTreeMap<String, String>,
    interval: Duration,
}

impl Registrar {
    /// `endpoint` is the MCP URL announced for this agent.
    pub(crate) fn new(
        config: &RegistrationConfig,
        server_name: &str,
        version: &str,
        endpoint: String,
    ) -> Result<Self, AgentError> {
        let bad_url =
            |e: String| AgentError::config("--registry", format!("'{}': {e}", config.url));
        let base = Url::parse(&config.url).map_err(|e| bad_url(e.to_string()))?;
        // `join` on a base without a trailing slash would drop its last path segment.
        let mut base_text = base.to_string();
        if !base_text.ends_with('/') {
            base_text.push('/');
        }
        let instances = Url::parse(&base_text)
            .and_then(|b| b.join("api/v1/instances"))
            .map_err(|e| bad_url(e.to_string()))?;
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| AgentError::Registry {
                action: "client setup",
                problem: e.to_string(),
            })?;
        Ok(Self {
            client,
            instances,
            token: config.token.clone(),
            server_name: server_name.to_owned(),
            version: version.to_owned(),
            endpoint,
            labels: config.labels.clone(),
            interval: config.heartbeat_interval,
        })
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.client.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    fn instance_url(&self, id: &str, suffix: &str) -> Result<Url, AgentError> {
        let mut url = self.instances.clone();
        url.path_segments_mut()
            .map_err(|()| AgentError::Registry {
                action: "build url",
                problem: "registry URL cannot be a base".to_owned(),
            })?
            .push(id)
            .extend(suffix.split('/').filter(|s| !s.is_empty()));
        Ok(url)
    }

    async fn register(&self) -> Result<String, AgentError> {
        let body = Registration {
            server_name: &self.server_name,
            version: &self.version,
            endpoint: &self.endpoint,
            labels: &self.labels,
        };
        let response = self
            .request(reqwest::Method::POST, self.instances.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| failure("register", e))?;
        let response = expect(response, "register", &[StatusCode::CREATED, StatusCode::OK]).await?;
        let instance: Instance = response.json().await.map_err(|e| failure("register", e))?;
        Ok(instance.id)
    }

    async fn heartbeat(&self, id: &str) -> Result<Beat, AgentError> {
        let url = self.instance_url(id, "heartbeat")?;
        let response = self
            .request(reqwest::Method::POST, url)
            .send()
            .await
            .map_err(|e| failure("heartbeat", e))?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(Beat::Forgotten);
        }
        expect(
            response,
            "heartbeat",
            &[StatusCode::OK, StatusCode::NO_CONTENT],
        )
        .await?;
        Ok(Beat::Alive)
    }

    async fn deregister(&self, id: &str) -> Result<(), AgentError> {
        let url = self.instance_url(id, "")?;
        let response = self
            .request(reqwest::Method::DELETE, url)
            .send()
            .await
            .map_err(|e| failure("deregister", e))?;
        // Already gone is what deregistering wants.
        expect(
            response,
            "deregister",
            &[
                StatusCode::NO_CONTENT,
                StatusCode::OK,
                StatusCode::NOT_FOUND,
            ],
        )
        .await?;
        Ok(())
    }

    /// Keeps the instance registered until `stop` fires, then deregisters it. Never gives up: a
    /// registry outage only delays registration, and MCP keeps being served meanwhile.
    pub(crate) async fn maintain(self, stop: CancellationToken) {
        let mut id: Option<String> = None;
        let mut backoff = FIRST_BACKOFF.min(self.interval);
        loop {
            let result = match &id {
                None => self.register().await.map(|new_id| {
                    tracing::info!(id = %new_id, endpoint = %self.endpoint, "registered with the registry");
                    id = Some(new_id);
                }),
                Some(current) => match self.heartbeat(current).await {
                    Ok(Beat::Alive) => Ok(()),
                    Ok(Beat::Forgotten) => {
                        tracing::warn!(id = %current, "the registry forgot this instance; registering again");
                        id = None;
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            let wait = match result {
                Ok(()) => {
                    backoff = FIRST_BACKOFF.min(self.interval);
                    self.interval
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "registry call failed; still serving MCP");
                    let wait = backoff;
                    backoff = (backoff * 2).min(self.interval);
                    wait
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if let Some(id) = id {
            match self.deregister(&id).await {
                Ok(()) => tracing::info!(%id, "deregistered from the registry"),
                Err(e) => {
                    tracing::warn!(%id, error = %e, "cannot deregister; the registry will expire this instance")
                }
            }
        }
    }
}

fn failure(action: &'static str, error: reqwest::Error) -> AgentError {
    AgentError::Registry {
        action,
        problem: error.to_string(),
    }
}

/// Passes responses with an expected status; turns others into an error quoting the registry.
async fn expect(
    response: reqwest::Response,
    action: &'static str,
    ok: &[StatusCode],
) -> Result<reqwest::Response, AgentError> {
    let status = response.status();
    if ok.contains(&status) {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let quoted: String = body.chars().take(MAX_QUOTED_BODY).collect();
    let hint = match status {
        StatusCode::UNAUTHORIZED => "; pass a valid publisher token with --token",
        StatusCode::FORBIDDEN => "; the token's namespace must cover --server-name",
        _ => "",
    };
    Err(AgentError::Registry {
        action,
        problem: format!("HTTP {status}: {}{hint}", quoted.trim()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path() {
        let cases = [
            (
                "http://r:8080",
                "http://r:8080/api/v1/instances/abc/heartbeat",
                "bare host",
            ),
            (
                "http://r:8080/",
                "http://r:8080/api/v1/instances/abc/heartbeat",
                "trailing slash",
            ),
            (
                "http://r/prefix",
                "http://r/prefix/api/v1/instances/abc/heartbeat",
                "a path prefix is kept",
            ),
        ];
        for (base, want, why) in cases {
            let registrar = Registrar::new(
                &RegistrationConfig::new(base),
                "io.x/a",
                "1",
                "http://a/mcp".to_owned(),
            )
            .expect("valid base");
            assert_eq!(
                registrar
                    .instance_url("abc", "heartbeat")
                    .expect("url")
                    .as_str(),
                want,
                "{why}"
            );
        }
        let registrar = Registrar::new(
            &RegistrationConfig::new("http://r"),
            "io.x/a",
            "1",
            "http://a/mcp".to_owned(),
        )
        .expect("valid base");
        assert_eq!(
            registrar.instance_url("a/b", "").expect("url").as_str(),
            "http://r/api/v1/instances/a%2Fb",
            "an id cannot escape its path segment"
        );
    }
}
