"""String syntax checks from apimachinery's util/validation: each returns a list of messages.

An empty list means valid. The message texts are Kubernetes' own (`RegexError`, `MaxLenError`, ...),
so a caller wraps each in `invalid(path, value, msg)` to get the exact cause Kubernetes reports.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = _LABEL_FMT + "(\\." + _LABEL_FMT + ")*"
_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_ENV_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_C_IDENT_FMT = "[A-Za-z_][A-Za-z0-9_]*"

_LABEL_RE = re.compile(f"^{_LABEL_FMT}$")
_SUBDOMAIN_RE = re.compile(f"^{_SUBDOMAIN_FMT}$")
_DNS1035_RE = re.compile(f"^{_DNS1035_FMT}$")
_QNAME_RE = re.compile(f"^{_QNAME_FMT}$")
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_CONFIG_KEY_RE = re.compile(f"^{_CONFIG_KEY_FMT}$")
_ENV_NAME_RE = re.compile(f"^{_ENV_NAME_FMT}$")
_C_IDENT_RE = re.compile(f"^{_C_IDENT_FMT}$")
_PORT_NAME_CHARSET_RE = re.compile("^[-a-z0-9]+$")

LABEL_MAX = 63
SUBDOMAIN_MAX = 253
QNAME_MAX = 63


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery's RegexError, including its "'a',  or 'b'," example spacing."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    parts = "".join((" or " if i else "") + f"'{ex}', " for i, ex in enumerate(examples))
    return f"{msg} (e.g. {parts}regex used for validation is '{fmt}')"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)
_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)


def dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > LABEL_MAX:
        errs.append(max_len_error(LABEL_MAX))
    if not _LABEL_RE.match(value):
        errs.append(regex_error(DNS1123_LABEL_MSG, _LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > SUBDOMAIN_MAX:
        errs.append(max_len_error(SUBDOMAIN_MAX))
    if not _SUBDOMAIN_RE.match(value):
        errs.append(regex_error(DNS1123_SUBDOMAIN_MSG, _SUBDOMAIN_FMT, "example.com"))
    return errs


def dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > LABEL_MAX:
        errs.append(max_len_error(LABEL_MAX))
    if not _DNS1035_RE.match(value):
        errs.append(regex_error(DNS1035_LABEL_MSG, _DNS1035_FMT, "my-name", "abc-123"))
    return errs


def _mask_trailing_dash(name: str) -> str:
    # A generateName prefix may end in "-": the server appends random characters after it.
    return name[:-2] + "a" if len(name) > 1 and name.endswith("-") else name


def subdomain_name(name: str, prefix: bool = False) -> list[str]:
    """NameIsDNSSubdomain: the rule for most object names (and generateName prefixes)."""
    return dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def label_name(name: str, prefix: bool = False) -> list[str]:
    """NameIsDNSLabel: namespaces and a few other kinds."""
    return dns1123_label(_mask_trailing_dash(name) if prefix else name)


def dns1035_name(name: str, prefix: bool = False) -> list[str]:
    """NameIsDNS1035Label: Services."""
    return dns1035_label(_mask_trailing_dash(name) if prefix else name)


def path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """ValidatePathSegmentName: RBAC objects may hold ':' but never '/', '%', '.' or '..'."""
    errs = []
    if not prefix and name in (".", ".."):
        errs.append(f"may not be '{name}'")
    for bad in ("/", "%"):
        if bad in name:
            errs.append(f"may not contain '{bad}'")
    return errs


def qualified_name(value: str) -> list[str]:
    """IsQualifiedName: label keys, annotation keys, finalizers, resource names."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain(prefix))
    else:
        example = regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
        return [
            f"a qualified name {example} with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > QNAME_MAX:
        errs.append("name part " + max_len_error(QNAME_MAX))
    if not _QNAME_RE.match(name):
        errs.append("name part " + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def label_value(value: str) -> list[str]:
    errs = []
    if len(value) > LABEL_MAX:
        errs.append(max_len_error(LABEL_MAX))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def config_map_key(value: str) -> list[str]:
    errs = []
    if len(value) > SUBDOMAIN_MAX:
        errs.append(max_len_error(SUBDOMAIN_MAX))
    if not _CONFIG_KEY_RE.match(value):
        msg = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
        errs.append(regex_error(msg, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    return errs + _chdir_prefix(value)


def env_var_name(value: str) -> list[str]:
    errs = []
    if not _ENV_NAME_RE.match(value):
        msg = (
            "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
            "or '.', and must not start with a digit"
        )
        errs.append(regex_error(msg, _ENV_NAME_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    return errs + _chdir_prefix(value)


def c_identifier(value: str) -> list[str]:
    if _C_IDENT_RE.match(value):
        return []
    msg = (
        "a valid C identifier must start with alphabetic character or '_', "
        "followed by a string of alphanumeric characters or '_'"
    )
    return [regex_error(msg, _C_IDENT_FMT, "my_name", "MY_NAME", "MyName")]


def port_num(port: object) -> list[str]:
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return []
    return [inclusive_range_error(1, 65535)]


def port_name(port: str) -> list[str]:
    errs = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not _PORT_NAME_CHARSET_RE.match(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def ip_address(value: str) -> list[str]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def ip_family(cidr: str) -> int | None:
    """4 or 6 for a CIDR, None when it does not parse."""
    try:
        return ipaddress.ip_network(cidr, strict=False).version
    except ValueError:
        return None


def cidr(value: str) -> list[str]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return []
