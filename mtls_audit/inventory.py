"""`mtls-audit certs`: what certificates, CRLs and keys are on disk, and which are about to bite.

Expiry is the mTLS outage nobody schedules: an expired client CA or server certificate, or a CRL
whose nextUpdate passed (Nginx then rejects *every* client certificate with "CRL has expired"),
takes a service down with nothing changed in the config. The inventory answers "what expires
when" for files and folders without needing an Nginx config, so it can run in cron or CI.

Rows are built from `certs.CertCache` facts and rendered by pure functions; only the CLI writes.
Private keys appear as type, size, encryption and file mode; their contents never reach a row.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from .certs import (
    CertCache,
    CertFacts,
    CrlFacts,
    FileFacts,
    KeyFacts,
    as_utc,
    days_until,
    weak_reasons,
)
from .model import SCHEMA_VERSION
from .render import safe_text

DEFAULT_WARN_DAYS = 30


class Role(enum.StrEnum):
    """What a row describes. `file` rows carry problems of a whole file (missing, unparseable)."""

    CA = "CA"
    LEAF = "leaf"
    CRL = "CRL"
    KEY = "key"
    FILE = "file"


@dataclass(frozen=True)
class InventoryItem:
    """One certificate, CRL or key, or one file-level problem."""

    path: str
    index: int | None
    """Position of the PEM block in the file; None for file rows."""
    role: Role
    subject: str | None = None
    issuer: str | None = None
    """For CRLs, the CA that issued the CRL."""
    serial: str | None = None
    sha256: str | None = None
    """Certificate or CRL fingerprint; never set for keys."""
    not_after: str | None = None
    """ISO 8601 UTC (`...Z`): notAfter for certificates, nextUpdate for CRLs."""
    days_left: int | None = None
    key_type: str | None = None
    key_size: int | None = None
    encrypted: bool | None = None
    mode: str | None = None
    """Octal permission bits of the file (`0600`)."""
    expired: bool = False
    """Past notAfter (certificates) or nextUpdate (CRLs)."""
    expiring: bool = False
    """Not expired, but within the warning window."""
    problems: tuple[str, ...] = ()

    @property
    def alert(self) -> bool:
        """What makes `certs` exit 1: something has expired or will within the window."""
        return self.expired or self.expiring


@dataclass(frozen=True)
class Inventory:
    """Everything one `certs` run found; renderers are functions of this alone."""

    items: tuple[InventoryItem, ...]
    inputs: tuple[str, ...]
    unusable_inputs: tuple[str, ...]
    """Inputs that are missing or could not be read at all; all of them unusable means exit 2."""
    warn_days: int
    generated_at: str

    @property
    def alert(self) -> bool:
        return any(item.alert for item in self.items)

    @property
    def nothing_readable(self) -> bool:
        return bool(self.inputs) and len(self.unusable_inputs) == len(self.inputs)

    def summary(self) -> dict[str, Any]:
        roles = [item.role for item in self.items]
        return {
            "inputs": len(self.inputs),
            "unusable_inputs": len(self.unusable_inputs),
            "files": len({item.path for item in self.items}),
            "certificates": roles.count(Role.CA) + roles.count(Role.LEAF),
            "cas": roles.count(Role.CA),
            "leaves": roles.count(Role.LEAF),
            "crls": roles.count(Role.CRL),
            "keys": roles.count(Role.KEY),
            "expired": sum(item.expired for item in self.items),
            "expiring": sum(item.expiring for item in self.items),
            "with_problems": sum(bool(item.problems) for item in self.items),
            "alert": self.alert,
        }


def exit_code(inventory: Inventory) -> int:
    """2 when no input could be read at all, 1 when something expired or expires soon, else 0.

    A missing path next to readable ones is a problem row, not exit 2: the inventory still ran
    and says what it could not see.
    """
    if inventory.nothing_readable:
        return 2
    return 1 if inventory.alert else 0


def iso_utc(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# Building


def build_inventory(
    paths: Sequence[str],
    *,
    warn_days: int = DEFAULT_WARN_DAYS,
    now: dt.datetime | None = None,
    cache: CertCache | None = None,
) -> Inventory:
    """Inventory every file under `paths`: files as given, folders recursively.

    Folders skip hidden sub-folders (`.git`) and files that hold nothing resembling trust material
    (READMEs, scripts); a file named explicitly is always listed, whatever it holds. Each real
    file appears once, however many symlinks lead to it (`/etc/ssl/certs` is mostly hash links).
    """
    now = as_utc(now or dt.datetime.now(dt.UTC))
    cache = CertCache() if cache is None else cache
    items: list[InventoryItem] = []
    unusable: list[str] = []
    seen: set[str] = set()

    def add(facts: FileFacts) -> None:
        if facts.realpath not in seen:
            seen.add(facts.realpath)
            items.extend(_file_items(facts, now, warn_days))

    for path in paths:
        if not os.path.isdir(path):
            facts = cache.get(path)
            if facts.error is not None:
                unusable.append(path)
            add(facts)
            continue
        found = False
        for file_path, error in _walk(path):
            if error is not None:
                if file_path == path:
                    unusable.append(path)
                items.append(InventoryItem(path=file_path, index=None, role=Role.FILE, problems=(error,)))
            elif not (facts := cache.get(file_path)).nothing_recognised:
                found = True
                add(facts)
        if not found and path not in unusable:
            problem = "no certificate, CRL or key files in this folder"
            items.append(InventoryItem(path=path, index=None, role=Role.FILE, problems=(problem,)))
    return Inventory(
        items=tuple(items),
        inputs=tuple(paths),
        unusable_inputs=tuple(unusable),
        warn_days=warn_days,
        generated_at=iso_utc(now),
    )


def _walk(folder: str) -> Iterable[tuple[str, str | None]]:
    """(path, None) for each file, then (folder, error) for each folder that could not be listed.

    Symlinked folders are not followed, which rules out loops; symlinked files are.
    """
    errors: list[OSError] = []
    for root, dirs, files in os.walk(folder, onerror=errors.append):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            yield os.path.join(root, name), None
    for e in errors:
        yield str(e.filename or folder), f"cannot list folder: {e.strerror or e}"


def _mode(facts: FileFacts) -> str | None:
    return f"{facts.mode:04o}" if facts.mode is not None else None


def _file_items(facts: FileFacts, now: dt.datetime, warn_days: int) -> list[InventoryItem]:
    mode = _mode(facts)
    items: list[tuple[int, InventoryItem]] = []
    items += [(c.index, _cert_item(facts.path, c, now, warn_days, mode)) for c in facts.certs]
    items += [(c.index, _crl_item(facts.path, c, now, warn_days, mode)) for c in facts.crls]
    items += [(k.index, _key_item(facts, k, mode)) for k in facts.keys]
    items.sort(key=lambda pair: pair[0])
    file_problems = (facts.error,) if facts.error is not None else facts.problems
    head = []
    if file_problems or not items:
        head = [InventoryItem(path=facts.path, index=None, role=Role.FILE, mode=mode, problems=file_problems)]
    return head + [item for _, item in items]


def _expiry(when: dt.datetime | None, now: dt.datetime, warn_days: int) -> tuple[int | None, bool, bool]:
    """(days left, expired, expiring) for a notAfter or nextUpdate."""
    if when is None:
        return None, False, False
    expired = now > when
    expiring = not expired and when <= now + dt.timedelta(days=warn_days)
    return days_until(when, now), expired, expiring


def _cert_item(path: str, cert: CertFacts, now: dt.datetime, warn_days: int, mode: str | None) -> InventoryItem:
    days, expired, expiring = _expiry(cert.not_after, now, warn_days)
    problems: list[str] = []
    if expired:
        problems.append(f"expired {iso_utc(cert.not_after)}")
    elif expiring:
        problems.append(f"expires in {days} days (warning window {warn_days})")
    if now < cert.not_before:
        problems.append(f"not valid before {iso_utc(cert.not_before)}")
    problems += weak_reasons(cert)
    return InventoryItem(
        path=path,
        index=cert.index,
        role=Role.CA if cert.is_ca else Role.LEAF,
        subject=cert.subject,
        issuer=cert.issuer,
        serial=cert.serial,
        sha256=cert.sha256,
        not_after=iso_utc(cert.not_after),
        days_left=days,
        key_type=cert.key_type,
        key_size=cert.key_size,
        mode=mode,
        expired=expired,
        expiring=expiring,
        problems=tuple(problems),
    )


def _crl_item(path: str, crl: CrlFacts, now: dt.datetime, warn_days: int, mode: str | None) -> InventoryItem:
    days, expired, expiring = _expiry(crl.next_update, now, warn_days)
    problems: list[str] = []
    if expired and crl.next_update is not None:
        # nginx-mtls.md section 6: Nginx keeps serving, but every client cert gets 400.
        problems.append(f"CRL expired {iso_utc(crl.next_update)}: Nginx rejects every client certificate")
    elif expiring:
        problems.append(f"CRL nextUpdate in {days} days: replace it and reload Nginx before then")
    problems += weak_reasons(crl)
    return InventoryItem(
        path=path,
        index=crl.index,
        role=Role.CRL,
        issuer=crl.issuer,
        sha256=crl.sha256,
        not_after=iso_utc(crl.next_update) if crl.next_update else None,
        days_left=days,
        mode=mode,
        expired=expired,
        expiring=expiring,
        problems=tuple(problems),
    )


def _key_item(facts: FileFacts, key: KeyFacts, mode: str | None) -> InventoryItem:
    problems: list[str] = []
    if facts.group_or_other_access:
        problems.append(f"private key file mode {mode} gives group/others access (use 0600 or 0400)")
    problems += weak_reasons(key)
    return InventoryItem(
        path=facts.path,
        index=key.index,
        role=Role.KEY,
        key_type=key.key_type,
        key_size=key.key_size,
        encrypted=key.encrypted,
        mode=mode,
        problems=tuple(problems),
    )


# --------------------------------------------------------------------------------------------
# Rendering


TABLE_HEADERS = ("path", "#", "role", "subject / key", "issuer", "not after", "days", "problems")
_WIDTHS = [None, None, None, 40, 40, None, None, 60]


def _describe(item: InventoryItem) -> str:
    if item.role is Role.KEY:
        size = f" {item.key_size}" if item.key_size else ""
        encrypted = ", encrypted" if item.encrypted else ""
        return f"{item.key_type}{size}{encrypted}, mode {item.mode}"
    return item.subject or ""


def summary_line(inventory: Inventory) -> str:
    s = inventory.summary()
    return (
        f"{s['certificates']} certificates ({s['cas']} CA), {s['crls']} CRLs, {s['keys']} keys; "
        f"{s['expired']} expired, {s['expiring']} expiring within {inventory.warn_days} days; "
        f"{s['with_problems']} with problems"
    )


def render_inventory_table(inventory: Inventory) -> str:
    """One row per item, file problems first; the last line has the counts for `| tail -1`.

    Subjects and paths come from files we do not control, so every cell goes through
    `safe_text`: a crafted DN must not drive the terminal.
    """
    rows = [
        [
            safe_text(item.path, keep_newlines=False),
            "" if item.index is None else str(item.index),
            item.role.value,
            safe_text(_describe(item), keep_newlines=False),
            safe_text(item.issuer or "", keep_newlines=False),
            item.not_after or "",
            "" if item.days_left is None else str(item.days_left),
            safe_text("; ".join(item.problems), keep_newlines=False),
        ]
        for item in inventory.items
    ]
    body = (
        tabulate(rows, headers=TABLE_HEADERS, tablefmt="simple", maxcolwidths=_WIDTHS, disable_numparse=True)
        if rows
        else "Nothing found."
    )
    return f"{body}\n\n{summary_line(inventory)}\n"


def _item_json(item: InventoryItem) -> dict[str, Any]:
    return {
        "path": item.path,
        "index": item.index,
        "role": item.role.value,
        "subject": item.subject,
        "issuer": item.issuer,
        "serial": item.serial,
        "sha256": item.sha256,
        "not_after": item.not_after,
        "days_left": item.days_left,
        "key_type": item.key_type,
        "key_size": item.key_size,
        "encrypted": item.encrypted,
        "mode": item.mode,
        "expired": item.expired,
        "expiring": item.expiring,
        "alert": item.alert,
        "problems": list(item.problems),
    }


def render_inventory_json(inventory: Inventory) -> str:
    document = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": inventory.generated_at,
        "warn_days": inventory.warn_days,
        "inputs": list(inventory.inputs),
        "items": [_item_json(item) for item in inventory.items],
        "summary": inventory.summary(),
    }
    return json.dumps(document, indent=2) + "\n"
