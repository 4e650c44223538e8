from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RuntimeConf(_message.Message):
    __slots__ = ("container_id", "netns", "ifname", "args", "runtime_config", "network_config")
    class ArgsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    NETNS_FIELD_NUMBER: _ClassVar[int]
    IFNAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_CONFIG_FIELD_NUMBER: _ClassVar[int]
    NETWORK_CONFIG_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    netns: str
    ifname: str
    args: _containers.ScalarMap[str, str]
    runtime_config: bytes
    network_config: bytes
    def __init__(self, container_id: _Optional[str] = ..., netns: _Optional[str] = ..., ifname: _Optional[str] = ..., args: _Optional[_Mapping[str, str]] = ..., runtime_config: _Optional[bytes] = ..., network_config: _Optional[bytes] = ...) -> None: ...

class Attachment(_message.Message):
    __slots__ = ("container_id", "ifname")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    IFNAME_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    ifname: str
    def __init__(self, container_id: _Optional[str] = ..., ifname: _Optional[str] = ...) -> None: ...

class Interface(_message.Message):
    __slots__ = ("name", "mac", "mtu", "sandbox", "socket_path", "pci_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    SOCKET_PATH_FIELD_NUMBER: _ClassVar[int]
    PCI_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    mac: str
    mtu: int
    sandbox: str
    socket_path: str
    pci_id: str
    def __init__(self, name: _Optional[str] = ..., mac: _Optional[str] = ..., mtu: _Optional[int] = ..., sandbox: _Optional[str] = ..., socket_path: _Optional[str] = ..., pci_id: _Optional[str] = ...) -> None: ...

class IPConfig(_message.Message):
    __slots__ = ("address", "gateway", "interface")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    address: str
    gateway: str
    interface: int
    def __init__(self, address: _Optional[str] = ..., gateway: _Optional[str] = ..., interface: _Optional[int] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("dst", "gw", "mtu", "advmss", "priority", "table", "scope")
    DST_FIELD_NUMBER: _ClassVar[int]
    GW_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    ADVMSS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    dst: str
    gw: str
    mtu: int
    advmss: int
    priority: int
    table: int
    scope: str
    def __init__(self, dst: _Optional[str] = ..., gw: _Optional[str] = ..., mtu: _Optional[int] = ..., advmss: _Optional[int] = ..., priority: _Optional[int] = ..., table: _Optional[int] = ..., scope: _Optional[str] = ...) -> None: ...

class DNS(_message.Message):
    __slots__ = ("nameservers", "domain", "search", "options")
    NAMESERVERS_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    nameservers: _containers.RepeatedScalarFieldContainer[str]
    domain: str
    search: _containers.RepeatedScalarFieldContainer[str]
    options: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, nameservers: _Optional[_Iterable[str]] = ..., domain: _Optional[str] = ..., search: _Optional[_Iterable[str]] = ..., options: _Optional[_Iterable[str]] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("cni_version", "interfaces", "ips", "routes", "dns")
    CNI_VERSION_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    IPS_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    DNS_FIELD_NUMBER: _ClassVar[int]
    cni_version: str
    interfaces: _containers.RepeatedCompositeFieldContainer[Interface]
    ips: _containers.RepeatedCompositeFieldContainer[IPConfig]
    routes: _containers.RepeatedCompositeFieldContainer[Route]
    dns: DNS
    def __init__(self, cni_version: _Optional[str] = ..., interfaces: _Optional[_Iterable[_Union[Interface, _Mapping]]] = ..., ips: _Optional[_Iterable[_Union[IPConfig, _Mapping]]] = ..., routes: _Optional[_Iterable[_Union[Route, _Mapping]]] = ..., dns: _Optional[_Union[DNS, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("cni_version", "code", "msg", "details")
    CNI_VERSION_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MSG_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    cni_version: str
    code: int
    msg: str
    details: str
    def __init__(self, cni_version: _Optional[str] = ..., code: _Optional[int] = ..., msg: _Optional[str] = ..., details: _Optional[str] = ...) -> None: ...

class AddRequest(_message.Message):
    __slots__ = ("conf",)
    CONF_FIELD_NUMBER: _ClassVar[int]
    conf: RuntimeConf
    def __init__(self, conf: _Optional[_Union[RuntimeConf, _Mapping]] = ...) -> None: ...

class AddResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: Result
    def __init__(self, result: _Optional[_Union[Result, _Mapping]] = ...) -> None: ...

class DelRequest(_message.Message):
    __slots__ = ("conf", "prev_result")
    CONF_FIELD_NUMBER: _ClassVar[int]
    PREV_RESULT_FIELD_NUMBER: _ClassVar[int]
    conf: RuntimeConf
    prev_result: Result
    def __init__(self, conf: _Optional[_Union[RuntimeConf, _Mapping]] = ..., prev_result: _Optional[_Union[Result, _Mapping]] = ...) -> None: ...

class DelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("conf", "prev_result")
    CONF_FIELD_NUMBER: _ClassVar[int]
    PREV_RESULT_FIELD_NUMBER: _ClassVar[int]
    conf: RuntimeConf
    prev_result: Result
    def __init__(self, conf: _Optional[_Union[RuntimeConf, _Mapping]] = ..., prev_result: _Optional[_Union[Result, _Mapping]] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("network_config",)
    NETWORK_CONFIG_FIELD_NUMBER: _ClassVar[int]
    network_config: bytes
    def __init__(self, network_config: _Optional[bytes] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GCRequest(_message.Message):
    __slots__ = ("valid_attachments", "network_config")
    VALID_ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_CONFIG_FIELD_NUMBER: _ClassVar[int]
    valid_attachments: _containers.RepeatedCompositeFieldContainer[Attachment]
    network_config: bytes
    def __init__(self, valid_attachments: _Optional[_Iterable[_Union[Attachment, _Mapping]]] = ..., network_config: _Optional[bytes] = ...) -> None: ...

class GCResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionResponse(_message.Message):
    __slots__ = ("cni_version", "supported_versions", "plugin", "node_network")
    CNI_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    NODE_NETWORK_FIELD_NUMBER: _ClassVar[int]
    cni_version: str
    supported_versions: _containers.RepeatedScalarFieldContainer[str]
    plugin: str
    node_network: bool
    def __init__(self, cni_version: _Optional[str] = ..., supported_versions: _Optional[_Iterable[str]] = ..., plugin: _Optional[str] = ..., node_network: _Optional[bool] = ...) -> None: ...
