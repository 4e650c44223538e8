"""The layers of raykube as data, and an AST walk that finds the imports breaking them.

Nothing here imports the project: the tree is read with ``ast`` so a broken import cannot hide a
rule violation, and no module's import-time code runs. ``tests/test_layers.py`` runs it over the
real tree (and over small planted trees, so it can be seen to fail).

The rules, in the order a reader meets them in ``docs/architecture.md``:

- every module belongs to the component of its longest prefix in ``COMPONENTS``;
- a component imports only itself and what ``ALLOWED`` names for it (the leaf, ``machinery``,
  imports nothing of raykube);
- only the Ray glue modules in ``RAY_GLUE`` (and ``bench``) import ``ray`` or another ``*.actor``
  module, so the cores stay testable without Ray;
- imports sit at the top of their module (``if TYPE_CHECKING:`` blocks included); the few lazy ones
  in ``LAZY`` each say why;
- there is no cycle among modules.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("cluster", "nodeagent", "netplugins", "bench")

# module prefix -> component. The longest matching prefix wins.
COMPONENTS: dict[str, str] = {
    "cluster.machinery": "machinery",
    "cluster.naming": "naming",  # Ray namespace and node-name conventions: a leaf beside machinery
    "cluster.store": "store",
    "cluster.store.members": "store-glue",  # membership changes on Ray: the keeper's loop, `store member`
    "cluster.store.endpoints": "store-glue",  # the replicas' client URLs, asked of their actors
    "cluster.store.clients": "store-glue",  # which store client (gRPC or Ray calls) and its endpoints
    "cluster.client": "client",
    "cluster.apiserver": "apiserver",
    "cluster.apiserver.actor": "apiserver-glue",  # the API server actor: connects to the store (store-glue)
    "cluster.scheduler": "scheduler",
    "cluster.controllers": "controllers",
    "cluster.controllers.actor": "controller-glue",
    "cluster": "bootstrap",  # cluster/bootstrap.py, ownership, config: the Ray glue that wires it all
    "cluster.cli": "cli",
    "nodeagent": "nodeagent",
    "nodeagent.cri": "cri",  # the generated CRI stubs and their client: what plugins are written against
    "nodeagent.csi": "csi",  # CSI stubs, client, errors, plugin base: what volume plugins are written against
    "nodeagent.actor": "node-glue",
    "netplugins": "netplugins",
    "netplugins.cni": "cni",  # the CNI gRPC stubs, types, client and plugin base: what runtimes call
    "bench": "bench",
}

# Everything below the glue: what the bootstrap wires together.
_PARTS = frozenset(
    {"machinery", "naming", "store", "client", "apiserver", "scheduler", "controllers", "cri", "nodeagent"}
    | {"netplugins", "cni", "csi", "node-glue", "controller-glue", "store-glue", "apiserver-glue"}
)
# component -> the other components it may import. Directions point one way:
# machinery <- store <- client <- {apiserver, scheduler, controllers, nodeagent, netplugins} <- glue.
ALLOWED: dict[str, frozenset[str]] = {
    "machinery": frozenset(),
    "naming": frozenset(),
    "cri": frozenset({"machinery"}),  # machinery: the shared stub generator only
    "cni": frozenset({"machinery"}),  # machinery: the shared stub generator only
    "csi": frozenset({"machinery"}),  # machinery: the shared stub generator and file helpers only
    "store": frozenset({"machinery"}),
    "store-glue": frozenset({"machinery", "naming", "store"}),
    "apiserver-glue": frozenset({"machinery", "store", "client", "apiserver", "store-glue"}),
    "client": frozenset({"machinery"}),
    "apiserver": frozenset({"machinery", "store", "client"}),
    "scheduler": frozenset({"machinery", "client"}),
    "controllers": frozenset({"machinery", "client", "csi"}),  # csi: the provisioner's messages
    "nodeagent": frozenset({"machinery", "client", "cri", "cni", "csi"}),
    "netplugins": frozenset({"machinery", "client", "cri", "cni"}),
    "node-glue": frozenset({"machinery", "client", "cri", "cni", "csi", "nodeagent"}),
    # the controller manager actor: the Ray side of the controllers (actor health, node agents to follow)
    "controller-glue": frozenset(
        {
            "machinery",
            "naming",
            "store",
            "client",
            "controllers",
            "cri",
            "csi",
            "nodeagent",
            "bootstrap",
            "node-glue",
            "store-glue",
        }
    ),
    "bootstrap": _PARTS,
    "cli": _PARTS | {"bootstrap", "bench"},
    "bench": _PARTS | {"bootstrap"},
}

# Modules that may import ray or an actor module (fnmatch patterns over dotted names).
RAY_GLUE: tuple[str, ...] = (
    "cluster.bootstrap",
    "cluster.store_deploy",  # creates the store replica actors (placement groups, node affinity)
    "cluster.up_config",  # checks --runtime with nodeagent.actor.load_runtime before anything starts
    "cluster.addons",  # the DNS and Ingress actors on the head node
    "cluster.ownership",
    "cluster.cli",
    "cluster.node_agents",  # places one runtime + agent actor pair on every Ray node
    "cluster.membership",  # follows ray.nodes(): agents for nodes that join, Nodes of nodes that leave
    "cluster.control_plane",  # the nodes of the store replicas and the control-plane instances on them
    "cluster.status",  # `raykube status`: Ray's nodes, named actors and the autoscaler's request
    "cluster.autoscaler.marks",  # release marks and the standing request, in Ray's GCS key-value store
    "cluster.autoscaler.ray_autoscaler",  # request_resources, and stopping a released node's actors
    "cluster.store.client",  # the store client's transport is Ray calls to the replica actors
    "cluster.store.members",  # starts, adds, removes and kills replica actors
    "cluster.store.endpoints",  # asks the replica actors where they listen
    "*.actor",
    "nodeagent.actor",
    "bench.*",
)

# (importer pattern, imported pattern, why) for imports deliberately kept inside a function.
LAZY: tuple[tuple[str, str, str], ...] = (
    ("cluster.cli", "bench.*", "`raykube bench` dispatch: the project never imports bench otherwise"),
    (
        "netplugins.cni.shim",
        "netplugins.cni.*",
        "the shim is an executable run once per pod operation: VERSION answers before gRPC is imported",
    ),
    (
        "bench.scheduling_ray",
        "ray._private.*",
        "a private Ray helper, best effort: the bench runs without it",
    ),
)


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    imported: str
    line: int
    top_level: bool  # at module level (an `if TYPE_CHECKING:` block counts as module level)
    type_only: bool  # inside `if TYPE_CHECKING:`: never runs, so it closes no cycle


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(body: Iterable[ast.stmt], top: bool, type_only: bool) -> Iterator[tuple[ast.stmt, bool, bool]]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, top, type_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(node.body, top, True)
            yield from _walk(node.orelse, top, type_only)
        else:
            # any other statement's children: a function or class body is not module level,
            # a try/with/if at module level is.
            nested_top = top and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from _walk([child], nested_top, type_only)


def imports_of(root: Path, modules: set[str], path: Path) -> list[Import]:
    """The imports of one file that name a raykube module or ray."""
    name = module_name(root, path)
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    for node, top, type_only in _walk(ast.parse(path.read_text(), str(path)).body, True, False):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule when there is one
            subs = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in modules]
            targets = subs or [module]
        for target in targets:
            head = target.split(".")[0]
            if head in PACKAGES or head == "ray":
                found.append(Import(name, target, node.lineno, top, type_only))
    return found


def scan(root: Path) -> list[Import]:
    files = [p for pkg in PACKAGES if (root / pkg).is_dir() for p in sorted((root / pkg).rglob("*.py"))]
    modules = {module_name(root, p) for p in files}
    return [imp for p in files for imp in imports_of(root, modules, p)]


def component(module: str) -> str | None:
    best = max((p for p in COMPONENTS if module == p or module.startswith(p + ".")), key=len, default=None)
    return COMPONENTS[best] if best else None


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _is_actor_module(module: str) -> bool:
    return module.rsplit(".", 1)[-1] == "actor"


def violations(found: list[Import]) -> list[str]:
    """Every import that breaks a rule, one line each: `importer:line -> imported: which rule`."""
    out: list[str] = []
    for imp in found:
        where = f"{imp.importer}:{imp.line} -> {imp.imported}"
        lazy_ok = any(
            fnmatch.fnmatchcase(imp.importer, a) and fnmatch.fnmatchcase(imp.imported, b) for a, b, _ in LAZY
        )
        if imp.imported.split(".")[0] == "ray" or (
            _is_actor_module(imp.imported) and imp.importer != imp.imported.rsplit(".", 1)[0]
        ):
            if not _matches(imp.importer, RAY_GLUE):
                out.append(f"{where}: only Ray glue modules import ray or actor modules")
        else:
            src, dst = component(imp.importer), component(imp.imported)
            if src is None or dst is None:
                out.append(f"{where}: module outside every component (add it to COMPONENTS)")
            elif src != dst and dst not in ALLOWED[src]:
                out.append(f"{where}: {src} may not import {dst}")
            elif src == "cli" and dst == "bench" and imp.top_level:
                out.append(f"{where}: the CLI imports bench only inside its bench dispatch")
        if not imp.top_level and not lazy_ok:
            out.append(f"{where}: import inside a function (move it to the top, or list it in LAZY)")
    return out + [f"cycle: {' -> '.join(c)}" for c in cycles(found)]


def cycles(found: list[Import]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), over imports that run."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        if imp.type_only or imp.imported.split(".")[0] == "ray" or imp.imported == imp.importer:
            continue
        graph.setdefault(imp.importer, set()).add(imp.imported)
        graph.setdefault(imp.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(v: str) -> None:
        # iterative Tarjan: the import graph is deep enough to worry Python's recursion limit
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    scc: list[str] = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        scc.append(w)
                        if w == node:
                            break
                    if len(scc) > 1:
                        result.append(sorted(scc))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result
