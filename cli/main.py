"""``jobs``: the operator CLI.

It talks to the HTTP API when ``JOBS_API_URL`` is set (with ``JOBS_API_KEY``), else directly
to Temporal, Redis and the database of this host's settings (a worker host); every command
says which on stderr unless ``--json``. ``jobs keys ...`` always works on the database.

Exit codes: 0 done, 1 some of it failed, 2 bad usage, 3 not found, 4 not allowed (no key,
a bad key, or a key without the role).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any, Protocol

import httpx

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_DENIED = 0, 1, 2, 3, 4
STATES = ("waiting", "delayed", "active", "completed", "failed")
STAT_COLUMNS = ("waiting", "active", "delayed", "completed", "failed", "paused")


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class Backend(Protocol):
    where: str

    async def stats(self) -> dict[str, dict[str, Any]]: ...
    async def pause(self, queue: str, paused: bool) -> None: ...
    async def get(self, job_id: str) -> dict[str, Any]: ...
    async def list_jobs(
        self, queue: str | None, state: str | None, job_type: str | None, limit: int
    ) -> list[dict[str, Any]]: ...
    async def act(self, action: str, job_id: str) -> None: ...
    async def bulk(
        self, action: str, queue: str, state: str | None, job_type: str | None, dry_run: bool
    ) -> dict[str, Any]: ...
    def tail(self, job_id: str) -> AsyncIterator[dict[str, Any]]: ...
    async def schedules(self) -> list[dict[str, Any]]: ...
    async def schedule(self, action: str, name: str) -> None: ...
    async def close(self) -> None: ...


class ApiBackend:
    """Through the HTTP API (``JOBS_API_URL``, ``JOBS_API_KEY``)."""

    def __init__(self, url: str, key: str) -> None:
        self.where = f"via the HTTP API at {url}"
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            answer = await self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise CliError(f"the HTTP API does not answer: {type(exc).__name__}") from None
        if answer.status_code in (401, 403):
            raise CliError(_detail(answer), EXIT_DENIED)
        if answer.status_code == 404:
            raise CliError(_detail(answer), EXIT_NOT_FOUND)
        if answer.status_code >= 400:
            raise CliError(_detail(answer), EXIT_USAGE if answer.status_code < 500 else 1)
        return answer.json() if answer.content else None

    async def stats(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = await self._call("GET", "/v1/queues/stats")
        return found

    async def pause(self, queue: str, paused: bool) -> None:
        await self._call("POST", f"/v1/queues/{queue}/{'pause' if paused else 'resume'}")

    async def get(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = await self._call("GET", f"/v1/jobs/{job_id}")
        return job

    async def list_jobs(
        self, queue: str | None, state: str | None, job_type: str | None, limit: int
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"queue": queue, "state": state, "type": job_type}.items() if v}
        jobs: list[dict[str, Any]] = []
        cursor = None
        while len(jobs) < limit:
            page = await self._call(
                "GET",
                "/v1/jobs",
                params={
                    **params,
                    "limit": min(100, limit - len(jobs)),
                    **({"cursor": cursor} if cursor else {}),
                },
            )
            jobs.extend(page["jobs"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        return jobs[:limit]

    async def act(self, action: str, job_id: str) -> None:
        if action == "remove":
            await self._call("DELETE", f"/v1/jobs/{job_id}")
        else:
            await self._call("POST", f"/v1/jobs/{job_id}/{action}")

    async def bulk(
        self, action: str, queue: str, state: str | None, job_type: str | None, dry_run: bool
    ) -> dict[str, Any]:
        body = {k: v for k, v in {"state": state, "type": job_type}.items() if v}
        result: dict[str, Any] = await self._call(
            "POST", f"/v1/queues/{queue}/jobs:{action}", json={**body, "dry_run": dry_run}
        )
        return result

    async def tail(self, job_id: str) -> AsyncIterator[dict[str, Any]]:
        async with self._http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as answer:
            if answer.status_code >= 400:
                await answer.aread()
                raise CliError(
                    _detail(answer), EXIT_NOT_FOUND if answer.status_code == 404 else EXIT_DENIED
                )
            data: dict[str, Any] = {}
            async for line in answer.aiter_lines():
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                elif not line and data:
                    yield data
                    data = {}

    async def schedules(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._call("GET", "/v1/schedules")
        return found

    async def schedule(self, action: str, name: str) -> None:
        await self._call("POST", f"/v1/schedules/{name}/{action}")

    async def close(self) -> None:
        await self._http.aclose()


def _detail(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("detail", answer.text))
    except ValueError:
        return answer.text or f"HTTP {answer.status_code}"


class DirectBackend:
    """Straight to Temporal, Redis and the database (this host's settings)."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self.where = f"directly (Temporal at {queue.settings.temporal_address}, Redis, database)"

    async def stats(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = await self._queue.get_all_queue_stats()
        return found

    async def pause(self, queue: str, paused: bool) -> None:
        await (self._queue.pause_queue(queue) if paused else self._queue.resume_queue(queue))

    async def get(self, job_id: str) -> dict[str, Any]:
        info = await self._queue.get_job(job_id)
        return {**asdict(info), "state": info.state.value}

    async def list_jobs(
        self, queue: str | None, state: str | None, job_type: str | None, limit: int
    ) -> list[dict[str, Any]]:
        from api.auth import Caller
        from api.jobs import visibility_query
        from core.catalog import JOB_TYPE_OF_WORKFLOW

        query = visibility_query(Caller("", "operator", ""), queue, state, job_type)
        jobs: list[dict[str, Any]] = []
        async for execution in self._queue.client.list_workflows(query or None):
            if execution.workflow_type not in JOB_TYPE_OF_WORKFLOW:
                continue
            job = await self.get(execution.id)
            if state is None or job["state"] == state:
                jobs.append(job)
            if len(jobs) >= limit:
                break
        return jobs

    async def act(self, action: str, job_id: str) -> None:
        await getattr(self._queue, f"{action}_job")(job_id)

    async def bulk(
        self, action: str, queue: str, state: str | None, job_type: str | None, dry_run: bool
    ) -> dict[str, Any]:
        state = state or ("failed" if action == "retry" else None)
        jobs = await self.list_jobs(queue, state, job_type, 10_000)
        done = 0
        for n, job in enumerate(jobs, start=1):
            if not dry_run:
                try:
                    await self.act(action, job["id"])
                    done += 1
                except Exception as exc:
                    print(f"{job['id']}: {exc}", file=sys.stderr)
            _progress(n, len(jobs))
        return {"action": action, "matched": len(jobs), "done": done, "dry_run": dry_run}

    async def tail(self, job_id: str) -> AsyncIterator[dict[str, Any]]:
        await self._queue.get_job(job_id)
        after = "-"
        while True:
            for offset, fields in await self._queue.get_job_events(job_id, after):
                after = offset
                yield {**fields, "id": offset}
                if fields.get("event") in ("completed", "failed", "removed"):
                    return
            await asyncio.sleep(0.25)

    async def schedules(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._queue.list_schedules()
        return found

    async def schedule(self, action: str, name: str) -> None:
        await getattr(self._queue, f"{action}_schedule")(name)

    async def close(self) -> None:
        await self._queue.close()


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty() and total:
        width = 30
        filled = width * done // total
        print(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
            end="",
            file=sys.stderr,
            flush=True,
        )
        if done == total:
            print(file=sys.stderr)


async def _backend() -> Backend:
    url = os.environ.get("JOBS_API_URL")
    if url:
        key = os.environ.get("JOBS_API_KEY")
        if not key:
            raise CliError("JOBS_API_KEY: required with JOBS_API_URL", EXIT_USAGE)
        return ApiBackend(url, key)
    from client.queue import JobQueue

    return DirectBackend(await JobQueue.connect())


def _jsonable(value: Any) -> str:
    # Times as the HTTP API writes them, so both modes print the same JSON.
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _print(value: Any, as_json: bool) -> None:
    if as_json or not isinstance(value, str):
        print(json.dumps(value, default=_jsonable, indent=2))
    else:
        print(value)


def _table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    cells = [list(map(str, header))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def _keys(opts: argparse.Namespace) -> int:
    from core.config import get_settings
    from db.api_keys import ApiKeyStore
    from db.schema import ensure_schema
    from db.session import create_engine, create_sessionmaker

    settings = get_settings()
    engine = create_engine(settings.database_url)
    try:
        await ensure_schema(engine, settings.database_url, migrate=settings.db_migrate_on_start)
        keys = ApiKeyStore(create_sessionmaker(engine))
        if opts.keys_command == "create":
            try:
                info, key = await keys.create(opts.user, opts.role, name=opts.name or "")
            except ValueError as exc:
                raise CliError(str(exc), EXIT_USAGE) from None
            if opts.json:
                _print({**info.model_dump(mode="json"), "key": key}, True)
            else:
                print(key)
                print(
                    f"key {info.id} for {info.user_id} ({info.role}); shown once, keep it",
                    file=sys.stderr,
                )
        elif opts.keys_command == "list":
            found = await keys.list(user_id=opts.user)
            if opts.json:
                _print([k.model_dump(mode="json") for k in found], True)
            else:
                print(
                    _table(
                        [
                            (
                                k.id,
                                k.user_id,
                                k.role,
                                k.name,
                                k.created_at.isoformat(timespec="seconds"),
                                "revoked" if k.revoked_at else "live",
                            )
                            for k in found
                        ],
                        ("id", "user", "role", "name", "created", "status"),
                    )
                )
        else:
            if not await keys.revoke(opts.key_id):
                raise CliError(f"no live key {opts.key_id!r}", EXIT_NOT_FOUND)
            _print({"revoked": opts.key_id} if opts.json else f"revoked {opts.key_id}", opts.json)
    finally:
        await engine.dispose()
    return EXIT_OK


async def _run(opts: argparse.Namespace) -> int:
    if opts.command == "keys":
        return await _keys(opts)
    backend = await _backend()
    try:
        if not opts.json:
            print(f"jobs: {backend.where}", file=sys.stderr)
        return await _command(backend, opts)
    finally:
        await backend.close()


async def _command(backend: Backend, opts: argparse.Namespace) -> int:
    if opts.command == "stats":
        stats = await backend.stats()
        if opts.json:
            _print(stats, True)
        else:
            print(
                _table(
                    [(q, *(s.get(c, "") for c in STAT_COLUMNS)) for q, s in stats.items()],
                    ("queue", *STAT_COLUMNS),
                )
            )
        return EXIT_OK
    if opts.command in ("pause", "resume"):
        await backend.pause(opts.queue, opts.command == "pause")
        _print(
            {"queue": opts.queue, "paused": opts.command == "pause"}
            if opts.json
            else f"{opts.queue} {opts.command}d",
            opts.json,
        )
        return EXIT_OK
    if opts.command == "get":
        _print(await backend.get(opts.job_id), True)
        return EXIT_OK
    if opts.command == "list":
        jobs = await backend.list_jobs(opts.queue, opts.state, opts.type, opts.limit)
        if opts.json:
            _print(jobs, True)
        else:
            print(
                _table(
                    [
                        (
                            j["id"],
                            j["queue"],
                            j["type"],
                            j["state"],
                            j.get("attempts", j.get("attempts_made", "")),
                            (j.get("failure_reason") or "")[:60],
                        )
                        for j in jobs
                    ],
                    ("id", "queue", "type", "state", "attempts", "reason"),
                )
            )
        return EXIT_OK
    if opts.command == "schedules":
        if opts.schedules_command == "list":
            found = await backend.schedules()
            if opts.json:
                _print(found, True)
            else:
                print(
                    _table(
                        [
                            (
                                s["name"],
                                s.get("cron") or "",
                                "paused" if s["paused"] else "active",
                                ", ".join(str(t) for t in s.get("next_runs", [])[:1]),
                            )
                            for s in found
                        ],
                        ("schedule", "cron", "state", "next run"),
                    )
                )
        else:
            await backend.schedule(opts.schedules_command, opts.name)
            _print(
                {"schedule": opts.name, "done": opts.schedules_command}
                if opts.json
                else f"{opts.name}: {opts.schedules_command} done",
                opts.json,
            )
        return EXIT_OK
    if opts.command == "tail":
        async for event in backend.tail(opts.job_id):
            _print(event if opts.json else _event_line(event), opts.json)
        return EXIT_OK
    # retry | cancel | remove: ids, or a queue filter
    if opts.ids:
        failures = 0
        for n, job_id in enumerate(opts.ids, start=1):
            try:
                await backend.act(opts.command, job_id)
                if not opts.json:
                    print(f"{job_id}: {opts.command} done")
            except CliError as exc:
                failures += 1
                print(f"{job_id}: {exc}", file=sys.stderr)
            _progress(n, len(opts.ids))
        return EXIT_FAILED if failures else EXIT_OK
    if not opts.queue:
        raise CliError(
            f"give job ids, or --queue (and --state, --type) for a bulk {opts.command}", EXIT_USAGE
        )
    result = await backend.bulk(opts.command, opts.queue, opts.state, opts.type, opts.dry_run)
    _print(result, True)
    return EXIT_OK


def _event_line(event: dict[str, Any]) -> str:
    extra = {k: v for k, v in event.items() if k not in ("event", "ts", "id", "state")}
    return f"{event.get('event', '?'):<10} {event.get('state', '')}  {json.dumps(extra)}"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="jobs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    top.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("stats", help="a table of every queue")
    for name in ("pause", "resume"):
        commands.add_parser(name, help=f"{name} a queue").add_argument("queue")
    commands.add_parser("get", help="one job").add_argument("job_id")
    listing = commands.add_parser("list", help="jobs, newest first")
    listing.add_argument("--queue")
    listing.add_argument("--state", choices=STATES)
    listing.add_argument("--type")
    listing.add_argument("--limit", type=int, default=50)
    for name in ("retry", "cancel", "remove"):
        act = commands.add_parser(name, help=f"{name} jobs by id, or in bulk by --queue")
        act.add_argument("ids", nargs="*", metavar="ID")
        act.add_argument("--queue")
        act.add_argument("--state", choices=STATES)
        act.add_argument("--type")
        act.add_argument("--dry-run", action="store_true", help="count, change nothing")
    commands.add_parser("tail", help="a job's live events until it ends").add_argument("job_id")
    schedules = commands.add_parser("schedules", help="the maintenance schedules")
    schedule_commands = schedules.add_subparsers(dest="schedules_command", required=True)
    schedule_commands.add_parser("list", help="every schedule, its cron and next run")
    for name in ("pause", "unpause", "trigger"):
        schedule_commands.add_parser(name, help=f"{name} a schedule").add_argument("name")
    keys = commands.add_parser("keys", help="API keys (on this host's database)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="a new key, printed once")
    create.add_argument("--user", required=True)
    create.add_argument("--role", required=True, choices=("user", "operator"))
    create.add_argument("--name")
    key_commands.add_parser("list", help="every key, live or revoked").add_argument("--user")
    key_commands.add_parser("revoke", help="revoke a key by its id").add_argument("key_id")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    opts = parser().parse_args(argv)
    from core.config import ConfigError
    from core.errors import InvalidArguments, InvalidJobState, JobNotFound, UnknownQueue

    try:
        return asyncio.run(_run(opts))
    except CliError as exc:
        print(f"jobs: {exc}", file=sys.stderr)
        return exc.code
    except JobNotFound as exc:
        print(f"jobs: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (UnknownQueue, InvalidArguments, InvalidJobState, ConfigError) as exc:
        print(f"jobs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
