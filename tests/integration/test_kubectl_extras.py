"""Server-side field validation and service-account tokens through the real kubectl 1.33."""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.conftest import Kubectl

pytestmark = pytest.mark.integration

TYPO = """
apiVersion: v1
kind: Pod
metadata: {name: typo}
spec:
  containers: [{name: c, image: busybox, imagee: busybox}]
"""


def test_unknown_fields_are_refused_or_warned(kubectl: Kubectl) -> None:
    err = kubectl.fails("apply", "-f", "-", input=TYPO)
    assert 'strict decoding error: unknown field "spec.containers[0].imagee"' in err
    proc = kubectl.run("apply", "--validate=warn", "-f", "-", input=TYPO)
    assert 'Warning: unknown field "spec.containers[0].imagee"' in proc.stderr
    assert kubectl.out("get", "pod", "typo", "-o", "jsonpath={.spec.containers[0].image}") == "busybox"


def test_create_token_for_a_service_account(kubectl: Kubectl) -> None:
    kubectl.run("create", "serviceaccount", "robot")
    token = kubectl.out("create", "token", "robot", "--duration=20m").strip()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == f"system:serviceaccount:{kubectl.namespace}:robot"
    assert claims["exp"] - claims["iat"] == 1200
    err = kubectl.fails("create", "token", "nobody")
    assert 'serviceaccounts "nobody" not found' in err
