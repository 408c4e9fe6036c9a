//! Locating the component blocks of Fluid's CacheRuntime `runtime.json`, in its current
//! shape (`master`/`worker`/`client` at the top) or the legacy one (under `topology`).

use crate::config::fluid_json::{Json, Located};
use crate::error::InputError;
use crate::mode::Component;

/// The component blocks of the runtime config, in either shape.
pub(super) struct Blocks<'a> {
    /// The blocks sit under `topology` (the legacy shape, with `podConfigs`).
    pub(super) legacy: bool,
    /// The master block.
    pub(super) master: Option<Located<'a>>,
    /// The worker block.
    pub(super) worker: Option<Located<'a>>,
    /// The client block.
    pub(super) client: Option<Located<'a>>,
}

impl<'a> Blocks<'a> {
    /// Finds the blocks in `root`: at the top, or under `topology`.
    pub(super) fn find(root: &Json<'a>) -> Result<Blocks<'a>, InputError> {
        let current = Blocks {
            legacy: false,
            master: root.get("master"),
            worker: root.get("worker"),
            client: root.get("client"),
        };
        if current.master.is_some() || current.worker.is_some() || current.client.is_some() {
            return Ok(current);
        }
        if let Some(topology) = root.get("topology") {
            topology.node().require_object()?;
            let t = topology.node();
            return Ok(Blocks {
                legacy: true,
                master: t.get("master"),
                worker: t.get("worker"),
                client: t.get("client"),
            });
        }
        Err(root.error(
            "the runtime config has no master, worker or client block",
            "this does not look like a CacheRuntime runtime.json; check FLUID_RUNTIME_CONFIG_PATH",
        ))
    }

    /// The block of component `c`, if the runtime config has one.
    pub(super) fn get(&self, c: Component) -> Option<&Located<'a>> {
        match c {
            Component::Master => self.master.as_ref(),
            Component::Worker => self.worker.as_ref(),
            Component::Client => self.client.as_ref(),
        }
    }

    /// The master block, which every runtime needs.
    pub(super) fn require_master(&self, root: &Json<'_>) -> Result<&Located<'a>, InputError> {
        self.master.as_ref().ok_or_else(|| {
            root.error(
                "the runtime config has no master",
                "curvine-fluid needs the master component: do not set spec.master.disabled in the CacheRuntime",
            )
        })
    }

    /// Checks that the block of this pod's `component` is there and is an object.
    pub(super) fn require_own(
        &self,
        root: &Json<'_>,
        component: Component,
    ) -> Result<(), InputError> {
        let own = self.get(component).ok_or_else(|| {
            root.error(
                format!(
                    "the runtime config has no {component} block, but this pod is the {component}"
                ),
                format!("enable spec.{component}, or fix FLUID_RUNTIME_COMPONENT_TYPE"),
            )
        })?;
        own.node().require_object()
    }
}

/// A non-negative count such as `replicas` in a block, when present.
pub(super) fn optional_count(block: &Located<'_>, key: &str) -> Result<Option<u32>, InputError> {
    block.node().get(key).map(|n| n.node().count()).transpose()
}
