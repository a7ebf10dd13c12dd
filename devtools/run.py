"""``make run``: the whole system on one machine with embedded defaults.

Starts, in order: database migrations, the Temporal dev server (persisted under var/, Web
UI on :8233) unless TEMPORAL_ADDRESS already answers, a loopback webhook receiver for the
demo, the HTTP API (``python -m api``, :8000), the email, voice, enrichment, browser, SEO
and ads demos (emulated providers, when no real ones are configured), and ``worker.py
--all`` (started again if they die). Ctrl-C (or SIGTERM) stops the workers gracefully first,
then the rest.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from core.config import VAR_DIR, load_settings
from core.crypto import local_key_file
from devtools import analysis_demo, email_demo, enrichment_demo, voice_demo
from devtools.devserver import DevServer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_RECEIVER_PORT = 8299
DEMO_SECRET_FILE = VAR_DIR / "demo-webhook.secret"
# Workers that die are started again, unless they could not start for a reason a restart
# does not change (worker.py's exit codes 2, 3 and 4) or died this often in the window.
WORKER_SETUP_ERRORS = frozenset({2, 3, 4})
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0


def demo_secret() -> str:
    """The demo receiver's signing secret, made once so `make demo` can use it too."""
    if not DEMO_SECRET_FILE.exists():
        from emulators.webhook_receiver import new_secret

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        DEMO_SECRET_FILE.write_text(new_secret())
        DEMO_SECRET_FILE.chmod(0o600)
    return DEMO_SECRET_FILE.read_text().strip()


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def main() -> int:
    env = dict(os.environ)
    if env.get("APP_ENV", "development") != "production":
        # The demo receiver listens on loopback, which the SSRF guard refuses by default.
        env.setdefault("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
        local_key_file("payload.key")  # one key for every process of this machine
    email_demo_on = env.get("APP_ENV", "development") != "production" and not any(
        name in env for name in ("GMAIL_API_BASE_URL", "GRAPH_API_BASE_URL", "ANTHROPIC_API_KEY")
    )
    if email_demo_on:
        # No real providers configured: point the workers at the loopback demo emulators.
        env.update(email_demo.demo_environment())
    voice_demo_on = env.get("APP_ENV", "development") != "production" and (
        "VAPI_API_BASE_URL" not in env
    )
    if voice_demo_on:
        env.update(voice_demo.demo_environment())
    enrichment_demo_on = env.get("APP_ENV", "development") != "production" and (
        "APIFY_API_BASE_URL" not in env
    )
    if enrichment_demo_on:
        env.update(enrichment_demo.demo_environment())
    analysis_demo_on = env.get("APP_ENV", "development") != "production" and not any(
        name in env
        for name in ("META_API_BASE_URL", "GOOGLE_ADS_API_BASE_URL", "PAGESPEED_API_KEY")
    )
    if analysis_demo_on:
        env.update(analysis_demo.demo_environment())
    browser_demo_on = env.get("APP_ENV", "development") != "production" and (
        env.get("BROWSER_PROVIDER", "local") == "local"
    )
    settings = load_settings(env)
    python = sys.executable

    subprocess.run([python, "-m", "db.migrate"], env=env, cwd=PROJECT_ROOT, check=True)

    server: DevServer | None = None
    if _answers(settings.temporal_address):
        print(f"using the Temporal server already at {settings.temporal_address}")
    else:
        host, _, port = settings.temporal_address.rpartition(":")
        server = DevServer(
            port=int(port),
            ui_port=int(port) + 1000,
            db_filename=str(VAR_DIR / "temporal.db"),
            log_path=VAR_DIR / "temporal-server.log",
        )
        server.start(timeout=60)
        print(f"Temporal dev server on {server.address}, Web UI {server.ui_url}")

    grace = settings.worker_shutdown_grace_seconds
    services: list[tuple[str, subprocess.Popen[bytes]]] = []
    receiver = subprocess.Popen(
        [
            python,
            "-m",
            "emulators.webhook_receiver",
            "--port",
            str(DEMO_RECEIVER_PORT),
            "--secret",
            demo_secret(),
        ],
        env=env,
        cwd=PROJECT_ROOT,
    )
    services.append(("demo webhook receiver", receiver))
    api = subprocess.Popen([python, "-m", "api"], env=env, cwd=PROJECT_ROOT)
    services.append(("HTTP API", api))
    print(
        f"HTTP API on http://{settings.api_host}:{settings.api_port}, dashboard at /dashboard "
        "(a key: .venv/bin/jobs keys create --user you --role operator)"
    )
    if email_demo_on:
        services.append(
            (
                "email emulators",
                subprocess.Popen([python, "-m", "devtools.email_demo"], env=env, cwd=PROJECT_ROOT),
            )
        )
    if voice_demo_on:
        services.append(
            (
                "voice emulator",
                subprocess.Popen([python, "-m", "devtools.voice_demo"], env=env, cwd=PROJECT_ROOT),
            )
        )
    if enrichment_demo_on:
        services.append(
            (
                "enrichment emulator",
                subprocess.Popen(
                    [python, "-m", "devtools.enrichment_demo"], env=env, cwd=PROJECT_ROOT
                ),
            )
        )
    if browser_demo_on:
        services.append(
            (
                "browser demo site",
                subprocess.Popen(
                    [python, "-m", "devtools.browser_demo"], env=env, cwd=PROJECT_ROOT
                ),
            )
        )
    if analysis_demo_on:
        services.append(
            (
                "SEO and ads emulators",
                subprocess.Popen(
                    [python, "-m", "devtools.analysis_demo"], env=env, cwd=PROJECT_ROOT
                ),
            )
        )

    def start_workers() -> subprocess.Popen[bytes]:
        return subprocess.Popen([python, "worker.py", "--all"], env=env, cwd=PROJECT_ROOT)

    workers = start_workers()
    restarts: list[float] = []
    print("workers starting for every queue with job types; `make demo` enqueues a webhook")
    print(f"press Ctrl-C to stop (running jobs get up to {grace:.0f} s to finish)")

    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    try:
        while not stopping:
            if workers.poll() is not None:
                code = workers.returncode
                restarts = [t for t in restarts if time.monotonic() - t < RESTART_WINDOW_S]
                if code in WORKER_SETUP_ERRORS or len(restarts) >= MAX_RESTARTS:
                    print(f"workers exited with {code}; stopping", file=sys.stderr)
                    exit_code = code or 1
                    break
                # Killed or crashed: start them again, as a process supervisor would. Their
                # running jobs' activities are retried once their heartbeats time out.
                print(f"workers exited with {code}; starting them again", file=sys.stderr)
                restarts.append(time.monotonic())
                workers = start_workers()
            time.sleep(0.5)
    finally:
        # Workers first, so running jobs finish while the server and emulators are there.
        print(f"stopping: workers (running jobs get up to {grace:.0f} s)...", flush=True)
        _stop(workers, grace + 10)
        for name, child in reversed(services):
            print(f"stopping: {name}...", flush=True)
            _stop(child, 10)
        if server is not None:
            print("stopping: Temporal dev server...", flush=True)
            server.stop()
        print(f"stopped; jobs and history are kept in {VAR_DIR} (`make clean` deletes them)")
    return exit_code


def _stop(child: subprocess.Popen[bytes], timeout: float) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


if __name__ == "__main__":
    sys.exit(main())
