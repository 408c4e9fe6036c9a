//! The worker's tiered storage: Fluid's tiered-store levels (either shape) become
//! `worker.data_dir` entries (`[MEDIUM:CAPACITY]/path`) and one pair of watermarks.

use crate::config::doc::{string_array, NoteLevel, Writer};
use crate::config::fluid_json::Located;
use crate::config::units;
use crate::error::InputError;
use serde_json::Value as JsonValue;
use toml_edit::Value;

/// Writes `worker.data_dir` and the watermarks from the worker's tiered-store levels
/// (nothing when it has none).
pub(super) fn apply(w: &mut Writer, worker: &Located<'_>) -> Result<(), InputError> {
    let levels = tiered_levels(worker)?;
    apply_levels(w, &levels)
}

/// One tiered-store level, from either shape.
struct Level {
    /// MEM, SSD, HDD or DISK.
    medium: String,
    /// Each directory with its capacity, when a quota is given.
    dirs: Vec<(String, Option<String>)>,
    /// The used fraction above which eviction starts.
    high: Option<f64>,
    /// The used fraction eviction brings a directory down to.
    low: Option<f64>,
    /// Where the level is in the JSON, for messages.
    location: String,
}

/// The worker's tiered-store levels, from `tieredStoreLevels` or the legacy `tieredStore`
/// (none when it has neither).
fn tiered_levels(worker: &Located<'_>) -> Result<Vec<Level>, InputError> {
    let node = worker.node();
    if let Some(levels) = node.get("tieredStoreLevels") {
        return levels
            .node()
            .items()?
            .iter()
            .map(|l| current_level(l))
            .collect();
    }
    if let Some(store) = node.get("tieredStore") {
        let list = match store.node().get("levels") {
            Some(levels) => levels,
            None => store,
        };
        return list
            .node()
            .items()?
            .iter()
            .map(|l| legacy_level(l))
            .collect();
    }
    Ok(Vec::new())
}

/// A level of `tieredStoreLevels`: `mediumType`, `mountPaths`, `quotas`, `high`, `low`.
fn current_level(level: &Located<'_>) -> Result<Level, InputError> {
    let n = level.node();
    n.require_object()?;
    let medium = match n.get("mediumType") {
        Some(m) => medium(&m)?,
        None => "HDD".to_string(),
    };
    let paths = match n.get("mountPaths") {
        Some(p) => p.node().items()?,
        None => {
            return Err(n.error(
                "a tiered-store level has no mountPaths",
                "give each level at least one path",
            ))
        }
    };
    let quotas = match n.get("quotas") {
        Some(q) => q.node().items()?,
        None => Vec::new(),
    };
    if !quotas.is_empty() && quotas.len() != paths.len() {
        return Err(n.error(
            format!("{} mountPaths but {} quotas", paths.len(), quotas.len()),
            "give one quota per path",
        ));
    }
    let mut dirs = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let dir = absolute_path(path)?;
        let quota = match quotas.get(i) {
            Some(q) => Some(capacity(q)?),
            None => None,
        };
        dirs.push((dir, quota));
    }
    let (high, low) = watermarks(level)?;
    Ok(Level {
        medium,
        dirs,
        high,
        low,
        location: n.location(),
    })
}

/// A level of the legacy `tieredStore`: one `path`, the medium from `mediumType` or an
/// `emptyDir` in memory, the quota on the level or its `emptyDir`.
fn legacy_level(level: &Located<'_>) -> Result<Level, InputError> {
    let n = level.node();
    n.require_object()?;
    let empty_dir = n.get("emptyDir");
    let memory = |node: Option<Located<'_>>| -> bool {
        node.and_then(|m| {
            m.node()
                .value()
                .get("medium")
                .and_then(JsonValue::as_str)
                .map(|s| s == "Memory")
        })
        .unwrap_or(false)
    };
    let medium = if let Some(m) = n.get("mediumType") {
        medium(&m)?
    } else if memory(n.get("medium").and_then(|m| m.node().get("emptyDir")))
        || memory(empty_dir.clone())
    {
        "MEM".to_string()
    } else {
        "HDD".to_string()
    };
    let path = match n.get("path") {
        Some(p) => absolute_path(&p)?,
        None => return Err(n.error("a tiered-store level has no path", "give each level a path")),
    };
    let quota_node = n
        .get("quota")
        .or_else(|| empty_dir.as_ref().and_then(|e| e.node().get("quota")));
    let quota = match quota_node {
        Some(q) => Some(capacity(&q)?),
        None => None,
    };
    let (high, low) = watermarks(level)?;
    Ok(Level {
        medium,
        dirs: vec![(path, quota)],
        high,
        low,
        location: n.location(),
    })
}

/// A medium name: MEM, SSD, HDD or DISK (any case).
fn medium(node: &Located<'_>) -> Result<String, InputError> {
    let m = node.node().str()?.trim().to_ascii_uppercase();
    match m.as_str() {
        "MEM" | "SSD" | "HDD" | "DISK" => Ok(m),
        _ => Err(node
            .node()
            .error(format!("unknown medium {m:?}"), "use MEM, SSD, HDD or DISK")),
    }
}

/// An absolute directory that can sit in a `[MEDIUM]/path` entry.
fn absolute_path(node: &Located<'_>) -> Result<String, InputError> {
    let p = node.node().str()?.trim();
    if !p.starts_with('/') || p.contains(']') {
        return Err(node.node().error(
            format!("{p:?} is not an absolute directory"),
            "use a path starting with /",
        ));
    }
    Ok(p.to_string())
}

/// A Kubernetes quantity as a Curvine capacity.
fn capacity(node: &Located<'_>) -> Result<String, InputError> {
    let q = node.node().str()?;
    units::quantity_to_capacity(q).map_err(|what| {
        node.node()
            .error(what, "use a Kubernetes quantity such as 5Gi or 500G")
    })
}

/// The level's `high` and `low` ratios, when set; low may not exceed high.
fn watermarks(level: &Located<'_>) -> Result<(Option<f64>, Option<f64>), InputError> {
    let ratio = |key: &str| -> Result<Option<f64>, InputError> {
        let Some(node) = level.node().get(key) else {
            return Ok(None);
        };
        let text = match node.node().value() {
            JsonValue::Number(n) => n.to_string(),
            _ => node.node().str()?.trim().to_string(),
        };
        if text.is_empty() {
            return Ok(None);
        }
        match text.parse::<f64>() {
            Ok(r) if r > 0.0 && r <= 1.0 => Ok(Some(r)),
            _ => Err(node.node().error(
                format!("{text:?} is not a ratio between 0 and 1"),
                "use a ratio such as 0.95",
            )),
        }
    };
    let (high, low) = (ratio("high")?, ratio("low")?);
    if let (Some(h), Some(l)) = (high, low) {
        if l > h {
            return Err(level.node().error(
                format!("low {l} is above high {h}"),
                "eviction runs from high down to low; make low <= high",
            ));
        }
    }
    Ok((high, low))
}

/// Writes `data_dir` and the watermarks from the levels.
fn apply_levels(w: &mut Writer, levels: &[Level]) -> Result<(), InputError> {
    if levels.is_empty() {
        return Ok(());
    }
    let mut entries = Vec::new();
    for level in levels {
        for (path, quota) in &level.dirs {
            entries.push(match quota {
                Some(q) => format!("[{}:{q}]{path}", level.medium),
                None => format!("[{}]{path}", level.medium),
            });
        }
    }
    w.set(&["worker"], "data_dir", string_array(&entries))?;
    // One pair for the worker: the lowest thresholds, so no level overfills.
    for (key, pick) in [("high_watermark", 0usize), ("low_watermark", 1usize)] {
        let values: Vec<(f64, &str)> = levels
            .iter()
            .filter_map(|l| {
                if pick == 0 { l.high } else { l.low }.map(|v| (v, l.location.as_str()))
            })
            .collect();
        let Some(min) = values.iter().map(|(v, _)| *v).reduce(f64::min) else {
            continue;
        };
        if values.iter().any(|(v, _)| *v != min) {
            w.note(
                NoteLevel::Info,
                format!(
                    "tiered-store levels have different {key}s; the worker uses the lowest, {min}"
                ),
            );
        }
        if !w.was_assigned(&["worker"], key) {
            w.set(&["worker"], key, Value::from(min))?;
        }
    }
    Ok(())
}
