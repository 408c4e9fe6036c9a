//! Finding the masters from a bare DataLoad pod, which has no runtime config: the
//! dataset's headless master service, named from `CURVINE_DATASET_NAME` or the pod name,
//! looked up in DNS.

use crate::config::model::HostPort;
use crate::env::{EnvSnapshot, CURVINE_DATASET_NAME, CURVINE_MASTER_PORT};
use crate::error::InputError;
use std::time::Duration;
use tracing::info;

/// Where Kubernetes puts the pod's namespace.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// What Fluid appends to a DataLoad's name to name its Job.
const JOB_SUFFIX: &str = "-loader-job";
/// The random suffix Kubernetes gives a Job's pods (`-` is part of the base).
const RANDOM_SUFFIX_LEN: usize = 5;
/// Kubernetes cuts a generated name's base to this length (63 less the random suffix).
const MAX_GENERATED_BASE: usize = 58;

/// Dataset names the pod name may carry. A DataLoad pod is named
/// `<dataload>-loader-job-<5 random>`, with the base cut to 58 characters when longer, so
/// a long DataLoad name loses the Job suffix and its own end. DataLoads are often named
/// `<dataset>-<what>`: every `-`-prefix of what is left of the DataLoad name is a
/// candidate, longest first. Nothing of the cut part is needed.
pub fn candidate_datasets(hostname: &str) -> Vec<String> {
    let dataload = if let Some((dataload, _)) = hostname.rsplit_once("-loader-job-") {
        dataload.to_string()
    } else if hostname.len() == MAX_GENERATED_BASE + RANDOM_SUFFIX_LEN && hostname.is_ascii() {
        // The base was cut: drop the random suffix, then whatever part of the Job suffix
        // survived ("-", "-load", "-loader-jo", ...).
        let base = &hostname[..MAX_GENERATED_BASE];
        let job = format!("{JOB_SUFFIX}-");
        let cut = (1..job.len())
            .rev()
            .find(|n| base.ends_with(&job[..*n]))
            .unwrap_or(0);
        base[..base.len() - cut].to_string()
    } else {
        return Vec::new();
    };
    let parts: Vec<&str> = dataload.split('-').collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("-"))
        .filter(|name| !name.is_empty() && !name.ends_with('-'))
        .collect()
}

/// The pod's namespace: the environment, the service account file, `default`.
pub fn namespace(env: &EnvSnapshot) -> String {
    env.dataset_namespace()
        .map(str::to_string)
        .or_else(|| {
            std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "default".to_string())
}

/// The masters of the dataset's runtime, from the addresses its headless master service
/// resolves to; `None` when the service does not resolve.
async fn resolve_service(
    dataset: &str,
    ns: &str,
    domain: &str,
    port: u16,
) -> Option<Vec<HostPort>> {
    let names = [
        format!("svc-{dataset}-master.{ns}.svc.{domain}"),
        format!("svc-{dataset}-master.{ns}.svc"),
    ];
    for name in names {
        let lookup = tokio::net::lookup_host((name.as_str(), port));
        if let Ok(Ok(addrs)) = tokio::time::timeout(Duration::from_secs(5), lookup).await {
            let mut hosts: Vec<HostPort> = addrs
                .map(|a| HostPort {
                    hostname: a.ip().to_string(),
                    port,
                })
                .collect();
            hosts.dedup();
            if !hosts.is_empty() {
                info!(service = %name, masters = hosts.len(), "found the dataset's masters");
                return Some(hosts);
            }
        }
    }
    None
}

/// Finds the masters: `CURVINE_DATASET_NAME` or the pod name's candidates, through DNS.
pub async fn discover_masters(env: &EnvSnapshot) -> Result<Vec<HostPort>, InputError> {
    let port = match env.get(CURVINE_MASTER_PORT) {
        None => 8995,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            InputError::new(
                format!("port {p:?} is not a number from 1 to 65535"),
                format!("env {CURVINE_MASTER_PORT}"),
                "set the masters' rpc_port",
            )
        })?,
    };
    let ns = namespace(env);
    let domain = env.cluster_domain();
    let hostname = env.get(crate::env::HOSTNAME).unwrap_or("");
    let candidates = match env.get(CURVINE_DATASET_NAME) {
        Some(name) => vec![name.to_string()],
        None => candidate_datasets(hostname),
    };
    for dataset in &candidates {
        if let Some(hosts) = resolve_service(dataset, &ns, domain, port).await {
            info!(dataset = %dataset, namespace = %ns, "loading into dataset");
            return Ok(hosts);
        }
    }
    let tried = if candidates.is_empty() {
        "no dataset name: the pod name is not <dataload>-loader-job-<id>".to_string()
    } else {
        format!(
            "no master service svc-<dataset>-master in namespace {ns} for dataset {}",
            candidates.join(", ")
        )
    };
    Err(InputError::new(
        format!("cannot find the dataset's masters: {tried}"),
        format!("env HOSTNAME={hostname:?}, {CURVINE_DATASET_NAME}, {}", crate::env::CURVINE_MASTER_ENDPOINTS),
        "name the DataLoad <dataset>-<anything>, or set CURVINE_MASTER_ENDPOINTS=host:port[,host:port] (or CURVINE_DATASET_NAME) in the DataLoad command's env",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_candidates_from_the_pod_name() {
        assert_eq!(
            candidate_datasets("curvine-demo-load-loader-job-x7k2m"),
            vec!["curvine-demo-load", "curvine-demo", "curvine"]
        );
        assert!(candidate_datasets("node-a7").is_empty());
    }

    /// The pod name Kubernetes gives a Job's pod: the base cut to 58 characters, then 5
    /// random ones.
    fn job_pod_name(dataload: &str) -> String {
        let base = format!("{dataload}-loader-job-");
        format!("{}x7k2m", &base[..base.len().min(58)])
    }

    #[test]
    fn long_dataload_names_lose_their_end_but_not_the_dataset() {
        // 63 characters: the longest name Kubernetes allows.
        let dataload = "imagenet-train-warmup-before-the-nightly-fine-tuning-run-abcde";
        let dataload = &format!("{dataload}{}", "z".repeat(63 - dataload.len()));
        assert_eq!(dataload.len(), 63);
        let pod = job_pod_name(dataload);
        assert_eq!(pod.len(), 63);
        assert!(!pod.contains("-loader-job-"));
        let c = candidate_datasets(&pod);
        assert!(c.contains(&"imagenet".to_string()), "{c:?}");
        assert!(c.contains(&"imagenet-train".to_string()), "{c:?}");
        // Every length at which the cut falls inside "-loader-job-" still finds it.
        for extra in 0..14 {
            let name = format!("mydata-{}", "w".repeat(40 + extra));
            let c = candidate_datasets(&job_pod_name(&name));
            assert!(c.contains(&"mydata".to_string()), "{name}: {c:?}");
            assert!(c.iter().all(|n| !n.contains("loader")), "{name}: {c:?}");
        }
    }
}
