//! Fluid's execution entries (FLUID-CONTRACT §2): `mount-ufs` makes the cluster's mount
//! table match the runtime config's mounts, `report-summary` reports the cache state.
//! Each prints exactly one JSON document on stdout; logs go to stderr.

use crate::client::Client;
use crate::config::fluid_json::Json;
use crate::config::thin::fs_path;
use crate::config::ClusterConfig;
use crate::error::{Error, InputError};
use crate::report::human_bytes;
use crate::rpc::pb::master as pb;
use crate::ufs::{Ufs, UfsSpec};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::{info, warn};

/// How long `mount-ufs` may try to reach the masters: the CacheRuntimeClass gives Fluid's
/// mountUFS 60 s, less a margin for the process and Fluid's exec.
pub const MOUNT_UFS_BUDGET: Duration = Duration::from_secs(45);
/// How long `report-summary` may try: Fluid's reportSummary has 30 s.
pub const REPORT_SUMMARY_BUDGET: Duration = Duration::from_secs(20);

/// Bounds the config's retry budget and RPC timeout by an entry's `budget`, so the entry
/// gives up with its own error line before Fluid kills it.
pub fn within_budget(config: &mut ClusterConfig, budget: Duration) {
    let ms = budget.as_millis() as u64;
    let c = &mut config.client;
    c.rpc_retry_max_duration_ms = c.rpc_retry_max_duration_ms.min(ms);
    c.rpc_timeout_ms = c.rpc_timeout_ms.min(ms / 2);
}

/// The dataset mounts of a runtime config, as mount table entries: `curvine://` paths
/// of this cluster, or under storage (`s3://`, `local://`, `file://`) with its spec.
pub fn wanted_mounts(
    file: &str,
    root: &serde_json::Value,
) -> Result<Vec<pb::MountEntry>, InputError> {
    let root = Json::root(file, root);
    let Some(mounts) = root.get("mounts") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in mounts.node().items()? {
        let m = item.node();
        m.require_object()?;
        let mount_point = m
            .get("mountPoint")
            .ok_or_else(|| {
                m.error(
                    "the mount has no mountPoint",
                    "give every dataset mount a mountPoint",
                )
            })?
            .node()
            .str()?
            .trim()
            .to_string();
        let scheme = mount_point.split_once("://").map_or("", |(s, _)| s);
        let path = dataset_path(m)?;
        let read_only = match m.get("readOnly") {
            Some(v) => v.node().value().as_bool().ok_or_else(|| {
                v.node()
                    .error("readOnly is not true or false", "write true or false")
            })?,
            None => false,
        };
        let (target, ufs) = match scheme {
            "curvine" => (
                fs_path(&mount_point).map_err(|what| m.error(what, "write curvine:///<dir>"))?,
                String::new(),
            ),
            "s3" | "local" | "file" => {
                let options = string_map(m, "options")?;
                let secrets = string_map(m, "encryptOptions")?;
                let (spec, warnings) = UfsSpec::from_fluid(&mount_point, &options, &secrets)
                    .map_err(|what| {
                        m.error(
                            what,
                            "fix the Dataset's mount (options, encryptOptions, mountPoint)",
                        )
                    })?;
                for w in warnings {
                    warn!(mount = %mount_point, "{w}");
                }
                let json = serde_json::to_string(&spec).map_err(|e| {
                    m.error(format!("the spec does not encode: {e}"), "report this bug")
                })?;
                (path.clone(), json)
            }
            _ => {
                let kind = if scheme.is_empty() {
                    mount_point.as_str()
                } else {
                    scheme
                };
                return Err(m.error(
                    format!("under-storage kind {kind:?} is not supported: this cache serves curvine://, s3://, local:// and file:// mounts"),
                    "mount one of those, or use a runtime that caches this storage",
                ));
            }
        };
        out.push(pb::MountEntry {
            path,
            source: mount_point,
            target,
            read_only,
            ufs,
        });
    }
    Ok(out)
}

/// An object of strings (`options`, `encryptOptions`) of a mount; empty when absent.
fn string_map(m: &Json<'_>, key: &str) -> Result<BTreeMap<String, String>, InputError> {
    let Some(v) = m.get(key) else {
        return Ok(BTreeMap::new());
    };
    let node = v.node();
    let Some(object) = node.value().as_object() else {
        return Err(node.error(
            format!("{key} is not an object"),
            format!("write {key} as a map of names to strings"),
        ));
    };
    let mut out = BTreeMap::new();
    for (name, value) in object {
        let Some(text) = value.as_str() else {
            return Err(node.error(format!("{key}.{name} is not a string"), "quote the value"));
        };
        out.insert(name.clone(), text.to_string());
    }
    Ok(out)
}

/// Checks each under-storage mount answers with its credentials, within `budget` in
/// all: one line naming the mount (`mounts[i]`) and the fix otherwise.
pub async fn probe_mounts(
    file: &str,
    wanted: &[pb::MountEntry],
    budget: Duration,
) -> Result<(), Error> {
    let deadline = std::time::Instant::now() + budget;
    for (i, m) in wanted.iter().enumerate().filter(|(_, m)| !m.ufs.is_empty()) {
        let at = format!("{file}: mounts[{i}] ({})", m.source);
        let spec: UfsSpec = serde_json::from_str(&m.ufs).map_err(|e| {
            InputError::new(
                format!("the spec does not encode: {e}"),
                at.clone(),
                "report this bug",
            )
        })?;
        let ufs = Ufs::open(&spec).map_err(|e| {
            InputError::new(
                e.to_string(),
                at.clone(),
                "mount the secret into this pod, or fix the encryptOptions paths",
            )
        })?;
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        ufs.probe(
            left.min(Duration::from_secs(15))
                .max(Duration::from_secs(1)),
        )
        .await
        .map_err(|e| {
            InputError::new(
                e.to_string(),
                at.clone(),
                "fix the Dataset's mount; Fluid runs mount-ufs again",
            )
        })?;
        info!(mount = %m.path, source = %m.source, "under storage answers");
    }
    Ok(())
}

/// The path Fluid expects a mount at: `path` when absolute, else `/<name>` (§1.2).
fn dataset_path(m: &Json<'_>) -> Result<String, InputError> {
    let text = |key: &str| -> Result<String, InputError> {
        match m.get(key) {
            Some(v) => Ok(v.node().str()?.trim().to_string()),
            None => Ok(String::new()),
        }
    };
    let path = text("path")?;
    if path.starts_with('/') {
        return Ok(path);
    }
    let name = text("name")?;
    Ok(format!("/{}", name.trim_start_matches('/')))
}

/// `mount-ufs`: sets the mount table and returns the document Fluid parses.
pub async fn mount_ufs(client: &Client, wanted: Vec<pb::MountEntry>) -> Result<String, Error> {
    for m in &wanted {
        info!(path = %m.path, source = %m.source, "wanted mount");
    }
    let table = client.set_mounts(wanted).await?;
    // Fluid compares `mounted` with its mounts other than local:// and pvc://.
    let mounted: Vec<&str> = table
        .mounts
        .iter()
        .filter(|m| !m.source.starts_with("local://"))
        .map(|m| m.path.as_str())
        .collect();
    info!(mounted = ?mounted, "mount table set");
    Ok(json!({ "mounted": mounted }).to_string())
}

/// `report-summary`: the cache state in the units `kubectl get dataset` shows.
pub async fn report_summary(client: &Client) -> Result<String, Error> {
    let report = client.report().await?;
    Ok(summary(&report).to_string())
}

/// The summary document of a cluster report.
pub fn summary(report: &pb::ClusterReport) -> serde_json::Value {
    json!({
        "cached": human_bytes(report.cached_bytes),
        "cachedPercentage": percent(report.cached_bytes, report.file_bytes),
        "cacheCapacity": human_bytes(report.capacity),
        "cacheHitRatio": hit_ratio(report),
    })
}

/// Bytes served from cache over bytes read; the share of reads that found their block
/// before any byte was served.
fn hit_ratio(report: &pb::ClusterReport) -> String {
    let bytes = report.bytes_hit + report.bytes_fetched;
    if bytes > 0 {
        percent(report.bytes_hit, bytes)
    } else {
        percent(report.reads_hit, report.reads_hit + report.reads_miss)
    }
}

/// A share with one decimal: `12.5%`; `0.0%` when there is nothing to divide.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.0%".to_string();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts(text: &str) -> Result<Vec<pb::MountEntry>, InputError> {
        wanted_mounts("runtime.json", &serde_json::from_str(text).unwrap())
    }

    #[test]
    fn sizes_and_percentages_as_fluid_shows_them() {
        assert_eq!(human_bytes(1_288_490_189), "1.20GiB");
        assert_eq!(percent(1, 8), "12.5%");
        assert_eq!(percent(0, 0), "0.0%");
        assert_eq!(percent(3, 3), "100.0%");
    }

    #[test]
    fn summary_fields_are_strings() {
        let report = pb::ClusterReport {
            capacity: 5 << 30,
            file_bytes: 4 << 20,
            cached_bytes: 1 << 20,
            reads_hit: 3,
            reads_miss: 1,
            ..Default::default()
        };
        let doc = summary(&report);
        assert_eq!(doc["cached"], "1.00MiB");
        assert_eq!(doc["cachedPercentage"], "25.0%");
        assert_eq!(doc["cacheCapacity"], "5.00GiB");
        assert_eq!(doc["cacheHitRatio"], "75.0%");
        assert_eq!(doc.as_object().unwrap().len(), 4);
    }

    #[test]
    fn mounts_of_the_fixtures() {
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fluid-fixtures/cache");
        let read = |name: &str| std::fs::read_to_string(fixtures.join(name)).unwrap();
        let c01 = mounts(&read("c01-emptydir-1m1w.json")).unwrap();
        assert_eq!(c01.len(), 1);
        assert_eq!(
            (c01[0].path.as_str(), c01[0].target.as_str()),
            ("/curvine", "/data")
        );
        let c03 = mounts(&read("c03-process-memory.json")).unwrap();
        assert_eq!((c03[0].path.as_str(), c03[0].target.as_str()), ("/", "/"));
        let c05 = mounts(&read("c05-s3-ufs.json")).unwrap();
        assert_eq!(
            (
                c05[0].path.as_str(),
                c05[0].target.as_str(),
                c05[0].read_only
            ),
            ("/imagenet", "/imagenet", true)
        );
        let spec: UfsSpec = serde_json::from_str(&c05[0].ufs).unwrap();
        assert_eq!(spec.describe(), "s3://ml-datasets/imagenet");
    }

    #[test]
    fn paths_names_and_bad_mounts() {
        let m = mounts(r#"{"mounts":[{"mountPoint":"curvine:///x","name":"ds"}]}"#).unwrap();
        assert_eq!(m[0].path, "/ds");
        let m = mounts(r#"{"mounts":[{"mountPoint":"curvine:///x","readOnly":true}]}"#).unwrap();
        assert_eq!(m[0].path, "/");
        assert!(m[0].read_only);
        assert!(mounts(r#"{}"#).unwrap().is_empty());
        for bad in [
            r#"{"mounts":[{"name":"x"}]}"#,
            r#"{"mounts":[{"mountPoint":"pvc://claim/x"}]}"#,
            r#"{"mounts":[{"mountPoint":"s3://b/p","options":{"endpoint_url":7}}]}"#,
            r#"{"mounts":[{"mountPoint":"curvine:///a/../.."}]}"#,
            r#"{"mounts":{"mountPoint":"curvine:///"}}"#,
        ] {
            assert!(mounts(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn entries_give_up_within_fluid_exec_timeouts() {
        let mut c = ClusterConfig::default();
        within_budget(&mut c, REPORT_SUMMARY_BUDGET);
        assert_eq!(
            (c.client.rpc_retry_max_duration_ms, c.client.rpc_timeout_ms),
            (20_000, 10_000)
        );
        let mut c = ClusterConfig::default();
        c.client.rpc_retry_max_duration_ms = 5_000;
        within_budget(&mut c, MOUNT_UFS_BUDGET);
        assert_eq!(
            c.client.rpc_retry_max_duration_ms, 5_000,
            "a shorter setting stays"
        );
    }
}
