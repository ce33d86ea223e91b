"""Parse ``--target HOST:PORT[/SNI]`` values and ``--targets-file`` lines.

Strict on purpose: a typo in a target must stop the scan with the offending text (and file:line),
not silently probe something else. IPv6 addresses need brackets (``[::1]:443``) because the last
colon is otherwise ambiguous. An SNI name must be a DNS name: RFC 6066 forbids IP literals there.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

from ..errors import InputFileError, UsageError
from ..model import Target

_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$")
FORMAT_HINT = "expected HOST:PORT or HOST:PORT/SNI (IPv6 as [ADDR]:PORT)"


def _check_port(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"port {text!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 1-65535")
    return port


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _split(text: str) -> Target:
    """Parse or raise ValueError with a reason."""
    if not text:
        raise ValueError("empty target")
    if any(c.isspace() for c in text):
        raise ValueError("target contains whitespace")
    hostport, slash, sni = text.partition("/")
    if slash and not sni:
        raise ValueError("empty SNI after '/'")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("missing ']' after IPv6 address")
        host = hostport[1:end]
        rest = hostport[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError("missing :PORT after ]")
        port_text = rest[1:]
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    else:
        host, colon, port_text = hostport.rpartition(":")
        if not colon:
            raise ValueError("missing :PORT")
        if ":" in host:
            raise ValueError("IPv6 addresses need brackets, e.g. [::1]:443")
        if not host:
            raise ValueError("missing host")
        if not _is_ip(host) and not _HOSTNAME_RE.match(host):
            raise ValueError(f"{host!r} is not a valid host name")
    port = _check_port(port_text)
    if sni:
        if _is_ip(sni) or sni.startswith("["):
            raise ValueError("SNI must be a DNS name, not an IP address")
        if not _HOSTNAME_RE.match(sni):
            raise ValueError(f"{sni!r} is not a valid SNI name")
    return Target(host=host, port=port, sni=sni or None)


def parse_target(text: str) -> Target:
    """``HOST:PORT[/SNI]`` (``[::1]:443/name`` for IPv6) -> Target; ``UsageError`` when malformed."""
    try:
        return _split(text.strip())
    except ValueError as e:
        raise UsageError(f"bad target {text!r}: {e} ({FORMAT_HINT})") from None


def parse_targets_file(path: str | os.PathLike[str]) -> list[Target]:
    """One target a line; ``#`` starts a comment; blank lines are skipped; duplicates dropped.

    A bad line raises ``UsageError`` naming ``file:line``; an unreadable file ``InputFileError``.
    """
    where = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        # Never the decoder's message: it quotes bytes of the file, which may be a DER key.
        reason = e.strerror if isinstance(e, OSError) and e.strerror else "not UTF-8 text"
        raise InputFileError(f"{where}: cannot read targets file: {reason}") from None
    if "-----BEGIN " in text:  # a certificate or key given by mistake: quoting its lines could leak a key
        raise InputFileError(f"{where}: this is a PEM file (certificate or key), not a targets file")
    targets: list[Target] = []
    seen: set[Target] = set()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            target = _split(line)
        except ValueError as e:
            raise UsageError(f"{where}:{lineno}: bad target {line!r}: {e} ({FORMAT_HINT})") from None
        if target not in seen:
            seen.add(target)
            targets.append(target)
    return targets
