#!/usr/bin/env python3
"""Reads the output of `helm template` for charts/curvine-fluid (scripts/test-chart.sh and
scripts/e2e-chart.sh use it; PyYAML comes from scripts/tools.sh's venv).

  chart_tool.py configs RENDERED OUT_DIR
      writes every key of the chart's ConfigMap to OUT_DIR/<key>
  chart_tool.py check RENDERED
      checks that the config files, workloads and services agree: each master names itself
      among the Raft peers, each worker its own DNS name, every pod reads its own file,
      probes ask /healthz on the configured web ports, data directories sit on volumes
  chart_tool.py pods RENDERED WORK_DIR
      prints one JSON object per pod (each StatefulSet replica, one pod per DaemonSet, the
      helm test Pod) saying how to run its first container with `docker run`: name, DNS
      aliases, env and args with Kubernetes' $(VAR) expansion, volumes as directories under
      WORK_DIR (ConfigMap files, emptyDir, hostPath, claims, Secrets from
      WORK_DIR/secrets/<name>), privileged (as /dev/fuse and
      CAP_SYS_ADMIN), the readiness probe.

Errors are one line on stderr, exit status 1.
"""

import json
import os
import re
import sys
import tomllib

import yaml

class Fail(Exception):
    pass


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def of_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def the_configmap(docs):
    cms = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config")]
    if len(cms) != 1:
        raise Fail(f"expected one <name>-config ConfigMap, found {len(cms)}")
    return cms[0]


def expand(text, env):
    """Kubernetes' $(VAR) expansion: defined variables are replaced, $$ escapes, others stay."""

    def sub(m):
        if m.group(0).startswith("$$"):
            return m.group(0)[1:]
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return re.sub(r"\$\$\(|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, text)


def pod_env(container, pod_name, namespace, configmaps):
    env = {}
    for e in container.get("env", []):
        name = e["name"]
        if "value" in e:
            env[name] = expand(str(e["value"]), env)
        elif "valueFrom" in e:
            src = e["valueFrom"]
            if "fieldRef" in src:
                field = src["fieldRef"]["fieldPath"]
                values = {"metadata.name": pod_name, "metadata.namespace": namespace,
                          "spec.nodeName": "e2e-node"}
                if field not in values:
                    raise Fail(f"env {name}: fieldRef {field} cannot be emulated in Docker")
                env[name] = values[field]
            elif "configMapKeyRef" in src:
                ref = src["configMapKeyRef"]
                env[name] = configmaps[ref["name"]]["data"][ref["key"]]
            else:
                raise Fail(f"env {name}: {list(src)} cannot be emulated in Docker")
        else:
            env[name] = ""
    return env


def named_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    raise Fail(f"container {container['name']}: no port named {port!r}")


def services_for(docs, labels):
    """The Services whose selector matches these pod labels."""
    out = []
    for svc in of_kind(docs, "Service"):
        sel = svc["spec"].get("selector") or {}
        if sel and all(labels.get(k) == v for k, v in sel.items()):
            out.append(svc)
    return out


def pods_of(docs):
    """(kind, pod name, pod template metadata+spec, owner) for every pod the chart makes."""
    pods = []
    for sts in of_kind(docs, "StatefulSet"):
        for i in range(int(sts["spec"].get("replicas", 1))):
            pods.append(("StatefulSet", f"{sts['metadata']['name']}-{i}", sts["spec"]["template"], sts))
    for ds in of_kind(docs, "DaemonSet"):
        pods.append(("DaemonSet", f"{ds['metadata']['name']}-e2e", ds["spec"]["template"], ds))
    for pod in of_kind(docs, "Pod"):
        pods.append(("Pod", pod["metadata"]["name"], pod, pod))
    return pods


# ------------------------------------------------------------------------------ configs
def cmd_configs(rendered, out_dir):
    cm = the_configmap(load(rendered))
    os.makedirs(out_dir, exist_ok=True)
    for key, text in cm["data"].items():
        with open(os.path.join(out_dir, key), "w", encoding="utf-8") as f:
            f.write(text)
        print(os.path.join(out_dir, key))


# ------------------------------------------------------------------------------ check
def cmd_check(rendered):
    docs = load(rendered)
    cm = the_configmap(docs)
    ns = cm["metadata"].get("namespace", "default")
    files = {k: tomllib.loads(v) for k, v in cm["data"].items()}
    if "client.toml" not in files:
        raise Fail("the ConfigMap has no client.toml")
    sts = {s["metadata"]["name"]: s for s in of_kind(docs, "StatefulSet")}
    masters = [s for s in sts.values() if s["metadata"]["labels"].get("app.kubernetes.io/component") == "master"]
    workers = [s for s in sts.values() if s["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"]
    if len(masters) != 1 or len(workers) != 1:
        raise Fail("expected one master and one worker StatefulSet")
    master, worker = masters[0], workers[0]
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    client = files["client.toml"]
    domain = None

    def headless(s):
        svc = services.get(s["spec"]["serviceName"])
        if not svc or svc["spec"].get("clusterIP") != "None" or not svc["spec"].get("publishNotReadyAddresses"):
            raise Fail(f"{s['metadata']['name']}: serviceName {s['spec']['serviceName']} is not a headless Service publishing not-ready pods")
        return svc["metadata"]["name"]

    m_svc, w_svc = headless(master), headless(worker)
    n = int(master["spec"]["replicas"])
    if n % 2 == 0:
        raise Fail(f"{n} masters rendered: an even count must be refused")
    peers = client["journal"]["journal_addrs"]
    if [p["id"] for p in peers] != list(range(1, n + 1)):
        raise Fail(f"journal_addrs ids {[p['id'] for p in peers]} are not 1..{n}")
    for i, p in enumerate(peers):
        prefix = f"{master['metadata']['name']}-{i}.{m_svc}.{ns}.svc."
        if not p["hostname"].startswith(prefix):
            raise Fail(f"peer {p['id']} is {p['hostname']}, not {prefix}<domain>")
        domain = p["hostname"][len(prefix):]
    addrs = [f"{a['hostname']}:{a['port']}" for a in client["client"]["master_addrs"]]
    want = [f"{p['hostname']}:{client['master']['rpc_port']}" for p in peers]
    if addrs != want:
        raise Fail(f"client.master_addrs {addrs} are not the masters' rpc addresses {want}")
    for key, conf in files.items():
        if conf["journal"]["journal_addrs"] != peers or conf["client"]["master_addrs"] != client["client"]["master_addrs"]:
            raise Fail(f"{key}: its peers or master addresses differ from client.toml's")
    for i in range(n):
        pod = f"{master['metadata']['name']}-{i}"
        conf = files.get(f"{pod}.toml")
        if conf is None:
            raise Fail(f"no config file {pod}.toml for master {i}")
        me = f"{pod}.{m_svc}.{ns}.svc.{domain}"
        if conf["master"]["hostname"] != me or conf["journal"]["hostname"] != me:
            raise Fail(f"{pod}.toml names {conf['master']['hostname']} / {conf['journal']['hostname']}, not {me}")
        if not any(p["hostname"] == me and p["port"] == conf["journal"]["rpc_port"] for p in peers):
            raise Fail(f"{pod}.toml: {me}:{conf['journal']['rpc_port']} is not among journal_addrs")
    for i in range(int(worker["spec"]["replicas"])):
        pod = f"{worker['metadata']['name']}-{i}"
        conf = files.get(f"{pod}.toml")
        if conf is None:
            raise Fail(f"no config file {pod}.toml for worker {i}")
        me = f"{pod}.{w_svc}.{ns}.svc.{domain}"
        if conf["worker"]["hostname"] != me:
            raise Fail(f"{pod}.toml names worker {conf['worker']['hostname']}, not {me}")

    def check_pod(s, web_port, dirs):
        spec = s["spec"]["template"]["spec"]
        c = spec["containers"][0]
        env = pod_env(c, f"{s['metadata']['name']}-0", ns, {cm["metadata"]["name"]: cm})
        args = [expand(a, env) for a in c.get("args", [])]
        conf_file = f"/etc/curvine/{s['metadata']['name']}-0.toml"
        if args[:2] != ["--conf", conf_file] or env.get("CURVINE_CONF_FILE") != conf_file:
            raise Fail(f"{s['metadata']['name']}: pod 0 runs {args} with CURVINE_CONF_FILE={env.get('CURVINE_CONF_FILE')}, not its own {conf_file}")
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        cfg = mounts.get("/etc/curvine")
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        if not cfg or vols.get(cfg["name"], {}).get("configMap", {}).get("name") != cm["metadata"]["name"]:
            raise Fail(f"{s['metadata']['name']}: the ConfigMap is not mounted at /etc/curvine")
        for probe in ("readinessProbe", "livenessProbe"):
            p = c.get(probe)
            if not p or p.get("httpGet", {}).get("path") != "/healthz" or named_port(c, p["httpGet"]["port"]) != web_port:
                raise Fail(f"{s['metadata']['name']}: {probe} is not /healthz on the web port {web_port}")
        claims = {t["metadata"]["name"] for t in s["spec"].get("volumeClaimTemplates", [])}
        for d in dirs:
            on = [m for path, m in mounts.items() if d == path or d.startswith(path.rstrip("/") + "/")]
            if not on or not (on[0]["name"] in vols or on[0]["name"] in claims):
                raise Fail(f"{s['metadata']['name']}: directory {d} is not on a volume")

    mc = files[f"{master['metadata']['name']}-0.toml"]
    check_pod(master, mc["master"]["web_port"], [mc["master"]["meta_dir"], mc["journal"]["journal_dir"]])
    wc = files[f"{worker['metadata']['name']}-0.toml"]
    dirs = [re.sub(r"^\[[^\]]*\]", "", d) for d in wc["worker"]["data_dir"]]
    check_pod(worker, wc["worker"]["web_port"], dirs)
    tests = [p for p in of_kind(docs, "Pod") if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    if len(tests) != 1:
        raise Fail(f"expected one helm test Pod, found {len(tests)}")
    print(f"ok: {n} masters, {worker['spec']['replicas']} workers, domain {domain}, {len(files)} config files agree")


# ------------------------------------------------------------------------------ pods
def cluster_domain(docs):
    """The DNS domain the chart rendered (global.clusterDomain), from master 0's address."""
    peers = tomllib.loads(the_configmap(docs)["data"]["client.toml"])["journal"]["journal_addrs"]
    host = peers[0]["hostname"]
    if ".svc." not in host:
        raise Fail(f"master address {host} is not <pod>.<service>.<namespace>.svc.<domain>")
    return host.split(".svc.", 1)[1]


def cmd_pods(rendered, work):
    docs = load(rendered)
    domain = cluster_domain(docs)
    configmaps = {c["metadata"]["name"]: c for c in of_kind(docs, "ConfigMap")}
    for kind, pod, template, owner in pods_of(docs):
        meta, spec = template.get("metadata", {}), template["spec"]
        ns = owner["metadata"].get("namespace", "default")
        if spec.get("initContainers"):
            raise Fail(f"{pod}: init containers are not emulated")
        if spec.get("hostNetwork"):
            raise Fail(f"{pod}: hostNetwork is not emulated (render without it)")
        c = spec["containers"][0]
        env = pod_env(c, pod, ns, configmaps)
        docker = ["--hostname", pod]
        aliases = []
        if kind == "StatefulSet":
            svc = owner["spec"]["serviceName"]
            aliases.append(f"{pod}.{svc}.{ns}.svc.{domain}")
        for svc in services_for(docs, meta.get("labels", {})):
            name = svc["metadata"]["name"]
            aliases += [name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.{domain}"]
        for a in aliases:
            docker += ["--network-alias", a]
        for k, v in env.items():
            docker += ["-e", f"{k}={v}"]
        if c.get("securityContext", {}).get("privileged"):
            # What privileged gives that curvine-fluid uses (FUSE and mount(2)); Docker
            # inside a container often cannot start fully privileged containers.
            docker += ["--device", "/dev/fuse", "--cap-add", "SYS_ADMIN", "--security-opt", "apparmor=unconfined"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in owner["spec"].get("volumeClaimTemplates", [])} if kind == "StatefulSet" else set()
        for m in c.get("volumeMounts", []):
            name = m["name"]
            if name in volumes:
                vol = volumes[name]
                if "configMap" in vol:
                    src = os.path.join(work, "configmaps", vol["configMap"]["name"])
                    if not os.path.isdir(src):
                        os.makedirs(src)
                        data = configmaps[vol["configMap"]["name"]]["data"]
                        items = vol["configMap"].get("items") or [{"key": k, "path": k} for k in data]
                        for it in items:
                            with open(os.path.join(src, it["path"]), "w", encoding="utf-8") as f:
                                f.write(data[it["key"]])
                elif "emptyDir" in vol:
                    if vol["emptyDir"].get("medium") == "Memory":
                        docker += ["--tmpfs", m["mountPath"]]
                        continue
                    src = os.path.join(work, "pods", pod, "emptydir", name)
                elif "hostPath" in vol:
                    src = os.path.join(work, "node", vol["hostPath"]["path"].lstrip("/"))
                elif "secret" in vol:
                    # A Secret's keys as files: the test puts them in <work>/secrets/<name>.
                    src = os.path.join(work, "secrets", vol["secret"]["secretName"])
                    if not os.path.isdir(src) and not vol["secret"].get("optional"):
                        raise Fail(f"{pod}: Secret {vol['secret']['secretName']} does not exist (no {src})")
                else:
                    raise Fail(f"{pod}: volume {name} ({list(vol)}) is not emulated")
            elif name in claims:
                src = os.path.join(work, "claims", f"{name}-{pod}")
            else:
                raise Fail(f"{pod}: volumeMount {name} has no volume")
            sub = m.get("subPath") or expand(m.get("subPathExpr", ""), env)
            if sub:
                src = os.path.join(src, sub)
            os.makedirs(src, exist_ok=True)
            opts = []
            if m.get("readOnly"):
                opts.append("ro")
            prop = m.get("mountPropagation")
            if prop == "Bidirectional":
                opts.append("rshared")
            elif prop == "HostToContainer":
                opts.append("rslave")
            docker += ["-v", f"{src}:{m['mountPath']}" + (":" + ",".join(opts) if opts else "")]
        args = [expand(a, env) for a in c.get("args", [])]
        command = [expand(a, env) for a in c.get("command", [])]
        if command:
            docker += ["--entrypoint", command[0]]
            args = command[1:] + args
        ready = None
        probe = c.get("readinessProbe", {}).get("httpGet")
        if probe:
            ready = {"port": named_port(c, probe["port"]), "path": probe["path"]}
        print(json.dumps({
            "pod": pod,
            "kind": kind,
            "component": meta.get("labels", {}).get("app.kubernetes.io/component", ""),
            "aliases": aliases,
            "docker": docker,
            "image": c["image"],
            "args": args,
            "ready": ready,
        }))


def main(argv):
    if len(argv) < 2 or argv[1] not in ("configs", "check", "pods"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[1] == "configs" and len(argv) == 4:
            cmd_configs(argv[2], argv[3])
        elif argv[1] == "check" and len(argv) == 3:
            cmd_check(argv[2])
        elif argv[1] == "pods" and len(argv) == 4:
            cmd_pods(argv[2], argv[3])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except KeyError as e:
        print(f"chart_tool {argv[1]}: the rendered manifests lack the key {e}", file=sys.stderr)
        return 1
    except (Fail, tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        print(f"chart_tool {argv[1]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
