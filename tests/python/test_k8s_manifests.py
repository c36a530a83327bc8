"""deploy/k8s: every manifest against the Kubernetes OpenAPI schema, offline
(deploy/k8s/validate, node + the kubernetes-models packages pinned in its package-lock.json,
installed by `npm ci` on first use); proof that the validator rejects a misspelled field,
a wrongly typed one and a missing required one; the ConfigMap's gem-server configs
accepted by the real gem-server; and the cross-references between the files (ports,
names, mount paths, grace periods, the autoscaler's metric)."""
import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gemserve_testing import REPO, InferenceClient, Server, build_dir, http_get, inference_pb2

K8S = REPO / "deploy" / "k8s"
VALIDATE = K8S / "validate"


@pytest.fixture(scope="module")
def validator():
    """The validator's command, after `npm ci` when node_modules is missing or older
    than package-lock.json."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed to validate deploy/k8s (Debian: nodejs, npm)")
    stamp = VALIDATE / "node_modules" / ".package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < (VALIDATE / "package-lock.json").stat().st_mtime:
        result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=VALIDATE,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    return [node, str(VALIDATE / "validate.mjs")]


def run_validator(validator, *targets) -> subprocess.CompletedProcess:
    return subprocess.run([*validator, *map(str, targets)], capture_output=True, text=True,
                          timeout=60)


def load(name: str) -> dict:
    with open(K8S / name) as f:
        return yaml.safe_load(f)


def test_every_manifest_is_valid(validator):
    result = run_validator(validator, K8S)
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = re.findall(r"^ok\s+\S+: (\w+)/", result.stdout, re.M)
    assert sorted(kinds) == sorted(["ConfigMap", "Secret", "Deployment", "Service", "Service",
                                    "HorizontalPodAutoscaler", "PodDisruptionBudget",
                                    "ServiceMonitor"]), result.stdout


def broken_deployments():
    """(name, change to a copy of the Deployment, what the validator must say)."""
    def container(d):
        return d["spec"]["template"]["spec"]["containers"][0]

    return [
        ("misspelled top-level field", lambda d: d["spec"].__setitem__("replicaz", 2),
         r'data/spec has unknown field "replicaz"'),
        ("misspelled nested field", lambda d: d["spec"]["template"]["spec"]["securityContext"]
         .__setitem__("runAsNonRot", True), r'securityContext has unknown field "runAsNonRot"'),
        ("misspelled probe field", lambda d: container(d)["readinessProbe"]["grpc"]
         .__setitem__("prot", 50051), r'readinessProbe/grpc has unknown field "prot"'),
        ("containerPort as a string", lambda d: container(d)["ports"][0]
         .__setitem__("containerPort", "50051"), r"containerPort must be integer"),
        ("missing required selector", lambda d: d["spec"].pop("selector"),
         r"data/spec must have required property '?selector'?"),
        ("missing required container name", lambda d: container(d).pop("name"),
         r"containers/0 must have required property '?name'?"),
    ]


@pytest.mark.parametrize("name,change,message", broken_deployments(),
                         ids=[b[0] for b in broken_deployments()])
def test_validator_rejects_a_broken_deployment(validator, tmp_path, name, change, message):
    deployment = load("deployment.yaml")
    change(deployment)
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(deployment))
    result = run_validator(validator, path)
    assert result.returncode == 1, f"{name}: accepted\n{result.stdout}"
    assert re.search(message, result.stdout), f"{name}: wrong complaint\n{result.stdout}"
    # The unchanged copy passes, so the failure is the change's.
    path.write_text(yaml.safe_dump(load("deployment.yaml")))
    assert run_validator(validator, path).returncode == 0


def test_validator_rejects_unlisted_files_and_unknown_kinds(validator, tmp_path):
    copy_dir = tmp_path / "k8s"
    shutil.copytree(K8S, copy_dir, ignore=shutil.ignore_patterns("validate"))
    (copy_dir / "extra.yaml").write_text(yaml.safe_dump(load("pdb.yaml")))
    (copy_dir / "servicemonitor.yaml").write_text(
        (copy_dir / "servicemonitor.yaml").read_text().replace("kind: ServiceMonitor",
                                                               "kind: ServiceMonitr"))
    result = run_validator(validator, copy_dir)
    assert result.returncode == 1
    assert "extra.yaml: not listed in kustomization.yaml" in result.stdout, result.stdout
    assert "unknown apiVersion/kind monitoring.coreos.com/v1/ServiceMonitr" in result.stdout


def configmap_configs() -> dict:
    data = load("configmap.yaml")["data"]
    return {name: yaml.safe_load(text) for name, text in data.items()}


def deployment_container() -> dict:
    return load("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]


def seconds(duration: str) -> float:
    match = re.fullmatch(r"([\d.]+)\s*(ms|s|m)", duration)
    assert match, f"duration {duration!r}"
    return float(match.group(1)) * {"ms": 1e-3, "s": 1, "m": 60}[match.group(2)]


def test_configs_listen_on_all_interfaces_and_differ_only_in_tls():
    configs = configmap_configs()
    assert set(configs) == {"gemserve.yaml", "gemserve-tls.yaml"}
    plain, tls = configs["gemserve.yaml"], copy.deepcopy(configs["gemserve-tls.yaml"])
    for config in configs.values():
        assert config["listen"].startswith("0.0.0.0:") and config["metrics_listen"].startswith("0.0.0.0:")
    assert "tls" not in plain and tls.pop("tls")
    assert tls == plain


def test_termination_grace_exceeds_the_drain():
    spec = load("deployment.yaml")["spec"]["template"]["spec"]
    drain = seconds(configmap_configs()["gemserve.yaml"]["shutdown"]["grace_period"])
    pre_stop = deployment_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # Kubernetes counts preStop into terminationGracePeriodSeconds, then SIGTERM starts the drain.
    assert spec["terminationGracePeriodSeconds"] > float(pre_stop[1]) + drain, \
        (spec["terminationGracePeriodSeconds"], pre_stop, drain)
    for name in configmap_configs():
        assert seconds(configmap_configs()[name]["shutdown"]["grace_period"]) == drain


def test_deployment_wiring():
    spec = load("deployment.yaml")["spec"]["template"]["spec"]
    container = deployment_container()
    config = configmap_configs()["gemserve.yaml"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == int(config["listen"].rsplit(":", 1)[1])
    assert ports["metrics"] == int(config["metrics_listen"].rsplit(":", 1)[1])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["grpc"], probe
        assert container[probe]["grpc"].get("service", "") == ""
    # Non-root, as the image's user.
    uid = re.search(r"--uid (\d+)", (REPO / "Dockerfile").read_text()).group(1)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == int(uid)
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    # The config file comes from the ConfigMap, the token and TLS files from the Secret.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    config_arg = container["args"][container["args"].index("--config") + 1]
    assert volumes["config"]["configMap"]["name"] == load("configmap.yaml")["metadata"]["name"]
    assert Path(config_arg).parent == Path(mounts["config"])
    assert Path(config_arg).name in load("configmap.yaml")["data"]
    secret = load("secret.yaml")
    assert volumes["secret"]["secret"]["secretName"] == secret["metadata"]["name"]
    files = []
    for cfg in configmap_configs().values():
        files += [cfg["auth"]["admin_token_file"]] + list(cfg.get("tls", {}).values())
    for file in files:
        assert Path(file).parent == Path(mounts["secret"]), file
        assert Path(file).name in secret["stringData"], f"{file}: no such key in the Secret"
    assert all("PLACEHOLDER" in value for value in secret["stringData"].values())


def test_services_monitor_autoscaler_and_budget_wiring():
    labels = load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    selector = load("deployment.yaml")["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    service, headless = load("service.yaml"), load("service-headless.yaml")
    container_ports = {p["name"] for p in deployment_container()["ports"]}
    for svc in (service, headless):
        assert svc["spec"]["selector"].items() <= labels.items()
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= container_ports
    assert headless["spec"]["clusterIP"] == "None"
    assert [p["name"] for p in headless["spec"]["ports"]] == ["grpc"]
    monitor = load("servicemonitor.yaml")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert load("pdb.yaml")["spec"]["selector"]["matchLabels"] == selector

    hpa = load("hpa.yaml")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": load("deployment.yaml")["metadata"]["name"]}
    assert "replicas" not in load("deployment.yaml")["spec"], "the HPA owns replicas"
    assert load("pdb.yaml")["spec"]["minAvailable"] < hpa["minReplicas"]
    by_type = {m["type"]: m for m in hpa["metrics"]}
    assert by_type["Resource"]["resource"]["name"] == "cpu"
    pods_metric = by_type["Pods"]["pods"]["metric"]["name"]
    rule = yaml.safe_load((K8S / "prometheus-adapter-rules.yaml").read_text())["rules"]["custom"][0]
    assert set(rule) == {"seriesQuery", "resources", "name", "metricsQuery"}
    assert rule["name"]["as"] == pods_metric
    assert rule["seriesQuery"].startswith("gemserve_inflight_requests{")
    assert "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)" == rule["metricsQuery"]
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}


def make_secret_files(directory: Path) -> None:
    """The Secret's files, real ones: a token and a self-signed certificate (openssl)."""
    directory.mkdir()
    (directory / "admin-token").write_text("test-admin-token\n")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=gemserve", "-keyout", str(directory / "tls.key"),
                    "-out", str(directory / "tls.crt")], check=True, capture_output=True)


@pytest.mark.parametrize("name", ["gemserve.yaml", "gemserve-tls.yaml"])
def test_configmap_config_starts_the_real_server(tmp_path, name):
    """gem-server has no --check-config: it is started with the config (the Secret's paths
    pointed at files made here; ports 0 and the source tree's models, which the image has
    at /opt/gemserve/models/repository) until it serves, then stopped with SIGTERM."""
    secret_dir = tmp_path / "secret"
    make_secret_files(secret_dir)
    text = load("configmap.yaml")["data"][name]
    mount = [m["mountPath"] for m in deployment_container()["volumeMounts"] if m["name"] == "secret"][0]
    assert mount + "/" in text
    config = tmp_path / name
    config.write_text(text.replace(mount + "/", f"{secret_dir}/"))
    server = Server(config, tmp_path / "server.log", start_timeout_s=60, name=name)
    try:
        # The autoscaler's metric (prometheus-adapter-rules.yaml): a gauge, labelled rpc
        # only, exported from the first request on.
        if "tls" not in yaml.safe_load(text):
            client = InferenceClient(server.grpc)
            try:
                client.list_models(inference_pb2().ListModelsRequest(), timeout=10)
            finally:
                client.close()
            inflight = server.metrics_samples("gemserve_inflight_requests")
            assert "# TYPE gemserve_inflight_requests gauge" in http_get(
                f"http://{server.metrics}/metrics")[1]
            assert inflight and all(set(labels) == {"rpc"} for labels, _ in inflight), inflight
        process = server.process
    finally:
        server.stop()
    assert process.returncode == 0, f"exit {process.returncode}:\n{server.log_tail()}"
    assert "shutting down" in server.log_tail()
    # The server did read the token file: an empty one is refused at start.
    (secret_dir / "admin-token").write_text("")
    result = subprocess.run([str(build_dir() / "gem-server"),
                             "--config", str(config), "--listen", "127.0.0.1:0",
                             "--metrics-listen", "127.0.0.1:0",
                             "--model-repository", str(REPO / "models" / "repository")],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "admin_token_file" in result.stdout + result.stderr
