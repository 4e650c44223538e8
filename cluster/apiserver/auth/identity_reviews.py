"""authentication.k8s.io reviews: SelfSubjectReview (``kubectl auth whoami``: who the request
authenticated as, after impersonation) and TokenReview (what a bearer token authenticates as, for
other components that accept the cluster's tokens; its audiences default to the API server's).

Both are create-only and stored nowhere; the answer is a 201 with the filled ``status``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cluster.apiserver.auth.authn import Authenticator
from cluster.apiserver.auth.user import UserInfo
from cluster.apiserver.errors import StatusError
from cluster.apiserver.request import Target, json_response, read_object

PLURALS = ("selfsubjectreviews", "tokenreviews")


async def serve(request: web.Request, target: Target, user: UserInfo, authn: Authenticator) -> web.Response:
    if request.method != "POST" or target.name:
        raise StatusError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )
    body = await read_object(request)
    if target.info.plural == "selfsubjectreviews":
        status: dict[str, Any] = {"userInfo": user.to_api()}
        spec = None
    else:
        spec = body.get("spec") or {}
        token = spec.get("token") or ""
        if not token:
            raise StatusError(400, "BadRequest", "token is required for TokenReview in authentication")
        answer = await authn.authenticate_token(token, spec.get("audiences") or None)
        status = {"authenticated": answer.user is not None, "user": {}}
        if answer.user is not None:
            status["user"] = answer.user.to_api()
            status["audiences"] = list(answer.audiences)
        if answer.error:
            status["error"] = answer.error
    out: dict[str, Any] = {
        "kind": target.info.kind,
        "apiVersion": target.info.api_version,
        "metadata": {"creationTimestamp": None},
    }
    if spec is not None:
        out["spec"] = spec
    out["status"] = status
    return json_response(out, 201)
