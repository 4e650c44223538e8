"""The audit policy: first matching rule wins, kube's matching of users, groups, verbs, resources
(subresources, wildcards, names), namespaces and non-resource URLs; stage omission; bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.apiserver.audit_policy import AuditPolicyError, Level, load, parse
from cluster.apiserver.auth import request_info
from cluster.apiserver.auth.user import UserInfo

ALICE = UserInfo("alice", groups=("devs", "system:authenticated"))
PROXY = UserInfo("system:kube-proxy", groups=("system:authenticated",))

POLICY = """
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
  - level: None
    nonResourceURLs: ["/healthz*", "/version"]
  - level: Metadata
    resources:
      - group: ""
        resources: ["secrets", "*/status"]
  - level: RequestResponse
    omitStages: [ResponseStarted]
    resources:
      - group: ""
        resources: ["configmaps"]
  - level: Request
    userGroups: ["devs"]
    namespaces: ["team"]
  - level: Metadata
    resources:
      - group: apps
        resources: ["deployments"]
        resourceNames: ["web"]
      - group: ""
        resources: ["*/log", "services/*"]
  - level: Metadata
    omitManagedFields: true
    nonResourceURLs: ["*"]
"""


def config(
    method: str, path: str, user: UserInfo = ALICE, query: dict[str, str] | None = None
) -> tuple[str, set[str]]:
    policy = parse(POLICY)
    got = policy.evaluate(request_info.attributes(method, path, query or {}, user))
    return got.level.text, set(got.omit_stages)


@pytest.mark.parametrize(
    ("method", "path", "user", "query", "level"),
    [
        pytest.param("GET", "/api/v1/services", PROXY, {"watch": "true"}, "None", id="user-and-verb"),
        pytest.param("GET", "/api/v1/secrets", PROXY, None, "Metadata", id="user-other-verb-falls-through"),
        pytest.param("GET", "/healthz/etcd", ALICE, None, "None", id="nonresource-prefix"),
        pytest.param("GET", "/version", ALICE, None, "None", id="nonresource-exact"),
        pytest.param("GET", "/api/v1/namespaces/x/secrets/s", ALICE, None, "Metadata", id="secrets"),
        pytest.param(
            "GET", "/api/v1/namespaces/x/configmaps/c", ALICE, None, "RequestResponse", id="configmaps"
        ),
        pytest.param(
            "PUT", "/api/v1/namespaces/x/configmaps/c/status", ALICE, None, "Metadata", id="star-status"
        ),
        pytest.param(
            "POST", "/api/v1/namespaces/team/pods", ALICE, None, "Request", id="group-and-namespace"
        ),
        pytest.param("POST", "/api/v1/namespaces/team/pods", PROXY, None, "None", id="not-in-group"),
        pytest.param("GET", "/apis/apps/v1/namespaces/x/deployments/web", ALICE, None, "Metadata", id="name"),
        pytest.param(
            "GET", "/apis/apps/v1/namespaces/x/deployments/db", ALICE, None, "None", id="other-name"
        ),
        pytest.param(
            "GET", "/api/v1/namespaces/x/pods/p/log", ALICE, None, "Metadata", id="star-subresource"
        ),
        pytest.param("GET", "/api/v1/namespaces/x/pods/p", ALICE, None, "None", id="no-rule"),
        pytest.param(
            "GET", "/api/v1/namespaces/x/services/s", ALICE, None, "Metadata", id="resource-slash-star"
        ),
        pytest.param(
            "GET", "/api/v1/namespaces/x/services/s/proxy", ALICE, None, "Metadata", id="resource-sub"
        ),
        pytest.param("GET", "/apis", ALICE, None, "Metadata", id="nonresource-star"),
    ],
)
def test_first_matching_rule_wins(
    method: str, path: str, user: UserInfo, query: dict[str, str] | None, level: str
) -> None:
    assert config(method, path, user, query)[0] == level


def test_stages_omitted_by_policy_and_rule() -> None:
    assert config("GET", "/api/v1/namespaces/x/configmaps/c")[1] == {"RequestReceived", "ResponseStarted"}
    assert config("GET", "/api/v1/namespaces/x/secrets/s")[1] == {"RequestReceived"}


def test_omit_managed_fields_policy_wide_and_per_rule() -> None:
    policy = parse(POLICY)
    rule = policy.evaluate(request_info.attributes("GET", "/apis", {}, ALICE))
    other = policy.evaluate(request_info.attributes("GET", "/api/v1/namespaces/x/secrets/s", {}, ALICE))
    assert rule.omit_managed_fields and not other.omit_managed_fields
    assert Level.METADATA < Level.REQUEST < Level.REQUEST_RESPONSE


HEAD = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(HEAD + "rules:\n- level: Loud\n",
                     'rules[0].level: Unsupported value: "Loud": supported values: '
                     '"None", "Metadata", "Request", "RequestResponse"', id="level"),
        pytest.param(HEAD + "rules:\n- users: [a]\n", "rules[0].level: Required value", id="no-level"),
        pytest.param(HEAD + "omitStages: [Done]\nrules:\n- level: None\n",
                     'omitStages[0]: Unsupported value: "Done"', id="stage"),
        pytest.param(HEAD + "rules:\n- level: None\n  nonResourceURLs: [healthz]\n",
                     "non-resource URL rules must begin with a '/' character", id="url-slash"),
        pytest.param(HEAD + "rules:\n- level: None\n  nonResourceURLs: ['/a*b']\n",
                     "non-resource URL wildcards '*' must be the final character of the rule", id="url-star"),
        pytest.param(HEAD + "rules:\n- level: None\n  nonResourceURLs: ['/a']\n  namespaces: [x]\n",
                     "rules cannot apply to both regular resources and non-resource URLs", id="both"),
        pytest.param(HEAD + "rules:\n- level: None\n  resources: [{group: '', resourceNames: [a]}]\n",
                     "using resourceNames requires at least one resource", id="names-without-resources"),
        pytest.param(HEAD + "rules: []\n", "loaded illegal policy with 0 rules from file", id="no-rules"),
        pytest.param("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: []\n",
                     'no kind "Policy" is registered for version "audit.k8s.io/v1beta1"', id="version"),
    ],
)  # fmt: skip
def test_bad_policies_are_refused(text: str, message: str) -> None:
    with pytest.raises(AuditPolicyError) as err:
        parse(text)
    assert message in str(err.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AuditPolicyError, match="failed to read file path"):
        load(tmp_path / "policy.yaml")


def test_up_refuses_a_bad_policy_before_starting(tmp_path: Path) -> None:
    from cluster.security import security_options

    bad = tmp_path / "policy.yaml"
    bad.write_text(HEAD + "rules: []\n")
    with pytest.raises(ValueError, match=r"^--audit-policy-file: loaded illegal policy with 0 rules"):
        security_options(tmp_path / "pki", None, audit_policy_file=bad)
    bad.write_text(POLICY)
    options = security_options(tmp_path / "pki", None, audit_policy_file=bad, audit_log_path="-")
    assert options.audit_policy_file == "audit-policy.yaml" and options.audit_log_path == "-"
