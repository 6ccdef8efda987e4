"""Pure: the grammar of every spec value that becomes part of a file, a file name, a znode, an
nftables rule or a command line.

Each ``*_reason`` function returns None for a value that may be written as it is, or a short
reason why not; ``normal_url`` and ``normal_zk_hosts`` also return the value re-serialised
from its parsed parts, which is what the spec then holds. The grammars are deliberately
narrower than what each consumer accepts: a value that keepalived.conf, nft, a properties file,
a znode path and a shell-free argv all take as one plain token cannot break out of any of them.

- cluster, node and group names: 1-63 of a-z 0-9 '-', first and last a letter or digit (a
  DNS label, so also a hostname, a znode name, a file name and a keepalived token);
- interface: 1-15 bytes (IFNAMSIZ - 1) of A-Z a-z 0-9 '_' '.' '-', not starting with '.'/'-';
- URL: http or https, a host (IPv4 address or DNS name), an optional port, a path and query of
  RFC 3986 characters without quotes, '!', '$', '#', braces, backslash or whitespace;
- host: an IPv4 address or a DNS name; ZooKeeper hosts: host:port joined by ',';
- user: 1-32 of A-Z a-z 0-9 '_' '.' '-', first a letter, digit or '_' (MySQL's length);
- identifier (MyCat cluster_id): 1-63 of A-Z a-z 0-9 '_' '.' '-', first a letter, digit, '_';
- znode path (chroot, MyCat root): '/' then identifiers joined by '/';
- environment variable: A-Z a-z 0-9 '_', not starting with a digit;
- file path (credential file): A-Z a-z 0-9 and '_./@+=:,-', no '..' component.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

NAME_RULE = "1-63 of a-z, 0-9 and '-', starting and ending with a letter or digit"
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_INTERFACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")
_IDENTIFIER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# RFC 3986 unreserved, '%' escapes and the delimiters a health URL's path and query need;
# left out on purpose: quotes, '!' and '#' (keepalived comments), '$' (keepalived's
# parameter substitution), braces, backslash, whitespace, '(' ')' '*' ';' "'".
_URL_TAIL = re.compile(r"(?:[A-Za-z0-9._~/:@&=+,-]|%[0-9A-Fa-f]{2})*")
_PATH = re.compile(r"[A-Za-z0-9_./@+=:,-]{1,1024}")


def name_reason(value: str) -> str | None:
    """Cluster, node and VRRP group names (and so MyCat myids)."""
    return None if _NAME.fullmatch(value) else f"must be {NAME_RULE}"


def interface_reason(value: str) -> str | None:
    """A Linux interface name as the kernel takes it (dev_valid_name), narrowed to a charset
    that nft, keepalived and ip(8) all read as one plain word."""
    if value in (".", "..") or not _INTERFACE.fullmatch(value):
        return ("must be an interface name: 1-15 of letters, digits, '_', '.' and '-', "
                "not starting with '.' or '-'")
    return None


def identifier_reason(value: str) -> str | None:
    if value in (".", "..") or not _IDENTIFIER.fullmatch(value):
        return ("must be a name of letters, digits, '_', '.' or '-' (1-63, starting with a "
                "letter, digit or '_')")
    return None


def user_reason(value: str) -> str | None:
    if not _USER.fullmatch(value):
        return "must be a user name: 1-32 of letters, digits, '_', '.' and '-'"
    return None


def env_name_reason(value: str) -> str | None:
    return None if _ENV.fullmatch(value) else \
        "must be an environment variable name (letters, digits and '_')"


def file_path_reason(value: str) -> str | None:
    if not _PATH.fullmatch(value) or ".." in value.split("/"):
        return ("must be a path of letters, digits and '_./@+=:,-' (no whitespace, quotes "
                "or '..')")
    return None


def host_reason(value: str) -> str | None:
    """An IPv4 address or a DNS name (what a probe connects to)."""
    try:
        ipaddress.IPv4Address(value)
        return None
    except ValueError:
        pass
    labels = value[:-1].split(".") if value.endswith(".") else value.split(".")
    if len(value) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels) \
            or labels[-1].isdigit():
        return "must be an IPv4 address or a DNS name"
    return None


def znode_path_reason(value: str) -> str | None:
    """An absolute znode path of identifiers: no '.', '..', empty or control components."""
    parts = value.split("/")
    if parts[0] != "" or len(parts) < 2 or any(identifier_reason(p) for p in parts[1:]):
        return "must be '/' and names of letters, digits, '_', '.' and '-' joined by '/'"
    return None


def normal_url(value: str) -> tuple[str | None, str | None]:
    """(the URL re-serialised from its parts, None) or (None, why it is refused)."""
    if not value.isascii() or any(not c.isprintable() or c.isspace() for c in value):
        return None, "must be a URL without whitespace or control characters"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        return None, f"is not a URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return None, "must be an http:// or https:// URL"
    if parts.username is not None or parts.password is not None:
        return None, "must not carry a user or password"
    host = parts.hostname or ""
    if not host or host_reason(host):
        return None, "must name a host (an IPv4 address or a DNS name)"
    if parts.fragment or "#" in value:
        return None, "must not have a fragment ('#')"
    if not _URL_TAIL.fullmatch(parts.path) or not _URL_TAIL.fullmatch(parts.query):
        return None, ("path and query may hold only letters, digits, '%XX' and "
                      "'._~/:@&=+,-'")
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), None


def normal_zk_hosts(value: str) -> tuple[str | None, str | None]:
    """``host:port[,host:port...]`` re-serialised, or why it is refused."""
    out = []
    for entry in value.split(","):
        host, sep, port = entry.strip().rpartition(":")
        if not sep:
            host, port = entry.strip(), "2181"
        if host_reason(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
            return None, (f"'{_shown(entry)}' is not host:port (an IPv4 address or DNS name, "
                          "a port 1-65535)")
        out.append(f"{host}:{int(port)}")
    return ",".join(out), None


def _shown(value: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value.strip())
