"""The container image, run for real (issue 10): `madoguchi db upgrade` and `madoguchi org import` as one-shot
containers, then `madoguchi serve` in a container on SQLite (a file in a bind-mounted volume) and on the test
PostgreSQL server; it gets healthy (its own HEALTHCHECK and GET /healthz), answers a signed Slack slash command
by opening the form, stores the submitted request and DMs the requester through the stub Slack Web API on
loopback, and runs as a user that is not root. The final image holds no build CA, compiler, pip or .env. Two
containers on one PostgreSQL database (compose.yaml's two replicas) send each message of a broadcast once.

The image is MADOGUCHI_IMAGE (`scripts/docker-ci build` makes one and prints it; .ci/run builds it on a Debian base
made by debootstrap, since no registry is reachable). Containers use `--network host`: the stub Slack and the
PostgreSQL server listen on 127.0.0.1, as the tests' fixtures do. Without docker or MADOGUCHI_IMAGE the tests skip
with the reason, unless MADOGUCHI_REQUIRE_DOCKER=1 (CI), where that is a failure."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from config.policy import load_policy
from config.settings import DEFAULT_WORKFLOWS
from models.db import Database
from models.messaging import outbox
from tests.conftest import postgres_url, scratch_database
from tests.e2e.test_delivery_crash import seed
from tests.e2e.test_slack_edge import EXPENSE, SECRET, Slack
from tests.stubs.slack_api import SlackApiStub
from workflow import broadcasts as bc
from workflow.audiences import Audience

IMAGE = os.environ.get("MADOGUCHI_IMAGE", "")
REQUIRE = os.environ.get("MADOGUCHI_REQUIRE_DOCKER") == "1"
DEADLINE = 90.0  # seconds for a container to get healthy or a DM to arrive: a bound, never a measured figure
DEMO_ORG = "/opt/venv/lib/python3.11/site-packages/config/defaults/demo_org.csv"  # shipped inside the image
USERS = {"U-yuki": "takahashi.yuki@example.jp", "U-kenji": "sato.kenji@example.jp"}  # from the demo org
BIN_DIRS = {"bin", "usr/bin", "usr/local/bin", "opt/venv/bin"}
UID = "10001"  # the image's user (Dockerfile)
RECIPIENTS = 40  # plus the HR author, who is in "everyone" too


def _docker_missing() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI (scripts/docker-ci start installs docker.io and starts a daemon)"
    try:
        done = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                              text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "the docker daemon does not answer"
    if done.returncode != 0:
        return f"no docker daemon ({done.stderr.strip()[:200]}); eval \"$(scripts/docker-ci start)\" starts one"
    if not IMAGE:
        return "MADOGUCHI_IMAGE is not set (scripts/docker-ci build builds the image and prints the line)"
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        return f"MADOGUCHI_IMAGE={IMAGE} is not an image of this daemon"
    return None


@pytest.fixture(scope="module")
def image() -> str:
    missing = _docker_missing()
    if missing:
        if REQUIRE:
            pytest.fail(f"MADOGUCHI_REQUIRE_DOCKER=1 but {missing}")
        pytest.skip(f"container image test: {missing}")
    return IMAGE


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


async def adocker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """docker off the event loop: the stub Slack on this loop must keep answering the container meanwhile."""
    return await asyncio.to_thread(docker, *args, check=check)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path, image: str) -> Iterator[tuple[str, list[str], str]]:
    """(DATABASE_URL as the container sees it, "" for the image's default; its docker run options; the URL as this
    test sees it)."""
    if request.param == "sqlite":
        data = tmp_path / "data"
        data.mkdir()
        data.chmod(0o777)  # the container's user (uid 10001) writes the SQLite file here
        # the image's own DATABASE_URL (a SQLite file in /var/lib/madoguchi/data), on a directory of this test
        yield "", ["-v", f"{data}:/var/lib/madoguchi/data"], f"sqlite:///{data}/madoguchi.db"
        return
    with scratch_database(postgres_url(), "madoguchi_img") as url:
        yield url, [], url  # --network host: the container reaches the server on 127.0.0.1 as the test does


class Container:
    """One `docker run -d` of the image, removed at the end whatever happened."""

    def __init__(self, image: str, env: dict[str, str], options: list[str]) -> None:
        self.name = f"madoguchi-test-{uuid.uuid4().hex[:10]}"
        self.image, self.env, self.options = image, env, options

    def run_args(self, *extra: str) -> list[str]:
        env = [a for k, v in self.env.items() for a in ("-e", f"{k}={v}")]
        return ["--network", "host", *env, *self.options, *extra, self.image]

    async def once(self, *command: str) -> str:
        """A one-shot container (`docker run --rm IMAGE command...`); its output, or the failure."""
        return (await adocker("run", "--rm", *self.run_args(), *command)).stdout

    async def start(self, *command: str) -> None:
        await adocker("run", "-d", "--name", self.name, *self.run_args("--health-interval", "1s"), *command)

    async def health(self) -> str:
        done = await adocker("inspect", "--format", "{{json .State}}", self.name)
        state = json.loads(done.stdout)
        assert state["Running"], f"the container stopped ({state.get('ExitCode')}):\n{await self.logs()}"
        return str(state.get("Health", {}).get("Status", "none"))

    async def logs(self) -> str:
        done = await adocker("logs", "--tail", "60", self.name, check=False)
        return done.stdout + done.stderr

    async def remove(self) -> None:
        await adocker("rm", "-f", "-v", self.name, check=False)


async def until_true(what: str, probe: Any, container: Container) -> Any:
    deadline = time.monotonic() + DEADLINE
    while not (found := await probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the container's log:\n{await container.logs()}")
        await asyncio.sleep(0.2)
    return found


@pytest.fixture
async def served(image: str, database: tuple[str, list[str], str]) -> AsyncIterator[tuple[Slack, Container, str]]:
    """The image migrated, seeded with the demo company and serving, against the stub Slack."""
    url, options, local_url = database
    api = SlackApiStub(users=dict(USERS))
    await api.start()
    port = free_port()
    env = {"SLACK_BOT_TOKEN": "xoxb-image", "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": api.api_url,
           "MADOGUCHI_HOST": "127.0.0.1", "MADOGUCHI_PORT": str(port), "MADOGUCHI_MIGRATE": "1"}
    container = Container(image, {**({"DATABASE_URL": url} if url else {}), **env}, options)
    try:
        assert "schema at" in await container.once("db", "upgrade")
        assert "imported" in await container.once("org", "import", DEMO_ORG)
        await container.start()  # the image's default command: serve (and, with MADOGUCHI_MIGRATE=1, upgrade first)
        async with aiohttp.ClientSession() as session:
            yield Slack(f"http://127.0.0.1:{port}", api, session), container, local_url
    finally:
        await container.remove()
        await api.close()


async def test_the_image_serves_slack_on_its_database_as_a_user_that_is_not_root(
        served: tuple[Slack, Container, str]) -> None:
    slack, container, local_url = served

    async def healthz() -> bool:
        try:
            async with slack.session.get(slack.url.replace("/slack/events", "/healthz")) as response:
                return response.status == 200
        except aiohttp.ClientConnectionError:
            await container.health()  # fails at once, with the log, if the container died
            return False

    await until_true("GET /healthz", healthz, container)

    async def healthy() -> bool:
        return await container.health() == "healthy"

    await until_true("the image's HEALTHCHECK to say healthy", healthy, container)

    view = await slack.open_form("U-yuki", "経費")  # a signed slash command; the modal comes back via views.open
    assert view["title"]["text"] == "経費精算"
    assert await slack.post(slack.submission_body("U-yuki", view, EXPENSE)) == (200, "")

    async def dm_to_yuki() -> dict[str, Any] | None:
        return next((m for m in slack.api.called("chat.postMessage") if m["channel"] == "U-yuki"), None)

    dm = await until_true("the requester's DM from the delivery loop", dm_to_yuki, container)
    assert "EXP-" in dm["text"]
    engine = sa.create_engine(local_url)
    try:
        with engine.connect() as conn:
            assert list(conn.execute(sa.text("SELECT status FROM requests")).scalars()) == ["pending"]
    finally:
        engine.dispose()

    uid = (await adocker("exec", container.name, "id", "-u")).stdout.strip()
    assert uid == UID and uid != "0"


def test_the_image_runs_as_its_own_user_and_probes_healthz(image: str) -> None:
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    assert config["User"].split(":")[0] == UID
    assert config["Healthcheck"]["Test"][:2] == ["CMD", "python"]
    assert config["Entrypoint"] == ["madoguchi-entrypoint"] and config["Cmd"] == ["serve"]
    assert not [e for e in config["Env"] if e.startswith(("PIP_", "SLACK_", "MICROSOFT_"))]
    assert "DATABASE_URL=sqlite:////var/lib/madoguchi/data/madoguchi.db" in config["Env"]
    probe = docker("run", "--rm", "--network", "host", "--entrypoint", "cat", image,
                   "/usr/local/lib/madoguchi-healthcheck.py").stdout
    assert 'PATH = "/healthz"' in probe
    volume = f"madoguchi-test-{uuid.uuid4().hex[:10]}"
    try:  # a fresh named volume on the data directory is the user's: the default SQLite file can be made there
        migrated = docker("run", "--rm", "--network", "host", "-v", f"{volume}:/var/lib/madoguchi/data", image,
                          "db", "upgrade").stdout
        assert "schema at" in migrated
    finally:
        docker("volume", "rm", "-f", volume, check=False)


def test_a_broken_configuration_stops_the_container_with_the_reason(image: str) -> None:
    done = docker("run", "--rm", "--network", "host", "-e", "MADOGUCHI_WORKFLOWS=/etc/madoguchi/missing.yaml", image,
                  check=False)
    assert done.returncode == 1
    assert "/etc/madoguchi/missing.yaml" in done.stderr and "problem" in done.stderr


def test_the_final_image_holds_no_build_ca_compiler_pip_or_env_file(image: str, tmp_path: Path) -> None:
    """The image's whole file system (docker export) has nothing of the builder stage: the CA bundle pip used, the
    wheels, the sources, a compiler; nor pip itself, nor an .env."""
    name = f"madoguchi-export-{uuid.uuid4().hex[:10]}"
    docker("create", "--name", name, image)
    try:
        tar = tmp_path / "image.tar"
        with tar.open("wb") as out:
            subprocess.run(["docker", "export", name], stdout=out, check=True, timeout=300)
        with tarfile.open(tar) as fs:
            names = {n.removeprefix("./").rstrip("/") for n in fs.getnames()}
    finally:
        docker("rm", "-f", name, check=False)
    assert "opt/venv/bin/madoguchi" in names  # the listing is the image's
    assert not [n for n in names if "extra-ca" in n or n.endswith("pip-ca.pem")]
    assert not [n for n in names if n.startswith(("wheels", "src/", "tmp/requirements"))]
    programs = {n.rsplit("/", 1)[-1] for n in names if n.rsplit("/", 1)[0] in BIN_DIRS}
    assert "python3" in programs and not programs & {"gcc", "cc", "g++", "clang", "make", "pip", "pip3"}
    assert not [n for n in names if n.rsplit("/", 1)[-1] == ".env"]


@pytest.mark.postgres
async def test_two_replicas_on_one_database_send_each_broadcast_message_once(image: str) -> None:
    """compose.yaml's two replicas, as two containers of the image on one PostgreSQL database: a broadcast already
    due when they start is fired by the first tick of one of them (each runs its tick at start) and delivered by
    their two delivery loops; every recipient gets exactly one DM."""
    with scratch_database(postgres_url(), "madoguchi_img") as url:
        api = SlackApiStub()
        await api.start()
        replicas = [Container(image, {"DATABASE_URL": url, "SLACK_BOT_TOKEN": "xoxb-image", "SLACK_SIGNING_SECRET": SECRET,
                                      "SLACK_API_URL": api.api_url, "MADOGUCHI_HOST": "127.0.0.1",
                                      "MADOGUCHI_PORT": str(free_port())}, []) for _ in range(2)]
        db = Database(url)
        try:
            assert "schema at" in await replicas[0].once("db", "upgrade")  # compose's one-shot migrate service
            author = seed(db, RECIPIENTS)
            due = datetime.now(UTC) - timedelta(seconds=1)
            # stored as if made a minute ago for `due`: not fired by create(), due for the replicas' first tick
            made = bc.create(db, load_policy(DEFAULT_WORKFLOWS), bc.Draft(author, Audience("everyone"), "健康診断の予約を",
                             "Book your health check", False, send_at=due), due - timedelta(minutes=1))
            assert made.ok and made.count == 0, made.message
            await asyncio.gather(*(replica.start() for replica in replicas))

            async def all_sent() -> bool:
                for replica in replicas:
                    await replica.health()  # fails at once, with the log, if a replica died
                with db.unit_of_work(write=False) as conn:
                    states = conn.execute(sa.select(outbox.c.state)).scalars().all()
                return len(states) == RECIPIENTS + 1 and set(states) == {"sent"}

            await until_true("every broadcast message sent", all_sent, replicas[0])
            # what Slack would show: each recipient's DM with the bot holds exactly one message
            counts = Counter({c.members[0]: len(c.messages) for c in api.workspace.conversations.values()
                              if c.kind == "dm"})
            assert len(counts) == RECIPIENTS + 1 and set(counts.values()) == {1}, counts
        finally:
            db.dispose()
            await asyncio.gather(*(replica.remove() for replica in replicas))
            await api.close()
