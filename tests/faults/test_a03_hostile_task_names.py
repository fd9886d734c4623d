"""A03 hostile task names and serializers, both stores. Catalogue: enqueue `os.system`,
`builtins.eval`, `../../x` and unregistered names; bodies as pickle, YAML `!!python/object`,
JSON with `__class__`/`$type`.

Pass: over HTTP every hostile name is refused (404 or 422) with no row inserted; pickle and
YAML bodies (whatever their Content-Type) are refused (4xx), no row; JSON with `__class__`,
`$type`, `py/object` or `py/reduce` is plain data: the job runs and its result is the same
dict; a job under such a name from another producer (a row in the store) is never resolved by
the worker: it fails NotRunnable. A canary file that each payload would create if anything
unpickled, YAML-loaded, imported or evaluated it never appears. And a CI check: no module of
underway imports pickle, YAML, marshal, shelve, dill, jsonpickle or cloudpickle, or calls
eval, exec, compile, __import__ or importlib.import_module, except the two reviewed places
in ALLOWED (neither sees job data).

underway has no "parked unroutable" state: a job whose task the worker does not have fails
NotRunnable at its first attempt, in the dead letters with the reason. CI size = full size."""

from __future__ import annotations

import ast
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from abuse import abuse_verdict, client, row_count, served
from web_support import Web

import underway
from underway import testing

SRC = Path(underway.__file__).resolve().parent
NAMES = (
    "os.system", "builtins.eval", "builtins.exec", "subprocess.Popen", "__import__",
    "../../x", "..\\..\\x", "/etc/passwd", "os:system", "web.add\x00", "web.add ",
    "web.nope", "", "x" * 10_000, "{{7*7}}", "web.add;os.system",
)  # fmt: skip
#: modules whose loaders turn bytes into objects (or code)
LOADERS = frozenset({"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "jsonpickle",
                     "marshal", "shelve", "yaml", "ruamel"})  # fmt: skip
#: builtins that run code or import by name, and the one attribute call that imports by name
#: (`re.compile` and the like are not builtins: only a bare name counts)
CALLS = frozenset({"eval", "exec", "compile", "__import__"})
ATTRIBUTE_CALLS = frozenset({"import_module", "__import__", "find_spec", "load_module"})
#: the reviewed uses: (file, call) -> why it never sees job data
ALLOWED = {
    ("stores/sql.py", "exec"): "compiles the row mapper from the constant JOB_COLUMNS",
    ("cli/loading.py", "import_module"): "imports the APP given on the command line",
}


class Evil:
    """Unpickling this would run `touch CANARY`."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.canary}",))


def echo(app: underway.App) -> None:
    @app.task(name="abuse.echo", queue="default")
    def echo_it(data: dict[str, Any]) -> dict[str, Any]:
        return data


def hostile_names(web: Web, canary: Path) -> list[str]:
    admin = client(web, web.admin)
    wrong = []
    for name in NAMES:
        body = {"task": name, "args": {"command": f"touch {canary}", "a": 1}}
        answer = admin.post("/api/v1/jobs", json=body)
        if answer.status_code not in (404, 422):
            wrong.append(f"{name[:40]!r}: {answer.status_code} {answer.text[:100]}")
    return wrong


def hostile_bodies(web: Web, canary: Path) -> list[str]:
    admin = client(web, web.admin)
    pickled = pickle.dumps(Evil(canary))
    yaml = f'!!python/object/apply:os.system ["touch {canary}"]\n'.encode()
    yaml_map = f"task: web.add\nargs: !!python/object/apply:os.system ['touch {canary}']\n"
    types = (
        "application/python-pickle",
        "application/octet-stream",
        "application/json",
        "application/x-yaml",
        "text/yaml",
        "application/x-www-form-urlencoded",
        None,
    )
    wrong = []
    for body in (pickled, yaml, yaml_map.encode()):
        for content_type in types:
            headers = {"Content-Type": content_type} if content_type else {}
            answer = admin.post("/api/v1/jobs", content=body, headers=headers)
            if not 400 <= answer.status_code < 500:
                wrong.append(f"{body[:20]!r} as {content_type}: {answer.status_code}")
    return wrong


def typed_json(canary: Path) -> list[dict[str, Any]]:
    """JSON a type-aware decoder would turn into objects; for underway it is plain data."""
    command = f"touch {canary}"
    return [
        {"__class__": "os.system", "args": [command]},
        {"$type": "System.Diagnostics.Process, System", "StartInfo": {"FileName": "touch"}},
        {"py/object": "subprocess.Popen", "args": [command]},
        {"py/reduce": [{"py/function": "os.system"}, {"py/tuple": [command]}]},
        {"__reduce__": ["os.system", [command]], "__module__": "os"},
    ]


def plain_data(web: Web, canary: Path) -> tuple[list[str], list[str]]:
    """Typed JSON as a job's args runs as plain data; the same keys beside the request's own
    fields are refused (the request model takes no unknown field)."""
    admin = client(web, web.admin)
    wrong, ids = [], []
    for data in typed_json(canary):
        answer = admin.post("/api/v1/jobs", json={"task": "abuse.echo", "args": {"data": data}})
        if answer.status_code != 201:
            wrong.append(f"{next(iter(data))}: {answer.status_code} {answer.text[:100]}")
            continue
        ids.append(answer.json()["id"])
        outside = admin.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": 1}, **data})
        if outside.status_code != 422:
            wrong.append(f"{next(iter(data))} beside the fields: {outside.status_code}")
    testing.drain(web.app, queues=["default"])
    for job_id, data in zip(ids, typed_json(canary), strict=True):
        job = web.app.get_job(job_id)
        if job is None or job.status.value != "completed" or job.result != data:
            wrong.append(f"{job_id}: {job and job.status} {job and job.result}")
    return wrong, ids


def unresolved_rows(make_app: Callable[..., underway.App], web: Web, canary: Path) -> list[str]:
    """Rows under hostile names written by another producer (an App that has them): the
    worker of `web.app` must fail each NotRunnable without resolving the name."""
    producer = make_app()
    ids = []
    for name in ("os.system", "builtins.eval", "../../x", "subprocess.Popen"):
        producer.task(name=name, queue="default")(lambda command: None)
        ids.append(producer.get_task(name).enqueue(command=f"touch {canary}").id)
    testing.drain(web.app, queues=["default"])
    wrong = []
    for job_id in ids:
        job = web.app.get_job(job_id)
        error = job.error if job is not None else None
        if job is None or job.status.value != "failed" or error is None or (
            error.type != "NotRunnable" or "not registered" not in error.message
        ):  # fmt: skip
            wrong.append(f"{job_id}: {job and job.status} {error}")
    producer.close()
    return wrong


def loaders_in_source() -> list[str]:
    """Every import of a loader module and every call of CALLS in underway's source,
    beyond ALLOWED."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        where = str(path.relative_to(SRC))
        for node in ast.walk(ast.parse(path.read_text(), where)):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            found += [f"{where}:{node.lineno} imports {m}" for m in modules
                      if m.split(".")[0] in LOADERS]  # fmt: skip
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", "")
                listed = CALLS if isinstance(fn, ast.Name) else ATTRIBUTE_CALLS
                if name in listed and (where, name) not in ALLOWED:
                    found.append(f"{where}:{node.lineno} calls {name}")
    return found


def test_a03_hostile_names_and_serializers_are_plain_refusals(
    make_app: Callable[..., underway.App], store_kind: str, tmp_path: Path
) -> None:
    canary = tmp_path / "CANARY"
    with served(make_app, extra=echo) as web:
        before = row_count(web)
        names = hostile_names(web, canary)
        bodies = hostile_bodies(web, canary)
        inserted = row_count(web) - before
        typed, ran = plain_data(web, canary)
        rows = unresolved_rows(make_app, web, canary)
    source = loaders_in_source()
    (
        abuse_verdict("A03 hostile task names and serializers", store_kind,
                      before + len(ran) + 4, [
            f"{len(NAMES)} hostile task names over HTTP; pickle and YAML bodies under 7 "
            "content types; typed JSON (__class__, $type, py/object, py/reduce); 4 rows under "
            "hostile names from another producer",
        ])
        .require("hostile names are 404/422", not names, f"{names[:5]}")
        .require("pickle and YAML bodies are 4xx", not bodies, f"{bodies[:5]}")
        .require("no row for a refused request", inserted == 0, f"{inserted} rows")
        .require("typed JSON runs as plain data", not typed, f"{typed[:3]}")
        .require("the worker never resolves an unregistered name", not rows, f"{rows[:3]}")
        .require("the canary never appears", not canary.exists(), f"{canary}")
        .require("no loader, eval, exec or import_module on job data in src", not source,
                 f"{source[:5]}")
        .check()
    )  # fmt: skip
