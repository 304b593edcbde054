"""Footprint: the image size, the idle RSS of `madoguchi serve` and its cold start, beside a bare slack-bolt
aiohttp app (bench/bare_bolt_app.py), with ratios and issue 10's targets (RSS ratio <= 2, start ratio <= 3).

- **Cold start**: from starting the server to its first 200 from GET READY_PATH (polled every 10 ms). Ours is
  `madoguchi serve` on a fresh SQLite file migrated by Alembic beforehand (untimed) with a signed-Slack
  configuration (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL on the tests' stub Web API, in this process),
  so it serves /slack/events, /api/messages (Teams, anonymous), the delivery loop and the tick; the bare app is
  bench/bare_bolt_app.py with the same variables. **CPU until ready**: the server's user + system time then.
- **Idle RSS**: VmRSS of the server's process (/proc/PID/status) once it has been idle for `--idle` seconds.
- Both are measured twice: as processes of this machine (this Python and its site-packages), and as containers
  of the two images (`docker run --network host`; the start then includes docker's own; the process measured is
  the container's PID 1, the server itself). Only the first without docker.
- **Image size**: `docker image inspect` of ours (`--image`, default $MADOGUCHI_IMAGE or madoguchi:dev) and of the
  bare app built here into an image of its own, on the same base (`--base-image`, default $MADOGUCHI_BASE_IMAGE
  or madoguchi-base:bookworm, as scripts/docker-ci makes it), with the same slack-bolt, slack-sdk and aiohttp
  versions as this Python has; `--no-image` (or no docker) skips the images and says so.
Each side runs `--rounds` times, interleaved (ours, bare, ours, ...); the median is printed.

Usage, from the repository root::

    python bench/footprint.py [--rounds 5] [--idle 3] [--quick] [--no-image] [--path /readyz]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``import bench.*`` / ``tests.*`` work
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import slack_bolt
import slack_sdk

from models.db import Database
from models.schema import upgrade
from tests.stubs.slack_api import SlackApiStub

ROOT = Path(__file__).resolve().parents[1]
# What "ready" means for the cold start: /readyz (database reachable, schema at head, scheduler ticking); the bare
# app answers the same path.
READY_PATH = "/readyz"
PACKAGES = ("config", "models", "workflow", "handlers", "bot", "migrations")
TARGET_RSS_RATIO = 2.0
TARGET_START_RATIO = 3.0
START_TIMEOUT = 60.0  # seconds: a process not ready by then is a failure, not a figure
SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
BARE_IMAGE = "madoguchi-bench-bare:latest"


@dataclass
class Side:
    name: str
    starts: list[float] = field(default_factory=list)  # seconds
    rss: list[int] = field(default_factory=list)  # kB
    cpu: list[float] = field(default_factory=list)  # seconds of CPU (user + system) until ready


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (/proc/PID/stat): its CPU until now, which other load on the machine slows
    less than the wall-clock start."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def environment(api_url: str, database_url: str) -> dict[str, str]:
    """The process's environment: this one's, minus anything that would switch on more (Socket Mode, a Teams
    registration, another workflows file), plus the signed-Slack configuration."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "MICROSOFT_", "MADOGUCHI_", "DATABASE_URL"))}
    env.update({"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": api_url,
                "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)})
    return env


class Running:
    """One started server: its (host) PID, how to stop it, and its log so far."""

    def __init__(self, pid: int, stop: Callable[[], None], log: Callable[[], str]) -> None:
        self.pid, self.stop, self.log = pid, stop, log


Launch = Callable[[int], Running]  # port -> the server, started


def on_host(command: list[str], env: dict[str, str], log: Path) -> Launch:
    """The server as a process of this machine, with this Python."""

    def launch(port: int) -> Running:
        out = log.open("wb")
        process = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=log.parent,
                                   stdout=out, stderr=subprocess.STDOUT)

        def stop() -> None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            out.close()

        return Running(process.pid, stop, lambda: log.read_text(errors="replace")[-2000:])

    return launch


def in_container(image: str, env: dict[str, str], options: list[str], command: list[str]) -> Launch:
    """The server as a container (--network host) of the image; its PID is the container's process 1 (the image's
    entrypoint execs the server)."""

    def launch(port: int) -> Running:
        name = f"madoguchi-bench-{port}"
        variables = [a for k, v in {**env, "MADOGUCHI_HOST": "127.0.0.1", "MADOGUCHI_PORT": str(port)}.items()
                     for a in ("-e", f"{k}={v}")]
        extra = [a.replace("{port}", str(port)) for a in command]
        subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", *variables, *options, image,
                        *extra], check=True, capture_output=True)
        pid = int(subprocess.run(["docker", "inspect", "--format", "{{.State.Pid}}", name], check=True,
                                 capture_output=True, text=True).stdout)

        def log() -> str:
            done = subprocess.run(["docker", "logs", "--tail", "40", name], capture_output=True, text=True)
            return done.stdout + done.stderr

        def stop() -> None:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)

        return Running(pid, stop, log)

    return launch


async def ready(session: aiohttp.ClientSession, url: str, server: Running) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if not Path(f"/proc/{server.pid}").exists():
            raise RuntimeError(f"{url}: the server exited:\n{server.log()}")
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: not ready within {START_TIMEOUT:g} s:\n{server.log()}")
        await asyncio.sleep(0.01)


async def one_start(side: Side, launch: Launch, path: str, idle: float) -> None:
    """Start, time to ready, wait idle, read RSS, stop."""
    port = free_port()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        started = time.monotonic()
        server = await asyncio.to_thread(launch, port)
        try:
            await ready(session, f"http://127.0.0.1:{port}{path}", server)
            side.starts.append(time.monotonic() - started)
            side.cpu.append(cpu_seconds(server.pid))
            await asyncio.sleep(idle)
            side.rss.append(rss_kb(server.pid))
        finally:
            await asyncio.to_thread(server.stop)


def migrated_sqlite(directory: Path) -> str:
    """A fresh SQLite file migrated by Alembic (untimed: an operator migrates before starting), in a directory
    the image's user (uid 10001) may write to as well."""
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    database = directory / "madoguchi.db"
    db = Database(f"sqlite:///{database}")
    upgrade(db.engine)
    db.dispose()
    database.chmod(0o666)
    return f"sqlite:///{database}"


async def measure(rounds: int, idle: float, path: str, images: tuple[str, str] | None) -> tuple[Side, Side]:
    """Both sides, `rounds` times, interleaved; as processes of this machine, or (images = ours, bare) as
    containers of the images."""
    api = SlackApiStub()
    await api.start()
    ours, bare = Side("ours"), Side("bare Bolt")
    try:
        with tempfile.TemporaryDirectory(prefix="madoguchi-bench-footprint-") as tmp:
            work = Path(tmp)
            for i in range(rounds):
                data = work / f"data-{i}"
                env = environment(api.api_url, migrated_sqlite(data))
                if images is None:
                    mine = on_host([sys.executable, "-m", "bot.cli", "serve"], env, work / f"ours-{i}.log")
                    theirs = on_host([sys.executable, str(ROOT / "bench" / "bare_bolt_app.py"), "--path", path],
                                     env, work / f"bare-{i}.log")
                else:
                    slack = {k: v for k, v in env.items() if k.startswith("SLACK_")}
                    mine = in_container(images[0], slack, ["-v", f"{data}:/var/lib/madoguchi/data"], [])
                    theirs = in_container(images[1], slack, [], ["python", "/app/bare_bolt_app.py", "--host",
                                                                 "127.0.0.1", "--port", "{port}", "--path", path])
                await one_start(ours, mine, path, idle)
                await one_start(bare, theirs, path, idle)
    finally:
        await api.close()
    return ours, bare


# ------------------------------------------------------------------------------------------ images

BARE_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS builder
COPY extra-ca/ /tmp/extra-ca/
RUN python3 -m venv /opt/venv \\
    && PIP_CERT=/tmp/extra-ca/bundle.pem /opt/venv/bin/pip install --no-cache-dir {requirements} \\
    && /opt/venv/bin/pip uninstall -q -y pip setuptools
FROM ${BASE_IMAGE}
COPY --from=builder /opt/venv /opt/venv
COPY bare_bolt_app.py /app/bare_bolt_app.py
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 bare
USER 10001
CMD ["python", "/app/bare_bolt_app.py", "--host", "0.0.0.0"]
"""


def docker_missing() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI"
    done = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
    return None if done.returncode == 0 else "no docker daemon (scripts/docker-ci start)"


def image_size(image: str) -> int | None:
    done = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", image], capture_output=True,
                          text=True)
    return int(done.stdout) if done.returncode == 0 else None


def build_bare_image(base: str) -> None:
    """The bare app's image: the same base, a venv with the same slack-bolt/slack-sdk/aiohttp as here, the same
    two stages as ours (the host's CA bundle for pip in the builder only)."""
    requirements = " ".join([f"slack-bolt=={slack_bolt.version.__version__}",
                             f"slack-sdk=={slack_sdk.version.__version__}", f"aiohttp=={aiohttp.__version__}"])
    with tempfile.TemporaryDirectory(prefix="madoguchi-bench-bare-image-") as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(BARE_DOCKERFILE.replace("{requirements}", requirements))
        shutil.copy(ROOT / "bench" / "bare_bolt_app.py", context / "bare_bolt_app.py")
        (context / "extra-ca").mkdir()
        bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        (context / "extra-ca" / "bundle.pem").write_bytes(bundle.read_bytes() if bundle.exists() else b"")
        done = subprocess.run(["docker", "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
                               "-t", BARE_IMAGE, str(context)], capture_output=True, text=True,
                              env={**os.environ, "DOCKER_BUILDKIT": "0"})
        if done.returncode != 0:
            raise RuntimeError(f"building the bare image failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def images(image: str, base: str) -> tuple[int, int, int] | str:
    """(ours, bare, base) in bytes, or why not."""
    missing = docker_missing()
    if missing:
        return missing
    ours, base_size = image_size(image), image_size(base)
    if ours is None:
        return f"no image {image} (scripts/docker-ci build; or --image)"
    if base_size is None:
        return f"no base image {base} (--base-image: the BASE_IMAGE {image} was built on)"
    build_bare_image(base)
    bare = image_size(BARE_IMAGE)
    assert bare is not None
    return ours, bare, base_size


# ------------------------------------------------------------------------------------------ printing


def verdict(value: float, limit: float) -> str:
    return "met" if value <= limit else "MISSED"


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def print_images(result: tuple[int, int, int] | str, image: str, base: str) -> None:
    if isinstance(result, str):
        print(f"image size: skipped ({result})")
        return
    ours, bare, base_size = result
    print(f"{'image size':<26} {mb(ours):>12} {mb(bare):>12}   ratio {ours / bare:.2f}   "
          f"(ours {image}, bare {BARE_IMAGE}; both on {base} = {mb(base_size)}; above the base: "
          f"{mb(ours - base_size)} vs {mb(bare - base_size)}, ratio {(ours - base_size) / max(bare - base_size, 1):.2f})")


def print_processes(ours: Side, bare: Side, path: str, where: str) -> None:
    rss_o, rss_b = statistics.median(ours.rss) * 1024, statistics.median(bare.rss) * 1024
    start_o, start_b = statistics.median(ours.starts), statistics.median(bare.starts)
    cpu_o, cpu_b = statistics.median(ours.cpu), statistics.median(bare.cpu)
    rss_ratio, start_ratio = rss_o / rss_b, start_o / start_b
    print(f"{where}:")
    print(f"{'  idle RSS (median)':<26} {mb(rss_o):>12} {mb(rss_b):>12}   ratio {rss_ratio:.2f}   "
          f"target <= {TARGET_RSS_RATIO:g}: {verdict(rss_ratio, TARGET_RSS_RATIO)}")
    print(f"{'  cold start to ' + path:<26} {start_o * 1000:>9.0f} ms {start_b * 1000:>9.0f} ms   ratio "
          f"{start_ratio:.2f}   target <= {TARGET_START_RATIO:g}: {verdict(start_ratio, TARGET_START_RATIO)}")
    print(f"{'  CPU until ready':<26} {cpu_o * 1000:>9.0f} ms {cpu_b * 1000:>9.0f} ms   ratio {cpu_o / cpu_b:.2f}   "
          f"(user + system; less swayed by other load than the start)")
    print(f"  RSS ratio: {rss_ratio:.2f}  start ratio: {start_ratio:.2f}")
    for side in (ours, bare):
        print(f"    {side.name}: starts {' '.join(f'{s * 1000:.0f}' for s in side.starts)} ms; "
              f"CPU {' '.join(f'{c * 1000:.0f}' for c in side.cpu)} ms; "
              f"RSS {' '.join(f'{r / 1024:.1f}' for r in side.rss)} MiB")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="starts per side (default 5; --quick 1)")
    parser.add_argument("--idle", type=float, default=None, help="seconds idle before RSS (default 3; --quick 0.5)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 0.5 s idle")
    parser.add_argument("--path", default=READY_PATH, help=f"the path a start waits for (default {READY_PATH})")
    parser.add_argument("--no-image", action="store_true", help="skip the image sizes (no docker needed)")
    parser.add_argument("--image", default=os.environ.get("MADOGUCHI_IMAGE", "madoguchi:dev"))
    parser.add_argument("--base-image", default=os.environ.get("MADOGUCHI_BASE_IMAGE", "madoguchi-base:bookworm"))
    args = parser.parse_args(argv)
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    args.idle = args.idle if args.idle is not None else (0.5 if args.quick else 3.0)
    if args.rounds < 1 or args.idle < 0:
        parser.error("--rounds must be at least 1 and --idle not negative")
    return args


def byte_compiled() -> str:
    """Byte-compile our packages (and the bare app) before timing, as installing a wheel does: an editable
    checkout run with PYTHONDONTWRITEBYTECODE=1 (as on this machine) would otherwise compile every module of
    ours from source at every start (measured: a quarter of a second), while the bare app's libraries come
    compiled from their install. compileall writes the caches whatever that variable says."""
    import compileall

    ok = all(compileall.compile_dir(str(ROOT / package), quiet=1) for package in PACKAGES)
    ok = compileall.compile_file(str(ROOT / "bench" / "bare_bolt_app.py"), quiet=1) and ok
    return "byte-compiled first (as an install does)" if ok else "byte-compiling FAILED: starts include compiling"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    compiled = byte_compiled()
    print(f"python {platform.python_version()}, cpus {os.cpu_count()}, slack-bolt {slack_bolt.version.__version__}, "
          f"slack-sdk {slack_sdk.version.__version__}, aiohttp {aiohttp.__version__}, {platform.platform()}")
    print(f"settings: {args.rounds} round(s) per side, interleaved; RSS after {args.idle:g} s idle; ready = "
          f"200 from GET {args.path}; ours: `madoguchi serve` on SQLite with SLACK_BOT_TOKEN/SLACK_SIGNING_SECRET "
          f"(stub Web API); bare: bench/bare_bolt_app.py; both {compiled}")
    print()
    print(f"{'':<26} {'ours':>12} {'bare Bolt':>12}")
    sizes = "--no-image" if args.no_image else images(args.image, args.base_image)
    print_images(sizes, args.image, args.base_image)
    print_processes(*asyncio.run(measure(args.rounds, args.idle, args.path, None)), args.path,
                    f"processes of this machine ({sys.executable})")
    if not isinstance(sizes, str):
        print_processes(*asyncio.run(measure(args.rounds, args.idle, args.path, (args.image, BARE_IMAGE))),
                        args.path, "containers of the images (--network host; the start includes docker run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
