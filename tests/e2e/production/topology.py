"""docker-compose.yml's production topology, run as processes where Docker is not.

`docker-compose config` resolves the compose file with the README's `.env`; each
service's command then runs with that service's environment, in the order its
`depends_on` conditions ask (migrate must exit 0 first, web must be healthy
before the proxy), from a copy of the image's build context (the repository
less .dockerignore), and each health check runs as the compose file writes it.

What differs from the containers, and only this: every service listens on
127.0.0.1 with a port of its own; a container's /tmp is a folder of the test's;
PostgreSQL and Redis are local servers (a fresh database, a private
redis-server); Talon.One is the sandbox over plain http; the interpreter is this
one (the image's pip install of requirements.txt).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml
from django.conf import settings

from talon_sandbox.client import SandboxClient
from tests.conftest import API_KEY, CATALOGUE
from tests.e2e.conftest import ROOT, Process, free_port, wait_for

PUBLIC_HOST = "segment-destination.example.com"
# The README's .env, with test values.
README_ENV = {
    "DJANGO_SECRET_KEY": "topology-test-secret-key-" + "x" * 40,
    "FIELD_ENCRYPTION_KEYS": "dG9wb2xvZ3ktdGVzdC1rZXktMDEyMzQ1Njc4OWFiY2Q=",
    "DJANGO_ALLOWED_HOSTS": PUBLIC_HOST,
    "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://{PUBLIC_HOST}",
    "POSTGRES_PASSWORD": "not-used-by-the-processes",
    "METRICS_TOKEN": "topology-metrics-token",
}
# Ports the compose file's commands and probes use inside the containers.
CONTAINER_PORTS = {"web": 8000, "proxy": 8080}
CONTAINER_TMP = "/tmp/"  # noqa: S108 (inside a container, its own)


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise AssertionError(f"{binary} is not installed: run `make system-packages` (as root)")
    return path


def compose_config(env_file: Path) -> dict[str, Any]:
    """The compose file as Docker Compose resolves it (interpolation, anchors)."""
    result = subprocess.run(
        [require("docker-compose"), "--project-directory", str(ROOT), "--env-file",
         str(env_file), "-f", str(ROOT / "docker-compose.yml"), "config"],
        env={"PATH": os.environ["PATH"]},  # nothing of this process's environment leaks in
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule for the patterns .dockerignore uses: a match on the path,
    `**/` for any depth; a directory that matches is left out whole."""
    for pattern in patterns:
        if fnmatch.fnmatchcase(relative, pattern):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatchcase(
            relative.rsplit("/", 1)[-1], pattern[3:]
        ):
            return True
    return False


def copy_build_context(destination: Path) -> None:
    patterns = dockerignore_patterns()
    for directory, subdirectories, files in os.walk(ROOT):
        relative_dir = Path(directory).relative_to(ROOT).as_posix()
        prefix = "" if relative_dir == "." else relative_dir + "/"
        subdirectories[:] = [d for d in subdirectories if not ignored(prefix + d, patterns)]
        for name in files:
            if not ignored(prefix + name, patterns):
                target = destination / (prefix + name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(directory) / name, target)


def render_nginx_template(environment: dict[str, str]) -> str:
    """What the nginx image's envsubst does: ${NAME} of the variables it was given."""
    text = (ROOT / "deploy" / "nginx.conf.template").read_text()
    for name, value in environment.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text, text
    return text


class Database:
    """A fresh database on the test run's server (PostgreSQL in CI), or a new SQLite file."""

    def __init__(self, tmp: Path):
        self.db = settings.DATABASES["default"]
        self.postgres = self.db["ENGINE"] == "django.db.backends.postgresql"
        self.name = f"topology_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        if self.postgres:
            with self._admin() as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            auth = self.db["USER"] + (f":{self.db['PASSWORD']}" if self.db["PASSWORD"] else "")
            host = f"{self.db['HOST'] or '127.0.0.1'}:{self.db['PORT'] or 5432}"
            self.url = f"postgres://{auth}@{host}/{self.name}"
        else:
            self.url = f"sqlite:///{tmp / 'topology.sqlite3'}"

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(
            dbname=self.db["NAME"], user=self.db["USER"], password=self.db["PASSWORD"] or None,
            host=self.db["HOST"] or "127.0.0.1", port=self.db["PORT"] or 5432, autocommit=True,
        )  # fmt: skip

    def drop(self) -> None:
        if self.postgres:
            with self._admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def seconds(duration: str) -> float:
    """A compose duration as this file writes them: `30s`, `2m`."""
    value, unit = float(duration[:-1]), duration[-1]
    return value * {"s": 1, "m": 60}[unit]


class ServiceProcess(Process):
    """Runs in the copy of the build context, as in the container's /app."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str], cwd: Path):
        super().__init__(name, args, log_dir, env)
        self.cwd = cwd

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        return self

    def wait(self, timeout: float) -> int:
        assert self.popen is not None, f"{self.name} never started"
        return self.popen.wait(timeout=timeout)


@dataclass
class Service:
    name: str
    spec: dict[str, Any]
    process: ServiceProcess | None = None
    port: int | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Topology:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.app_dir = tmp / "app"
        self.processes: list[Process] = []
        env_file = tmp / "readme.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in README_ENV.items()))
        self.config = compose_config(env_file)
        specs = self.config["services"]
        self.services = {name: Service(name, spec) for name, spec in specs.items()}
        self.database = Database(tmp)
        self.redis_url = ""
        self.sandbox: SandboxClient | None = None

    # -- bringing it up ----------------------------------------------------------
    def up(self) -> None:
        copy_build_context(self.app_dir)
        # The Dockerfile's build step.
        self.run_once(
            "collectstatic",
            [sys.executable, "manage.py", "collectstatic", "--noinput"],
            {**self.base_env(), "DJANGO_DEBUG": "true"},
        )
        for name in self.start_order():
            self.wait_for_dependencies(self.services[name])
            self.start(self.services[name])

    def start_order(self) -> list[str]:
        order: list[str] = []

        def visit(name: str) -> None:
            if name not in order:
                for dependency in self.services[name].spec.get("depends_on", {}):
                    visit(dependency)
                order.append(name)

        for name in self.services:
            visit(name)
        return order

    def wait_for_dependencies(self, service: Service) -> None:
        for name, rule in service.spec.get("depends_on", {}).items():
            dependency = self.services[name]
            condition = rule["condition"]
            if condition == "service_completed_successfully":
                assert dependency.process is not None, f"{name} never started"
                code = dependency.process.wait(timeout=120)
                assert code == 0, f"{name} exited {code}:\n{dependency.process.output()}"
            elif condition == "service_healthy":
                self.wait_healthy(dependency)
            else:
                raise AssertionError(f"{service.name}: unexpected condition {condition}")

    def start(self, service: Service) -> None:
        if service.name == "postgres":
            return  # the fresh database made in __init__
        if service.name == "redis":
            self.start_redis(service)
        elif service.name == "proxy":
            self.start_proxy(service)
        else:
            assert "build" in service.spec, f"{service.name}: not built from this repository"
            self.start_app(service)

    def start_redis(self, service: Service) -> None:
        service.port = free_port()
        self.redis_url = f"redis://127.0.0.1:{service.port}/0"
        command = [require(service.spec["command"][0]), *service.spec["command"][1:]]
        command += ["--port", str(service.port), "--bind", "127.0.0.1", "--dir", str(self.tmp)]
        self.launch(service, command, {"PATH": os.environ["PATH"]})

    def start_proxy(self, service: Service) -> None:
        service.port = free_port()
        env = dict(service.spec["environment"])
        env["LISTEN_PORT"] = f"127.0.0.1:{service.port}"
        env["UPSTREAM"] = f"127.0.0.1:{self.services['web'].port}"
        nginx_dir = self.tmp / "nginx"
        nginx_dir.mkdir()
        (nginx_dir / "default.conf").write_text(render_nginx_template(env))
        # The nginx image's main file, with paths of our own: its server block
        # is deploy/nginx.conf.template as rendered above.
        user = "" if os.getuid() else "user root;\n"
        (nginx_dir / "nginx.conf").write_text(
            f"{user}worker_processes 1;\ndaemon off;\npid {nginx_dir}/nginx.pid;\n"
            f"error_log {nginx_dir}/error.log warn;\nevents {{}}\n"
            f"http {{\n  access_log {nginx_dir}/access.log;\n"
            + "".join(
                f"  {kind}_temp_path {nginx_dir}/{kind}-temp;\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            + f"  include {nginx_dir}/default.conf;\n}}\n"
        )
        command = [require("nginx"), "-p", str(nginx_dir), "-e", str(nginx_dir / "error.log"),
                   "-c", str(nginx_dir / "nginx.conf")]  # fmt: skip
        self.launch(service, command, {"PATH": os.environ["PATH"]})

    def start_app(self, service: Service) -> None:
        env = self.base_env()
        for name, value in service.spec["environment"].items():
            if value.startswith(CONTAINER_TMP):
                value = str(self.tmp / service.name / value.removeprefix(CONTAINER_TMP))
            env[name] = value
        env.update(
            DATABASE_URL=self.database.url,
            REDIS_URL=self.redis_url,
            TALON_HTTP_ALLOWED_HOSTS="127.0.0.1",
        )
        if service.name in CONTAINER_PORTS:
            service.port = free_port()
            env["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{service.port}"
        service.env = env
        self.launch(service, list(service.spec["command"]), env)

    def base_env(self) -> dict[str, str]:
        """The image's environment: its PATH (the installed requirements first) and ENV lines."""
        return {
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HOME": str(self.tmp),
            "HOSTNAME": socket.gethostname(),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }

    def launch(self, service: Service, command: list[str], env: dict[str, str]) -> None:
        process = ServiceProcess(service.name, command, self.tmp, env, self.app_dir).start()
        self.processes.append(process)
        service.process = process

    def run_once(self, name: str, command: list[str], env: dict[str, str]) -> None:
        result = subprocess.run(
            command, cwd=self.app_dir, env=env, capture_output=True, text=True, check=False,
            timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"

    # -- health checks, as the compose file writes them --------------------------
    def probe_command(self, service: Service) -> list[str]:
        test = service.spec["healthcheck"]["test"]
        kind, *rest = test
        if kind == "CMD-SHELL":
            # Compose hands `$$` to the container as `$`.
            rest = ["sh", "-c", rest[0].replace("$$", "$")]
        else:
            assert kind == "CMD", test
        if service.name == "redis":
            return [*rest, "-p", str(service.port)]
        container_port = CONTAINER_PORTS.get(service.name)
        if container_port is None:
            return rest
        here = f"127.0.0.1:{service.port}"
        return [part.replace(f"127.0.0.1:{container_port}", here) for part in rest]

    def probe(self, service: Service) -> bool:
        env = service.env or {**self.base_env()}
        result = subprocess.run(
            self.probe_command(service), cwd=self.app_dir, env=env, capture_output=True,
            timeout=30, check=False,
        )  # fmt: skip
        return result.returncode == 0

    def wait_healthy(self, service: Service) -> None:
        if service.name == "postgres":
            return
        check = service.spec.get("healthcheck")
        assert check is not None, f"{service.name} has no health check to wait for"
        # Compose gives up after the start period and `retries` failed probes
        # `interval` apart; probing more often only finds health sooner.
        grace = seconds(check.get("start_period", "0s"))
        grace += seconds(check.get("interval", "30s")) * check.get("retries", 3)
        try:
            wait_for(lambda: self.probe(service), timeout=grace, interval=0.5)
        except AssertionError:
            output = service.process.output() if service.process else ""
            raise AssertionError(f"{service.name} never became healthy:\n{output}") from None

    # -- what the tests use ------------------------------------------------------
    def manage(self, *args: str) -> str:
        """`docker compose exec web python manage.py ...`"""
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=self.app_dir, env=self.services["web"].env,
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def start_sandbox(self) -> SandboxClient:
        port = free_port()
        args = [sys.executable, "manage.py", "run_talon_sandbox", "--port", str(port),
                "--api-key", API_KEY]  # fmt: skip
        for name, type_ in CATALOGUE.items():
            args += ["--attribute", f"{name}:{type_}"]
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.sandbox.command_settings"}
        self.processes.append(Process("sandbox", args, self.tmp, env).start())
        self.sandbox = SandboxClient(f"http://127.0.0.1:{port}")
        self.sandbox.wait_ready(timeout=30)
        return self.sandbox

    def down(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.database.drop()

    def logs(self) -> str:
        return "".join(f"----- {p.name} -----\n{p.output()}\n" for p in self.processes)
