"""The CSI conformance kit: named checks run against any CSI socket through ``CSIClient``.

Like csi-sanity, but ours and small: identity (kit_identity.py), controller (kit_controller.py) and
node (kit_node.py) sequences, each check under a dotted name (``controller.create.idempotent``)
covering one rule of the spec: idempotency of every call, NOT_FOUND and ALREADY_EXISTS cases,
capacity and topology, stage/publish pairs, read-only, stats, expansion. ``run`` runs the selected
checks one by one, each with its own cleanup, and returns a ``Result`` per check; a check about a
capability the driver does not advertise is skipped, not passed. ``python -m nodeagent.csi.sanity
--socket PATH`` is the command-line face.

Node checks make real mounts: the kit must run on the driver's machine, as the driver's user, with
``KitConfig.staging_dir`` and ``target_dir`` as parents of the paths a CO would choose.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from nodeagent.csi import kit_controller, kit_identity, kit_node
from nodeagent.csi.client import CSIClient
from nodeagent.csi.errors import CSIError
from nodeagent.csi.kit_support import Check, CheckFailed, CheckSkipped, Kit, KitConfig, Result, gather_facts

CHECKS: dict[str, Check] = {**kit_identity.CHECKS, **kit_controller.CHECKS, **kit_node.CHECKS}

__all__ = ["CHECKS", "CheckFailed", "CheckSkipped", "KitConfig", "Result", "run", "select"]


def select(patterns: Iterable[str] = ()) -> list[str]:
    """The names of the checks matching any of the fnmatch ``patterns`` (all when none)."""
    pats = list(patterns)
    return [n for n in CHECKS if not pats or any(fnmatch.fnmatchcase(n, p) for p in pats)]


async def run(
    client: CSIClient,
    config: KitConfig,
    names: Iterable[str] | None = None,
    checks: dict[str, Check] | None = None,
) -> list[Result]:
    """Run the checks ``names`` (all by default) in order; one Result each. A cleanup that fails
    fails its check: the driver would leave that volume or mount behind for a CO too."""
    table = CHECKS if checks is None else checks
    facts = await gather_facts(client)
    results = []
    for name in list(table) if names is None else list(names):
        kit = Kit(client, config, facts)
        status, message = "pass", ""
        try:
            await table[name](kit)
        except CheckSkipped as e:
            status, message = "skip", str(e)
        except CheckFailed as e:
            status, message = "fail", str(e)
        except CSIError as e:
            status, message = "fail", f"unexpected error: {e}"
        except OSError as e:
            status, message = "fail", f"{type(e).__name__}: {e}"
        problems = await kit.cleanup()
        if problems and status != "fail":
            status, message = "fail", "cleanup: " + "; ".join(problems)
        results.append(Result(name, status, message))
    return results
