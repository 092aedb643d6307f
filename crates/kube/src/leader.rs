//! Leader election on a `coordination.k8s.io/v1` Lease (kube-runtime 5 has none): acquire and renew with
//! resourceVersion-guarded writes, so two controller replicas never act at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;

use crate::error::KubeError;

/// Whether this replica may write; cheap to clone into every reconcile.
#[derive(Clone, Debug)]
pub struct Leadership(watch::Receiver<bool>);

impl Leadership {
    pub fn is_leader(&self) -> bool {
        *self.0.borrow()
    }

    /// A fixed answer, for a single replica run without election and for tests.
    pub fn fixed(leader: bool) -> Self {
        let (tx, rx) = watch::channel(leader);
        // Dropping the sender keeps the last value readable.
        drop(tx);
        Self(rx)
    }

    /// A receiver that changes with the elector, for triggering a full reconcile on gaining leadership.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }
}

/// Which Lease, who we are, and how long a lease holds.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// Unique per replica: the pod name.
    pub identity: String,
    /// A holder that has not renewed for this long has lost the lease.
    pub lease_duration: Duration,
    /// How often the holder renews (and a follower retries); at most a third of `lease_duration`.
    pub renew_every: Duration,
}

/// What to do with the Lease as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Its holder stopped renewing (or released it): take it over.
    TakeOver,
    /// Someone else holds a live lease.
    Follow { holder: String },
}

/// Pure decision on a read Lease at `now`.
pub fn step(
    lease: Option<&Lease>,
    identity: &str,
    now: Timestamp,
    default_duration: Duration,
) -> Step {
    let Some(lease) = lease else {
        return Step::Create;
    };
    let spec = lease.spec.as_ref();
    let holder = spec
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default();
    if holder == identity {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::TakeOver;
    }
    let duration = spec.and_then(|s| s.lease_duration_seconds).map_or(
        SignedDuration::try_from(default_duration).unwrap_or(SignedDuration::MAX),
        |s| SignedDuration::from_secs(i64::from(s.max(1))),
    );
    let renewed = spec.and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()));
    match renewed {
        Some(MicroTime(t)) if t.saturating_add(duration).is_ok_and(|expiry| expiry > now) => {
            Step::Follow { holder }
        }
        _ => Step::TakeOver,
    }
}

fn held(
    identity: &str,
    config: &LeaseConfig,
    now: Timestamp,
    previous: Option<&LeaseSpec>,
    transition: bool,
) -> LeaseSpec {
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(identity.to_owned()),
        lease_duration_seconds: Some(
            i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX),
        ),
        acquire_time: if transition {
            Some(MicroTime(now))
        } else {
            previous
                .and_then(|p| p.acquire_time.clone())
                .or(Some(MicroTime(now)))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if transition {
            transitions.saturating_add(1)
        } else {
            transitions
        }),
        ..LeaseSpec::default()
    }
}

/// One round: read the Lease and create, renew or take it over. `Ok(true)` when we hold it afterwards.
/// Writes carry the read resourceVersion, so of two replicas racing only one succeeds (the other gets 409).
pub async fn try_acquire(
    api: &Api<Lease>,
    config: &LeaseConfig,
    now: Timestamp,
) -> Result<bool, KubeError> {
    let current = api
        .get_opt(&config.name)
        .await
        .map_err(|e| KubeError::api(format!("get lease {}", config.name), e))?;
    let step = step(
        current.as_ref(),
        &config.identity,
        now,
        config.lease_duration,
    );
    let write = match (&step, current) {
        (Step::Follow { .. }, _) => return Ok(false),
        (Step::Create, _) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(held(&config.identity, config, now, None, true)),
            };
            api.create(&PostParams::default(), &lease).await
        }
        (Step::Renew | Step::TakeOver, Some(mut lease)) => {
            lease.spec = Some(held(
                &config.identity,
                config,
                now,
                lease.spec.as_ref(),
                step == Step::TakeOver,
            ));
            api.replace(&config.name, &PostParams::default(), &lease)
                .await
        }
        (Step::Renew | Step::TakeOver, None) => return Ok(false),
    };
    match write {
        Ok(_) => Ok(true),
        // Lost the race (409) or someone created it first: follow until the next round.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(KubeError::api(format!("write lease {}", config.name), e)),
    }
}

/// Runs the election forever, publishing whether we lead. Any failure to renew drops leadership at once:
/// acting without a confirmed lease could let two replicas scale the same target.
pub async fn run(api: Api<Lease>, config: LeaseConfig, tx: watch::Sender<bool>) {
    loop {
        // A round that hangs must not keep us leading past the lease: bound it by the renew interval, so the
        // last confirmed renewal is at most two intervals old (well inside the lease) while we act.
        let round = tokio::time::timeout(
            config.renew_every,
            try_acquire(&api, &config, Timestamp::now()),
        );
        let leading = match round.await {
            Ok(Ok(l)) => l,
            Err(_) => {
                tracing::warn!(lease = %config.name, "leader election round timed out; not leading until one succeeds");
                false
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, lease = %config.name, "leader election round failed; not leading until it succeeds");
                false
            }
        };
        if *tx.borrow() != leading {
            tracing::info!(leading, identity = %config.identity, lease = %config.name, "leadership changed");
        }
        tx.send_replace(leading);
        tokio::time::sleep(config.renew_every).await;
    }
}

/// A channel starting as follower, for [`run`] and the controller.
pub fn channel() -> (watch::Sender<bool>, Leadership) {
    let (tx, rx) = watch::channel(false);
    (tx, Leadership(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_secs_ago: Option<i64>, now: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(15),
                renew_time: renewed_secs_ago.map(|s| MicroTime(now - SignedDuration::from_secs(s))),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn step_table() {
        let now = Timestamp::from_second(1_800_000_000).expect("valid");
        let d = Duration::from_secs(15);
        let cases: &[(Option<Lease>, Step, &str)] = &[
            (None, Step::Create, "no lease yet"),
            (
                Some(lease(Some("me"), Some(5), now)),
                Step::Renew,
                "we hold it",
            ),
            (
                Some(lease(Some("me"), Some(60), now)),
                Step::Renew,
                "we held it and lapsed: renew (nobody took it)",
            ),
            (
                Some(lease(Some("other"), Some(5), now)),
                Step::Follow {
                    holder: "other".into(),
                },
                "live lease of another",
            ),
            (
                Some(lease(Some("other"), Some(16), now)),
                Step::TakeOver,
                "expired lease of another",
            ),
            (
                Some(lease(Some("other"), None, now)),
                Step::TakeOver,
                "never renewed",
            ),
            (
                Some(lease(None, Some(1), now)),
                Step::TakeOver,
                "released lease",
            ),
        ];
        for (l, want, why) in cases {
            assert_eq!(&step(l.as_ref(), "me", now, d), want, "{why}");
        }
    }

    #[test]
    fn taking_over_counts_a_transition() {
        let now = Timestamp::from_second(1_800_000_000).expect("valid");
        let config = LeaseConfig {
            name: "l".into(),
            namespace: "ns".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        };
        let prev = LeaseSpec {
            lease_transitions: Some(2),
            ..LeaseSpec::default()
        };
        assert_eq!(
            held("me", &config, now, Some(&prev), true).lease_transitions,
            Some(3)
        );
        assert_eq!(
            held("me", &config, now, Some(&prev), false).lease_transitions,
            Some(2)
        );
        assert_eq!(
            held("me", &config, now, None, true).lease_duration_seconds,
            Some(15)
        );
    }
}
