"""VolumeBinding: place a pod where its PersistentVolumeClaims can be satisfied, and bind them there.

As kube-scheduler's plugin (``pkg/scheduler/framework/plugins/volumebinding``):

* **PreFilter** reads the pod's claims (``persistentVolumeClaim`` volumes and generic ephemeral ones,
  ``<pod>-<volume>``). A pod without claims is skipped: nothing else of this plugin runs for it. A
  missing claim, or an unbound one whose class binds Immediately (the PV controller's job, not ours),
  makes the pod unschedulable anywhere.
* **Filter** per node: a bound claim's PV must admit the node by its node affinity ("node(s) had volume
  node affinity conflict"); each unbound WaitForFirstConsumer claim needs either an Available PV that
  matches it (class, size, access modes, volume mode, selector) and admits the node, or a provisioner
  that can create one there (its driver in the node's CSINode, the node inside the class's
  allowedTopologies), else "node(s) didn't find available persistent volumes to bind".
* **Reserve** takes the chosen node's decisions and marks the static PVs assumed, so the next pods of
  the batch do not pick them too; **Unreserve** gives them back.
* **PreBind** records the work (PV ``claimRef`` writes, ``volume.kubernetes.io/selected-node`` on
  claims to provision) in the cycle state under ``WORK_KEY``; the scheduler shell
  (``cluster/scheduler/volume_binder.py``) performs it and waits for the claims to be Bound before it
  binds the pod, as the binder's BindPodVolumes does.

The plugin reads claims, PVs, StorageClasses and CSINodes from listers the shell hands it with
``set_volume_listers`` (the scheduler's informers); pure otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cluster.machinery.labels import SelectorError, as_selector
from cluster.machinery.quantity import parse_quantity
from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import SUCCESS, Status
from cluster.scheduler.framework.types import NodeInfo
from cluster.scheduler.plugins.node_affinity import match_node_selector_terms

Obj = dict[str, Any]

NAME = "VolumeBinding"
STATE_KEY = NAME + "/state"
WORK_KEY = NAME + "/work"
SELECTED_NODE_ANN = "volume.kubernetes.io/selected-node"
BOUND_BY_CONTROLLER_ANN = "pv.kubernetes.io/bound-by-controller"
NO_PROVISIONER = "kubernetes.io/no-provisioner"

ERR_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
ERR_NODE_CONFLICT = "node(s) had volume node affinity conflict"
ERR_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
ERR_PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"


class Lister(Protocol):
    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    def list(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class VolumeListers:
    claims: Lister
    volumes: Lister
    classes: Lister
    csinodes: Lister


@dataclass(frozen=True, slots=True)
class PodVolumes:
    """What binding the pod's claims on one node takes: static PVs to claim and claims to provision."""

    static: tuple[tuple[Obj, Obj], ...] = ()  # (claim, PV)
    provision: tuple[Obj, ...] = ()  # claims


@dataclass(slots=True)
class _State:
    bound: list[tuple[Obj, Obj]]  # (claim, its PV)
    unbound: list[tuple[Obj, Obj]]  # (WaitForFirstConsumer claim, its class)
    candidates: list[Obj] = field(default_factory=list)  # PVs of the unbound claims' classes
    by_node: dict[str, PodVolumes] = field(default_factory=dict)
    chosen: PodVolumes | None = None

    def clone(self) -> _State:
        return _State(self.bound, self.unbound, self.candidates, dict(self.by_node), self.chosen)


@dataclass(frozen=True, slots=True)
class BindingWork:
    """For the shell: the writes to make, then the claims (``namespace/name``) to wait for as Bound."""

    node_name: str
    static: tuple[tuple[Obj, Obj], ...]
    provision: tuple[Obj, ...]
    claims: tuple[str, ...]


def claim_names(pod: Obj) -> list[str]:
    """The pod's claims in volume order: ``persistentVolumeClaim`` ones and generic ephemeral ones."""
    pod_name = str((pod.get("metadata") or {}).get("name", ""))
    names: list[str] = []
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        source = volume.get("persistentVolumeClaim")
        if source is not None:
            names.append(str(source.get("claimName", "")))
        elif volume.get("ephemeral") is not None:
            names.append(f"{pod_name}-{volume.get('name', '')}")
    return names


def _storage(obj: Obj, where: str) -> int:
    value = ((obj.get("spec") or {}).get(where) or {}).get("storage")
    return int(parse_quantity(value)) if value is not None else 0


def _claim_request(claim: Obj) -> int:
    requests = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
    return int(parse_quantity(requests["storage"])) if "storage" in requests else 0


def pv_fits(pv: Obj, node: NodeInfo) -> bool:
    """The PV's required node affinity admits the node (a PV without one fits every node)."""
    required = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get(
        "nodeSelectorTerms"
    )
    return not required or match_node_selector_terms(list(required), node.labels, node.name)


def claim_key(claim: Obj) -> str:
    meta = claim.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def pv_matches_claim(pv: Obj, claim: Obj, class_name: str) -> bool:
    """Whether an unbound PV could satisfy ``claim`` (everything but node affinity)."""
    spec, cspec = pv.get("spec") or {}, claim.get("spec") or {}
    meta, cmeta = pv.get("metadata") or {}, claim.get("metadata") or {}
    if meta.get("deletionTimestamp") or (pv.get("status") or {}).get("phase", "Available") != "Available":
        return False
    ref = spec.get("claimRef")
    if ref and (
        ref.get("name") != cmeta.get("name")
        or (ref.get("namespace") or "default") != (cmeta.get("namespace") or "default")
        or (ref.get("uid") and ref.get("uid") != cmeta.get("uid"))
    ):
        return False
    if (spec.get("storageClassName") or "") != class_name:
        return False
    if (spec.get("volumeMode") or "Filesystem") != (cspec.get("volumeMode") or "Filesystem"):
        return False
    if not set(cspec.get("accessModes") or ()) <= set(spec.get("accessModes") or ()):
        return False
    if _storage(pv, "capacity") < _claim_request(claim):
        return False
    if cspec.get("selector"):
        try:
            return as_selector(cspec["selector"]).matches(meta.get("labels") or {})
        except SelectorError:
            return False
    return True


class VolumeBinding:
    NAME = NAME

    def __init__(self, listers: VolumeListers | None = None) -> None:
        self.listers = listers
        self.assumed: dict[str, str] = {}  # PV name -> claim key, until the claim shows it bound

    def name(self) -> str:
        return NAME

    def set_volume_listers(self, listers: VolumeListers) -> None:
        self.listers = listers

    # -- PreFilter / Filter -----------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: Obj, nodes: list[NodeInfo]) -> Status:
        names = claim_names(pod)
        if not names:
            return Status.skip()
        if self.listers is None:
            return Status.error(
                "VolumeBinding has no claim listers (the scheduler did not start its informers)"
            )
        namespace = (pod.get("metadata") or {}).get("namespace") or "default"
        bound: list[tuple[Obj, Obj]] = []
        unbound: list[tuple[Obj, Obj]] = []
        for name in names:
            claim = self.listers.claims.get(namespace, name)
            if claim is None:
                return Status.unschedulable(f'persistentvolumeclaim "{name}" not found', resolvable=False)
            if (claim.get("metadata") or {}).get("deletionTimestamp"):
                return Status.unschedulable(
                    f'persistentvolumeclaim "{name}" is being deleted', resolvable=False
                )
            volume_name = (claim.get("spec") or {}).get("volumeName")
            if volume_name:
                pv = self.listers.volumes.get(None, str(volume_name))
                if pv is None:
                    return Status.unschedulable(ERR_PV_NOT_EXIST, resolvable=False)
                bound.append((claim, pv))
                continue
            storage_class = self.listers.classes.get(
                None, str((claim.get("spec") or {}).get("storageClassName") or "")
            )
            if storage_class is None or storage_class.get("volumeBindingMode") != "WaitForFirstConsumer":
                return Status.unschedulable(ERR_UNBOUND_IMMEDIATE, resolvable=False)
            unbound.append((claim, storage_class))
        # The PVs a static binding could use, read once per cycle rather than once per node.
        class_names = {(c.get("spec") or {}).get("storageClassName") or "" for c, _ in unbound}
        candidates = [
            pv
            for pv in (self.listers.volumes.list() if unbound else ())
            if ((pv.get("spec") or {}).get("storageClassName") or "") in class_names
        ]
        state.write(STATE_KEY, _State(bound, unbound, candidates))
        return SUCCESS

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status:
        try:
            st: _State = state.read(STATE_KEY)  # type: ignore[assignment]
        except KeyError:
            return SUCCESS
        reasons: list[str] = []
        if any(not pv_fits(pv, node) for _, pv in st.bound):
            reasons.append(ERR_NODE_CONFLICT)
        decision = self._find_unbound(st.unbound, st.candidates, node)
        if decision is None:
            reasons.append(ERR_BIND_CONFLICT)
        if reasons:
            return Status.unschedulable(*reasons, resolvable=False)
        st.by_node[node.name] = decision or PodVolumes()
        return SUCCESS

    def _find_unbound(
        self, unbound: list[tuple[Obj, Obj]], volumes: list[Obj], node: NodeInfo
    ) -> PodVolumes | None:
        """A static PV or provisioning for each unbound claim on ``node``; None when one has neither."""
        if not unbound:
            return PodVolumes()
        assert self.listers is not None
        taken: set[str] = set()
        static: list[tuple[Obj, Obj]] = []
        provision: list[Obj] = []
        for claim, storage_class in unbound:
            selected = ((claim.get("metadata") or {}).get("annotations") or {}).get(SELECTED_NODE_ANN)
            if selected:  # provisioning already asked for on a node: only that node will do
                if selected != node.name:
                    return None
                provision.append(claim)
                continue
            class_name = str((storage_class.get("metadata") or {}).get("name", ""))
            pv = self._best_pv(volumes, claim, class_name, node, taken)
            if pv is not None:
                taken.add(str(pv["metadata"]["name"]))
                static.append((claim, pv))
            elif self._can_provision(storage_class, node):
                provision.append(claim)
            else:
                return None
        return PodVolumes(tuple(static), tuple(provision))

    def _best_pv(
        self, volumes: Iterable[Obj], claim: Obj, class_name: str, node: NodeInfo, taken: set[str]
    ) -> Obj | None:
        """The smallest matching PV that admits the node; one pre-bound to the claim wins outright."""
        key = claim_key(claim)
        best: Obj | None = None
        for pv in volumes:
            name = str(pv["metadata"]["name"])
            if name in taken or self.assumed.get(name, key) != key:
                continue
            if not pv_matches_claim(pv, claim, class_name) or not pv_fits(pv, node):
                continue
            if (pv.get("spec") or {}).get("claimRef"):
                return pv
            if best is None or _storage(pv, "capacity") < _storage(best, "capacity"):
                best = pv
        return best

    def _can_provision(self, storage_class: Obj, node: NodeInfo) -> bool:
        provisioner = str(storage_class.get("provisioner") or "")
        if not provisioner or provisioner == NO_PROVISIONER:
            return False
        assert self.listers is not None
        csinode = self.listers.csinodes.get(None, node.name) or {}
        if not any(d.get("name") == provisioner for d in (csinode.get("spec") or {}).get("drivers") or ()):
            return False
        terms = storage_class.get("allowedTopologies") or []
        return not terms or any(
            all(
                node.labels.get(str(e.get("key"))) in [str(v) for v in e.get("values") or ()]
                for e in term.get("matchLabelExpressions") or ()
            )
            for term in terms
        )

    # -- Reserve / Unreserve / PreBind -------------------------------------------------------------

    def reserve(self, state: CycleState, pod: Obj, node_name: str) -> Status:
        if STATE_KEY not in state:
            return SUCCESS
        st: _State = state.read(STATE_KEY)  # type: ignore[assignment]
        chosen = st.by_node.get(node_name)
        if chosen is None:
            return Status.error(f"no volume decision was made for node {node_name}")
        for claim, pv in chosen.static:
            self.assumed[str(pv["metadata"]["name"])] = claim_key(claim)
        st.chosen = chosen
        return SUCCESS

    def unreserve(self, state: CycleState, pod: Obj, node_name: str) -> None:
        if STATE_KEY not in state:
            return
        st: _State = state.read(STATE_KEY)  # type: ignore[assignment]
        for claim, pv in st.chosen.static if st.chosen else ():
            if self.assumed.get(str(pv["metadata"]["name"])) == claim_key(claim):
                del self.assumed[str(pv["metadata"]["name"])]
        st.chosen = None
        state.delete(WORK_KEY)

    def forget_bound(self, claims: Iterable[str]) -> None:
        """The shell saw these claims Bound: their PVs need no assumption any more."""
        done = set(claims)
        for pv_name in [pv for pv, key in self.assumed.items() if key in done]:
            del self.assumed[pv_name]

    def pre_bind(self, state: CycleState, pod: Obj, node_name: str) -> Status:
        if STATE_KEY not in state:
            return SUCCESS
        st: _State = state.read(STATE_KEY)  # type: ignore[assignment]
        chosen = st.chosen or PodVolumes()
        if not st.unbound:
            return SUCCESS  # every claim bound already
        keys = tuple(claim_key(c) for c, _ in st.unbound)
        state.write(WORK_KEY, BindingWork(node_name, chosen.static, chosen.provision, keys))
        return SUCCESS


def recorded_work(state: CycleState | None) -> BindingWork | None:
    """The volume work PreBind left for the shell, if any."""
    if state is None or WORK_KEY not in state:
        return None
    work = state.read(WORK_KEY)
    return work if isinstance(work, BindingWork) else None


def new(args: dict[str, Any] | None, handle: object) -> VolumeBinding:
    """Factory for the registry; the listers come later through ``set_volume_listers``."""
    return VolumeBinding()
