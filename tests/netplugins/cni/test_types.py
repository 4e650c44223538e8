"""The CNI data model: results and errors round-trip through the spec's JSON and the gRPC messages."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplugins.cni import cni_pb2
from netplugins.cni.types import (
    DNS,
    CNIError,
    DecodingFailure,
    Interface,
    InvalidEnvironment,
    IPConfig,
    NetRequest,
    PluginNotAvailable,
    Result,
    Route,
    UnknownContainer,
    format_cni_args,
    parse_cni_args,
)

names = st.text("abcdefghij0123456789-", min_size=1, max_size=12)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4, st.integers(8, 32)).map(lambda t: "{}.{}.{}.{}/{}".format(*t))
results = st.builds(
    Result,
    cni_version=st.sampled_from(["0.4.0", "1.0.0", "1.1.0"]),
    interfaces=st.lists(
        st.builds(
            Interface,
            names,
            mac=st.just("aa:bb:cc:dd:ee:ff"),
            mtu=st.integers(0, 9000),
            sandbox=st.sampled_from(["", "/proc/1/ns/net"]),
        ),
        max_size=3,
    ).map(tuple),
    ips=st.lists(
        st.builds(
            IPConfig,
            ipv4,
            gateway=st.sampled_from(["", "10.0.0.1"]),
            interface=st.one_of(st.none(), st.integers(0, 2)),
        ),
        max_size=3,
    ).map(tuple),
    routes=st.lists(st.builds(Route, ipv4, gw=st.sampled_from(["", "10.0.0.1"])), max_size=3).map(tuple),
    dns=st.builds(
        DNS,
        st.lists(st.sampled_from(["10.96.0.10", "1.1.1.1"]), max_size=2).map(tuple),
        st.sampled_from(["", "cluster.local"]),
    ),
)


@given(results)
def test_result_round_trips_through_json_and_proto(r: Result) -> None:
    assert Result.from_json(json.loads(r.dumps())) == r
    assert Result.from_proto(cni_pb2.Result.FromString(r.to_proto().SerializeToString())) == r


def test_result_json_is_the_spec_shape() -> None:
    r = Result(
        "1.0.0",
        interfaces=(Interface("eth0", mac="0a:58:0a:f4:01:05", sandbox="/run/netns/x"),),
        ips=(IPConfig("10.244.1.5/24", "10.244.1.1", 0),),
        routes=(Route("0.0.0.0/0"),),
    )
    assert r.to_json() == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:01:05", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0"}],
    }


def test_pod_ips_are_bare_addresses_ipv4_first() -> None:
    r = Result(ips=(IPConfig("fd00::5/64"), IPConfig("10.244.1.5/24")))
    assert r.pod_ips() == ["10.244.1.5", "fd00::5"]


def test_errors_come_back_as_their_subclass() -> None:
    err = CNIError.of(3, "no such container", "abc")
    assert isinstance(err, UnknownContainer) and err.code == 3
    again = CNIError.from_proto(cni_pb2.Error.FromString(err.to_proto().SerializeToString()))
    assert type(again) is UnknownContainer and (again.msg, again.details) == ("no such container", "abc")
    assert isinstance(CNIError.from_json({"code": 50, "msg": "x"}), PluginNotAvailable)
    custom = CNIError.from_json({"cniVersion": "1.0.0", "code": 117, "msg": "port taken"})
    assert type(custom) is CNIError and custom.code == 117
    assert custom.to_json() == {"cniVersion": "1.1.0", "code": 117, "msg": "port taken"}


def test_cni_args_parse_and_format() -> None:
    text = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"
    args = parse_cni_args(text)
    assert args["K8S_POD_NAME"] == "web-0"
    assert format_cni_args(args) == text
    assert parse_cni_args("") == {}
    with pytest.raises(InvalidEnvironment):
        parse_cni_args("K8S_POD_NAME")


def test_request_round_trips_and_rejects_bad_json() -> None:
    req = NetRequest(
        "c1",
        "/proc/9/ns/net",
        args={"K8S_POD_NAMESPACE": "ns", "K8S_POD_NAME": "p"},
        runtime_config={"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
    )
    back = NetRequest.from_proto(req.to_proto())
    assert back == req and back.pod == "ns/p" and back.port_mappings()[0]["hostPort"] == 8080
    with pytest.raises(DecodingFailure):
        NetRequest.from_proto(cni_pb2.RuntimeConf(container_id="c", runtime_config=b"{not json"))
    with pytest.raises(DecodingFailure):
        NetRequest.from_proto(cni_pb2.RuntimeConf(container_id="c", runtime_config=b"[1]"))
