"""The deployment artifacts in deploy/: the compose file, the Kubernetes example, the Dockerfile
and the proxy's configuration, checked against the settings registry and against each other.

`docker compose config` validates the compose file where Docker's compose plugin is installed;
everywhere, the files are parsed here and every HEADWATER_* variable they set must be one the
registry knows, and the environment they give a server must configure it as intended (read by
the server's own `Settings.from_env`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from headwater import config
from headwater.server.settings import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes" / "headwater.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
NGINX = DEPLOY / "nginx.conf"
SECRETS = {"POSTGRES_PASSWORD": "pg-secret", "HEADWATER_TOKEN": "rw-token", "MINIO_ROOT_PASSWORD": "minio-secret"}
HEADWATER_SERVICES = {"bucket", "migrate", "server-1", "server-2"}
PORT = 8765


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` forms, as `docker compose` reads them."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        value = env.get(name, "")
        if op == ":?" and not value:
            raise KeyError(f"{name}: {arg}")
        return value or (arg if op == ":-" else "")

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:[-?])([^}]*))?\}", one, text)


def _compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    loaded = yaml.safe_load(_interpolate(COMPOSE.read_text(), SECRETS if env is None else env))
    assert isinstance(loaded, dict)
    return loaded


def _kubernetes() -> dict[str, dict[str, Any]]:
    documents = [d for d in yaml.safe_load_all(KUBERNETES.read_text()) if d]
    by_kind = {d["kind"]: d for d in documents}
    assert len(by_kind) == len(documents), "one object of each kind"
    return by_kind


def _headwater_names(env: dict[str, Any]) -> set[str]:
    return {name for name in env if name.startswith("HEADWATER_")}


# -- compose --------------------------------------------------------------------------------------


def test_compose_services_and_their_order() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "objectstore", "proxy", *HEADWATER_SERVICES}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in ("server-1", "server-2"):
        # migrations first, then servers; the bucket before anything writes to it
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "bucket": {"condition": "service_completed_successfully"},
        }
        assert "command" not in services[name], "servers run the image's CMD (headwater server)"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["proxy"]["depends_on"] == {
        "server-1": {"condition": "service_healthy"},
        "server-2": {"condition": "service_healthy"},
    }
    assert services["proxy"]["volumes"] == ["./nginx.conf:/etc/nginx/conf.d/default.conf:ro"]
    assert {s["image"] for n, s in services.items() if n in HEADWATER_SERVICES} == {"headwater:local"}


def test_compose_sets_only_registry_variables_and_they_configure_the_server() -> None:
    services = _compose()["services"]
    known = set(config.BY_NAME)
    for name, service in services.items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        assert _headwater_names(env) <= known, f"{name} sets variables the registry does not know"
    env = {k: str(v) for k, v in services["server-1"]["environment"].items()}
    assert _headwater_names(env) == {
        "HEADWATER_URI",
        "HEADWATER_BLOB_URI",
        "HEADWATER_TOKEN",
        "HEADWATER_READ_TOKEN",
        "HEADWATER_SERVER_MAX_BODY_MB",
        "HEADWATER_GC_GRACE",
    }
    settings = Settings.from_env(env)
    assert settings.store_uri == "postgresql://headwater:pg-secret@postgres:5432/headwater"
    assert settings.blob_uri == "s3://headwater/blobs"
    assert settings.tokens == {"rw-token": "write"}
    assert settings.gc_grace == 86400.0
    # the S3 client reaches the object store service with its root user
    objectstore = services["objectstore"]["environment"]
    assert env["AWS_ENDPOINT_URL"] == "http://objectstore:9000"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        objectstore["MINIO_ROOT_USER"],
        objectstore["MINIO_ROOT_PASSWORD"],
    )
    assert env["HEADWATER_URI"].split("@")[0].split("//")[1] == "{}:{}".format(
        services["postgres"]["environment"]["POSTGRES_USER"], services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    )


def test_compose_refuses_to_start_without_its_secrets() -> None:
    for missing in SECRETS:
        with pytest.raises(KeyError, match=missing):
            _compose({k: v for k, v in SECRETS.items() if k != missing})


def _docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
    return [docker, "compose"] if probe.returncode == 0 else None


def test_docker_compose_config_accepts_it() -> None:
    compose = _docker_compose()
    if compose is None:
        pytest.skip("docker's compose plugin is not installed here: the file is checked by parsing only")
    env = {"PATH": "/usr/bin:/bin", **SECRETS}
    proc = subprocess.run(
        [*compose, "-f", str(COMPOSE), "config", "--format", "json"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    resolved = json.loads(proc.stdout)
    assert set(resolved["services"]) == set(_compose()["services"])
    assert resolved["services"]["server-2"]["environment"]["HEADWATER_BLOB_URI"] == "s3://headwater/blobs"


def test_proxy_spreads_over_both_servers() -> None:
    text = NGINX.read_text()
    upstream = re.search(r"upstream headwater \{(.*?)\}", text, re.S)
    assert upstream is not None
    assert re.findall(r"server (\S+?):(\d+)", upstream.group(1)) == [("server-1", str(PORT)), ("server-2", str(PORT))]
    assert "proxy_pass http://headwater;" in text
    assert "client_max_body_size 0;" in text  # blobs are bounded by the server itself


# -- Kubernetes ---------------------------------------------------------------------------------


def _env(container: dict[str, Any], secret: dict[str, str]) -> dict[str, str]:
    """The container's environment with each secretKeyRef read from the Secret."""
    env = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "headwater"
            assert ref["key"] in secret, f"{item['name']}: the Secret has no key {ref['key']}"
            env[item["name"]] = secret[ref["key"]]
    return env


def test_kubernetes_example(tmp_path: Path) -> None:
    objects = _kubernetes()
    assert set(objects) == {"Secret", "Job", "Deployment", "Service"}
    secret = objects["Secret"]["stringData"]
    job = objects["Job"]["spec"]["template"]["spec"]
    deployment = objects["Deployment"]["spec"]
    pod = deployment["template"]["spec"]
    (migrate,) = job["containers"]
    (server,) = pod["containers"]
    assert migrate["args"] == ["db", "upgrade"]
    assert server["args"][0] == "server"
    assert migrate["image"] == server["image"], "the Job migrates to the schema the servers run"
    assert deployment["replicas"] >= 2
    for spec in (job, pod):
        assert spec["securityContext"]["runAsNonRoot"] is True
    known = set(config.BY_NAME)
    migrate_env, server_env = _env(migrate, secret), _env(server, secret)
    assert _headwater_names(migrate_env) == {"HEADWATER_URI"}
    assert _headwater_names(server_env) <= known

    # the tokens reach the server as the file the Secret mounts
    (mount,) = [m for m in server["volumeMounts"] if m["name"] == "tokens"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tokens"]
    assert volume["secret"]["secretName"] == "headwater"
    (item,) = volume["secret"]["items"]
    assert server_env["HEADWATER_TOKEN_FILE"] == f"{mount['mountPath']}/{item['path']}"
    token_file = tmp_path / item["path"]
    token_file.write_text(secret[item["key"]])
    settings = Settings.from_env({**server_env, "HEADWATER_TOKEN_FILE": str(token_file)})
    assert sorted(settings.tokens.values()) == ["read", "write"]
    assert settings.store_uri == secret["database-url"] == migrate_env["HEADWATER_URI"]
    assert settings.blob_uri.startswith("s3://")

    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"http": PORT} and server["args"][server["args"].index("--port") + 1] == str(PORT)
    assert server["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert server["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = objects["Service"]["spec"]
    assert service["selector"] == deployment["selector"]["matchLabels"] == deployment["template"]["metadata"]["labels"]
    assert [p["targetPort"] for p in service["ports"]] == ["http"]


# -- the image ----------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile() -> None:
    steps = _instructions()
    froms = [arg for op, arg in steps if op == "FROM"]
    assert froms and all(re.match(r"python:\$\{PYTHON_VERSION\}-slim\b", f) for f in froms)
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    (user,) = [arg for op, arg in final if op == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    assert any("[server,postgres,s3]" in arg for op, arg in final if op == "RUN")
    assert [arg for op, arg in final if op == "EXPOSE"] == [str(PORT)]
    assert json.loads(next(arg for op, arg in final if op == "ENTRYPOINT")) == ["headwater"]
    cmd = json.loads(next(arg for op, arg in final if op == "CMD"))
    assert (
        cmd[0] == "server" and cmd[cmd.index("--port") + 1] == str(PORT) and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    )
    assert not [arg for op, arg in final if op == "ENV" and "HEADWATER_" in arg.replace("HEADWATER_HOME", "")]


def _healthcheck() -> list[str]:
    (check,) = [arg for op, arg in _instructions() if op == "HEALTHCHECK"]
    return list(json.loads(check.split("CMD", 1)[1]))


def test_the_image_healthcheck_probes_healthz(headwater_server: Any) -> None:
    """The HEALTHCHECK command, run as the image runs it, against a real server (and a closed port)."""
    command = _healthcheck()
    assert f"http://127.0.0.1:{PORT}/healthz" in command[-1]
    probe = [sys.executable if command[0] == "python" else command[0], *command[1:]]
    here = [*probe[:-1], probe[-1].replace(f":{PORT}/", f":{headwater_server.port}/")]
    assert subprocess.run(here, capture_output=True, timeout=30).returncode == 0
    with urllib.request.urlopen(f"{headwater_server.url}/healthz", timeout=5) as answer:
        assert json.load(answer)["status"] == "ok"
    from tests.conftest import free_port

    closed = [*probe[:-1], probe[-1].replace(f":{PORT}/", f":{free_port()}/")]
    assert subprocess.run(closed, capture_output=True, timeout=30).returncode != 0
