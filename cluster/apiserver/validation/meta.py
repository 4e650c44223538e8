"""ObjectMeta, labels, annotations and label selectors, as apimachinery validates them.

`validate_object_meta` is run for every kind (unknown kinds get nothing else); `name_rule` says which
name syntax the kind uses. `validate_object_meta_update` adds the identity fields that never change.
`selector_matches` evaluates a LabelSelector dict against a label map (used by the apps checks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cluster.apiserver.validation import names
from cluster.apiserver.validation.fields import (
    Cause,
    GoLiteral,
    as_dict,
    as_list,
    child,
    forbidden,
    go_quote,
    immutable,
    index,
    invalid,
    nonnegative,
    required,
    too_long,
)

NameRule = Callable[[str, bool], list[str]]
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
_STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})


def validate_labels(labels: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for k, v in as_dict(labels).items():
        causes.extend(invalid(path, k, msg) for msg in names.qualified_name(str(k)))
        if not isinstance(v, str):
            causes.append(invalid(path, v, "label values must be strings"))
            continue
        causes.extend(invalid(path, v, msg) for msg in names.label_value(v))
    return causes


def validate_annotations(annotations: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    total = 0
    for k, v in as_dict(annotations).items():
        causes.extend(invalid(path, k, msg) for msg in names.qualified_name(str(k).lower()))
        total += len(str(k)) + len(str(v))
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def validate_finalizers(finalizers: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for f in as_list(finalizers):
        name = str(f)
        msgs = names.qualified_name(name)
        causes.extend(invalid(path, name, msg) for msg in msgs)
        if not msgs and "/" not in name and name not in _STANDARD_FINALIZERS:
            causes.append(
                invalid(path, name, "name is neither a standard finalizer name nor is it fully qualified")
            )
    return causes


def validate_owner_references(refs: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    controllers: list[str] = []
    for ref in as_list(refs):
        r = as_dict(ref)
        if not r.get("apiVersion"):
            causes.append(invalid(path, r.get("apiVersion", ""), "version must not be empty"))
        if not r.get("kind"):
            causes.append(invalid(path, r.get("kind", ""), "kind must not be empty"))
        if not r.get("name"):
            causes.append(invalid(path, r.get("name", ""), "name must not be empty"))
        if not r.get("uid"):
            causes.append(invalid(path, r.get("uid", ""), "uid must not be empty"))
        if r.get("controller") is True:
            controllers.append(str(r.get("name", "")))
    if len(controllers) > 1:
        joined = ", ".join(controllers)
        causes.append(
            invalid(
                path,
                GoLiteral(f"[]v1.OwnerReference{{{len(refs)} items}}"),
                "Only one reference can have Controller set to true. "
                f'Found "true" in references for {joined}',
            )
        )
    return causes


def validate_object_meta(obj: Mapping[str, Any], namespaced: bool, name_rule: NameRule) -> list[Cause]:
    """ValidateObjectMetaAccessor for a new object (path "metadata")."""
    meta = as_dict(obj.get("metadata"))
    causes: list[Cause] = []
    generate_name = meta.get("generateName") or ""
    if generate_name:
        causes.extend(
            invalid("metadata.generateName", generate_name, msg) for msg in name_rule(generate_name, True)
        )
    name = meta.get("name") or ""
    if not name:
        causes.append(required("metadata.name", "name or generateName is required"))
    else:
        causes.extend(invalid("metadata.name", name, msg) for msg in name_rule(str(name), False))
    namespace = meta.get("namespace") or ""
    if namespaced:
        if not namespace:
            causes.append(required("metadata.namespace"))
        else:
            causes.extend(invalid("metadata.namespace", namespace, m) for m in names.label_name(namespace))
    elif namespace:
        causes.append(forbidden("metadata.namespace", "not allowed on this type"))
    causes += nonnegative(meta.get("generation"), "metadata.generation")
    causes += validate_labels(meta.get("labels"), "metadata.labels")
    causes += validate_annotations(meta.get("annotations"), "metadata.annotations")
    causes += validate_owner_references(meta.get("ownerReferences"), "metadata.ownerReferences")
    causes += validate_finalizers(meta.get("finalizers"), "metadata.finalizers")
    return causes


_IMMUTABLE_META = ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp")


def validate_object_meta_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    """ValidateObjectMetaUpdate. resourceVersion preconditions are the registry's business."""
    nm, om = as_dict(new.get("metadata")), as_dict(old.get("metadata"))
    causes: list[Cause] = []
    if om.get("deletionTimestamp"):
        added = [f for f in as_list(nm.get("finalizers")) if f not in as_list(om.get("finalizers"))]
        if added:
            listed = ", ".join(go_quote(str(f)) for f in added)
            causes.append(
                forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted, "
                    f"found new finalizers []string{{{listed}}}",
                )
            )
    new_gen, old_gen = nm.get("generation") or 0, om.get("generation") or 0
    if isinstance(new_gen, int) and isinstance(old_gen, int) and new_gen < old_gen:
        causes.append(invalid("metadata.generation", new_gen, "must not be decremented"))
    for field in _IMMUTABLE_META:
        # Absent identity fields on the new object are filled in from the old one by the registry.
        if field in nm and nm.get(field) != om.get(field):
            causes.append(immutable(child("metadata", field), nm.get(field) or ""))
    causes += validate_labels(nm.get("labels"), "metadata.labels")
    causes += validate_annotations(nm.get("annotations"), "metadata.annotations")
    causes += validate_owner_references(nm.get("ownerReferences"), "metadata.ownerReferences")
    causes += validate_finalizers(nm.get("finalizers"), "metadata.finalizers")
    return causes


_SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(selector: Any, path: str) -> list[Cause]:
    sel = as_dict(selector)
    causes: list[Cause] = []
    for i, expr in enumerate(as_list(sel.get("matchExpressions"))):
        e, p = as_dict(expr), index(child(path, "matchExpressions"), i)
        op, values = e.get("operator", ""), as_list(e.get("values"))
        if op in ("In", "NotIn"):
            if not values:
                causes.append(
                    required(child(p, "values"), "must be specified when `operator` is 'In' or 'NotIn'")
                )
        elif op in ("Exists", "DoesNotExist"):
            if values:
                causes.append(
                    forbidden(
                        child(p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            causes.append(invalid(child(p, "operator"), op, "not a valid selector operator"))
        causes.extend(
            invalid(child(p, "key"), e.get("key", ""), m) for m in names.qualified_name(str(e.get("key", "")))
        )
        for j, v in enumerate(values):
            causes.extend(invalid(index(child(p, "values"), j), v, m) for m in names.label_value(str(v)))
    causes += validate_labels(sel.get("matchLabels"), child(path, "matchLabels"))
    return causes


def selector_is_empty(selector: Any) -> bool:
    sel = as_dict(selector)
    return not as_dict(sel.get("matchLabels")) and not as_list(sel.get("matchExpressions"))


def selector_matches(selector: Any, labels: Any) -> bool:
    """LabelSelectorAsSelector(selector).Matches(labels); a nil selector matches nothing."""
    if selector is None:
        return False
    sel, lab = as_dict(selector), as_dict(labels)
    if any(lab.get(k) != v for k, v in as_dict(sel.get("matchLabels")).items()):
        return False
    for expr in as_list(sel.get("matchExpressions")):
        e = as_dict(expr)
        k, op, values = str(e.get("key", "")), e.get("operator"), as_list(e.get("values"))
        if op == "In" and lab.get(k) not in values:
            return False
        if op == "NotIn" and k in lab and lab[k] in values:
            return False
        if op == "Exists" and k not in lab:
            return False
        if op == "DoesNotExist" and k in lab:
            return False
    return True


def selector_literal(selector: Any) -> GoLiteral:
    """How Go prints a *metav1.LabelSelector value inside an "Invalid value" message."""
    sel = as_dict(selector)
    labels = as_dict(sel.get("matchLabels"))
    ml = (
        "map[string]string{"
        + ", ".join(f"{go_quote(k)}:{go_quote(str(v))}" for k, v in sorted(labels.items()))
        + "}"
        if labels
        else "map[string]string(nil)"
    )
    exprs = as_list(sel.get("matchExpressions"))
    if exprs:
        parts = []
        for expr in exprs:
            e = as_dict(expr)
            vals = ", ".join(go_quote(str(v)) for v in as_list(e.get("values")))
            vals_text = f"[]string{{{vals}}}" if e.get("values") else "[]string(nil)"
            parts.append(
                f"v1.LabelSelectorRequirement{{Key:{go_quote(str(e.get('key', '')))}, "
                f"Operator:{go_quote(str(e.get('operator', '')))}, Values:{vals_text}}}"
            )
        me = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    else:
        me = "[]v1.LabelSelectorRequirement(nil)"
    return GoLiteral(f"v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{me}}}")
