"""The project's structural rules (docs/decisions/0010-the-shape.md), checked on the source of
src/underway with `ast`:

- no class longer than 300 lines, no function longer than 50;
- no import cycle among the modules (every import counts: lazy ones inside functions and
  `TYPE_CHECKING` ones too; relative imports resolved, as the import_cycles hook does). A
  package importing its own submodules is fine: that alone closes no loop. Unlike
  that hook, a loop a submodule closes by importing back up from its package (`from .. import
  Job`) is reported too: the hook excuses every loop that stays inside one package, which for
  the root package `underway` is every loop there can be;
- no SQL and no table name outside `stores/`;
- only the package root, `cli/`, `testing.py` and `web/` import `underway.app`.

Each failure lists every offender, so one run says all that is left to do.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import underway

PACKAGE = Path(underway.__file__).resolve().parent
SRC = PACKAGE.parent

MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 50

SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE TABLE)\b")
TABLE = re.compile(r"\bunderway_(jobs|queues|schedules|migrations|keys)\b")

#: the modules allowed to import underway.app, and the packages whose every module may
APP_IMPORTERS = ("underway", "underway.testing")
APP_IMPORTING_PACKAGES = ("underway.cli", "underway.web")


# --- reading the source --------------------------------------------------------------------------


@dataclass
class Module:
    name: str  # dotted, e.g. "underway.worker.loop"; a package is named after its directory
    path: Path
    tree: ast.Module
    is_package: bool
    where: str  # the path to show, e.g. "src/underway/worker/loop.py"


def modules(src: Path) -> dict[str, Module]:
    """Every module under `src` by dotted name (as in the import_cycles hook)."""
    found: dict[str, Module] = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        if parts:
            name = ".".join(parts)
            tree = ast.parse(path.read_text())
            found[name] = Module(name, path, tree, is_package, str(path.relative_to(src.parent)))
    return found


def imported(module: Module, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, module name) for every import in `module` of a module in `known`, wherever it
    stands (top level, inside a function, under `if TYPE_CHECKING:`). `from pkg import sub`
    imports the submodule `sub` when there is one, else the package."""
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [
                f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target in known and target != module.name:
                yield node.lineno, target


@dataclass
class Graph:
    edges: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, found: dict[str, Module]) -> Graph:
        """The import graph: every import is an edge. A package importing its own submodules
        closes no loop by itself; one closes only when something below imports back up."""
        graph = cls({name: set() for name in found})
        for name, module in found.items():
            graph.edges[name].update(target for _, target in imported(module, set(found)))
        return graph

    def cycles(self) -> list[list[str]]:
        """The strongly connected components of more than one module (Tarjan), each sorted."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []

        def visit(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            on_stack.add(v)
            for w in sorted(self.edges[v]):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

        for v in sorted(self.edges):
            if v not in index:
                visit(v)
        return sorted(found)


def describe_cycle(component: list[str], graph: Graph, found: dict[str, Module]) -> str:
    lines = ["  " + " <-> ".join(component)]
    members = set(component)
    for name in component:
        for line, target in imported(found[name], set(found)):
            if target in members and target in graph.edges[name]:
                lines.append(f"      {found[name].where}:{line} imports {target}")
    return "\n".join(lines)


def string_literals(tree: ast.AST) -> Iterator[ast.Constant]:
    """Every str constant, docstrings and the literal parts of f-strings included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node


def outside_stores(found: dict[str, Module]) -> list[Module]:
    return [m for name, m in found.items() if not _within(name, "underway.stores")]


def may_import_app(name: str) -> bool:
    return name in APP_IMPORTERS or any(_within(name, p) for p in APP_IMPORTING_PACKAGES)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _length(node: ast.AST) -> int:
    end = node.end_lineno if node.end_lineno is not None else node.lineno
    return end - node.lineno + 1


# --- the offenders of each rule -------------------------------------------------------------------


def long_definitions(found: dict[str, Module], kinds: tuple[type, ...], limit: int) -> list[str]:
    """Classes or functions (methods and nested ones too) longer than `limit` lines, from
    their `class`/`def` line to their last."""
    return sorted(
        f"  {m.where}:{node.lineno} {node.name}: {_length(node)} lines"
        for m in found.values()
        for node in ast.walk(m.tree)
        if isinstance(node, kinds) and _length(node) > limit
    )


def sql_outside_stores(found: dict[str, Module]) -> list[str]:
    return sorted(
        f"  {m.where}:{node.lineno} {node.value.strip()[:70]!r}"
        for m in outside_stores(found)
        for node in string_literals(m.tree)
        if SQL.search(node.value)
    )


def tables_outside_stores(found: dict[str, Module]) -> list[str]:
    """Table names anywhere in the text: code, strings and comments."""
    return [
        f"  {m.where}:{number} {line.strip()[:70]}"
        for m in outside_stores(found)
        for number, line in enumerate(m.path.read_text().splitlines(), 1)
        if TABLE.search(line)
    ]


def app_importers(found: dict[str, Module]) -> list[str]:
    return sorted(
        f"  {m.where}:{line} imports underway.app"
        for name, m in found.items()
        if not may_import_app(name)
        for line, target in imported(m, set(found))
        if target == "underway.app"
    )


@pytest.fixture(scope="module")
def source() -> dict[str, Module]:
    found = modules(SRC)
    assert "underway.worker.loop" in found, f"src/underway not found under {SRC}"
    return {name: m for name, m in found.items() if _within(name, "underway")}


# --- the rules ---------------------------------------------------------------------------------


def test_no_class_is_longer_than_300_lines(source: dict[str, Module]) -> None:
    offenders = long_definitions(source, (ast.ClassDef,), MAX_CLASS_LINES)
    assert not offenders, f"classes over {MAX_CLASS_LINES} lines:\n" + "\n".join(offenders)


def test_no_function_is_longer_than_50_lines(source: dict[str, Module]) -> None:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    offenders = long_definitions(source, kinds, MAX_FUNCTION_LINES)
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)


def test_no_modules_import_each_other(source: dict[str, Module]) -> None:
    graph = Graph.of(source)
    cycles = graph.cycles()
    assert not cycles, (
        "import cycles (arrows should point down; lazy and TYPE_CHECKING imports count):\n"
        + "\n".join(describe_cycle(c, graph, source) for c in cycles)
    )


def test_no_module_outside_the_stores_holds_sql(source: dict[str, Module]) -> None:
    offenders = sql_outside_stores(source)
    assert not offenders, "SQL outside underway/stores/:\n" + "\n".join(offenders)


def test_no_module_outside_the_stores_names_a_table(source: dict[str, Module]) -> None:
    offenders = tables_outside_stores(source)
    assert not offenders, "table names outside underway/stores/:\n" + "\n".join(offenders)


def test_only_the_root_the_cli_and_the_testing_helpers_import_the_app(
    source: dict[str, Module],
) -> None:
    offenders = app_importers(source)
    assert not offenders, (
        "only underway/__init__.py, cli/, testing.py and web/ may import underway.app:\n"
        + "\n".join(offenders)
    )


# --- the checks themselves, on made-up packages ---------------------------------------------------


def write_tree(root: Path, files: dict[str, str]) -> dict[str, Module]:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return modules(root)


def cycles_in(root: Path, files: dict[str, str]) -> list[list[str]]:
    return Graph.of(write_tree(root, files)).cycles()


def test_the_cycle_check_sees_lazy_type_checking_and_relative_imports(tmp_path: Path) -> None:
    found = cycles_in(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from .b import thing\n",
            "pkg/b.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from .sub import c
            """,
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": """
                def later():
                    from .. import a
            """,
        },
    )
    assert found == [["pkg.a", "pkg.b", "pkg.sub.c"]]


def test_the_cycle_check_lets_a_package_import_its_own_submodules(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "from .a import A\nfrom .inner import B\n",
        "pkg/a.py": "from .inner.b import B\n",
        "pkg/inner/__init__.py": "from .b import B\nfrom . import c\n",
        "pkg/inner/b.py": "from ..a import A\n",
        "pkg/inner/c.py": "import pkg.inner.b\n",
    }
    assert cycles_in(tmp_path, files) == [["pkg.a", "pkg.inner.b"]]
    files["pkg/inner/b.py"] = "B = 1\n"
    assert cycles_in(tmp_path, files) == []


def test_the_cycle_check_sees_a_cycle_through_the_package_root(tmp_path: Path) -> None:
    """`from .. import Job` in a module the root imports fails at import time: the root is
    only half run. Such a loop is not a package importing its submodules."""
    found = cycles_in(
        tmp_path,
        {
            "pkg/__init__.py": "from .app import App\nfrom .model import Job\n",
            "pkg/app.py": "from .worker import Worker\n",
            "pkg/model.py": "",
            "pkg/worker/__init__.py": "from .loop import Worker\n",
            "pkg/worker/loop.py": "from .. import Job\n",
        },
    )
    assert found == [["pkg", "pkg.app", "pkg.worker", "pkg.worker.loop"]]


def test_the_app_import_check_resolves_every_spelling(tmp_path: Path) -> None:
    found = write_tree(
        tmp_path,
        {
            "underway/__init__.py": "from .app import App\n",
            "underway/app.py": "",
            "underway/testing.py": "from .app import App\n",
            "underway/cli/__init__.py": "",
            "underway/cli/deep/run.py": "from ...app import App\n",
            "underway/web/api.py": "from underway.app import App\n",
            "underway/a.py": "from .app import App\n",
            "underway/b.py": "def f():\n    import underway.app\n",
            "underway/c.py": "from underway import app\n",
            "underway/d.py": "from underway import App\n",  # the root, not the module
            "underway/w/__init__.py": "",
            "underway/w/e.py": "from ..app import App\n",
            "underway/webhooks.py": "from .app import App\n",  # not under web/
        },
    )
    assert _files(app_importers(found)) == [
        "underway/a.py",
        "underway/b.py",
        "underway/c.py",
        "underway/w/e.py",
        "underway/webhooks.py",
    ]


def test_the_sql_and_table_checks_read_strings_and_skip_the_stores(tmp_path: Path) -> None:
    found = write_tree(
        tmp_path,
        {
            "underway/__init__.py": "",
            "underway/doc.py": '"""Runs SELECT id FROM jobs."""\n',
            "underway/fstr.py": 'def q(t):\n    return f"DELETE FROM {t} WHERE 1"\n',
            "underway/upd.py": "Q = 'UPDATE jobs SET x = 1'\n",
            "underway/words.py": "NOTE = 'select a task, update the app, insert into a list'\n",
            "underway/comment.py": "# reads underway_jobs directly\n",
            "underway/stores/__init__.py": "",
            "underway/stores/q.py": "Q = 'SELECT * FROM underway_jobs'\n",
        },
    )
    assert _files(sql_outside_stores(found)) == [
        "underway/doc.py",
        "underway/fstr.py",
        "underway/upd.py",
    ]
    assert _files(tables_outside_stores(found)) == ["underway/comment.py"]


def test_the_length_checks_count_from_the_definition_to_its_last_line(tmp_path: Path) -> None:
    lines = [f"x{i} = {i}" for i in range(49)]
    fifty = ["@decorated", "def fifty():", *("    " + line for line in lines)]
    fifty_one = ["class K:", "    def fifty_one(self):", *("        " + x for x in [*lines, "y"])]
    found = write_tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/ok.py": "\n".join(fifty) + "\n",
            "pkg/long.py": "\n".join(fifty_one) + "\n",  # the class: 52 lines
        },
    )
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    assert [o.split()[1] for o in long_definitions(found, kinds, 50)] == ["fifty_one:"]
    assert long_definitions(found, (ast.ClassDef,), 52) == []
    assert [o.split()[1] for o in long_definitions(found, (ast.ClassDef,), 51)] == ["K:"]


def _files(offenders: list[str]) -> list[str]:
    """The files named by `offenders`, below the made-up tree's directory."""
    return [line.split(":")[0].strip().split("/", 1)[1] for line in offenders]
