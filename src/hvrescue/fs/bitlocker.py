"""BitLocker volumes (libbde through pybde): detect, name the protectors and the recovery-key
id, unlock with what the user gives, and read the decrypted volume like any other.

Secrets (``--recovery-password``, ``--password-file``, ``--bek``) live only in a
:class:`Secrets` held by a context variable for the length of one command: they are never
logged, never put in an exception message, a result or a record (``repr`` hides them), and
:func:`redact_argv` takes them out of the command line before the case record or a manifest
sees it. A ``.bek`` file is checked through the project's read-only opener and then read by
libbde itself by its path (libbde only reads it).

An unlocked volume keeps its id ("2") and reads as its inner filesystem; the listing says
``"encryption": "bitlocker"``. Decrypted byte ``x`` lies on the same volume offset ``x`` (BitLocker
encrypts sector by sector in place; only the first sectors, the boot sector Windows moves
into the metadata area, come from elsewhere inside the same volume), so a file's undefined
ranges are named with the volume's own map."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError, InputError
from hvrescue.fs.source import MappedSource

MAX_SECRET_FILE = 4096  # a password file or a .bek (156 bytes as Windows writes it)

# Key protector types (MS-FVE / libbde documentation: "Key protection type").
PROTECTOR_TYPES = {
    0x0000: "clear-key",
    0x0100: "tpm",
    0x0200: "startup-key",
    0x0500: "tpm-pin",
    0x0800: "recovery-password",
    0x2000: "password",
}
# Which option unlocks a volume protected by each type (None: nothing given here can).
UNLOCKS_WITH = {
    "clear-key": "",
    "startup-key": "--bek",
    "recovery-password": "--recovery-password",
    "password": "--password-file",
}
METHODS = {
    0x0000: "none",
    0x8000: "aes-128-cbc-diffuser",
    0x8001: "aes-256-cbc-diffuser",
    0x8002: "aes-128-cbc",
    0x8003: "aes-256-cbc",
    0x8004: "xts-aes-128",
    0x8005: "xts-aes-256",
}
SECRET_OPTIONS = ("--recovery-password", "--password")
REFUSED = ("error.bitlocker.wrong-secret", "error.bitlocker.bek-mismatch")


@dataclass(frozen=True, repr=False)
class Secrets:
    recovery_passwords: tuple[str, ...] = ()
    passwords: tuple[str, ...] = ()
    startup_keys: tuple[str, ...] = ()  # paths of .bek files (not secret themselves)
    startup_key_ids: tuple[str, ...] = ()  # the key id each .bek names (not secret either)
    # False for `triage`: a refused secret leaves the volume locked, reported as unreadable
    # among the other evidence, rather than stopping the whole triage.
    strict: bool = True
    tried: list[str] = field(default_factory=list, compare=False)  # volumes that refused
    used: list[str] = field(default_factory=list, compare=False)  # volumes unlocked

    def __repr__(self) -> str:
        return "Secrets(<withheld>)"

    def __bool__(self) -> bool:
        return bool(self.recovery_passwords or self.passwords or self.startup_keys)

    def given(self) -> list[str]:
        """The kinds given (never the values), for messages."""
        kinds = [("recovery-password", self.recovery_passwords), ("password", self.passwords)]
        return [k for k, v in kinds if v] + (["startup-key"] if self.startup_keys else [])


_SECRETS: ContextVar[Secrets | None] = ContextVar("hvrescue_bitlocker_secrets", default=None)


@contextlib.contextmanager
def unlocking(secrets: Secrets | None) -> Iterator[None]:
    """Make ``secrets`` available to volume discovery for the length of the block."""
    token = _SECRETS.set(secrets if secrets else None)
    try:
        yield
    finally:
        _SECRETS.reset(token)


def current() -> Secrets | None:
    return _SECRETS.get()


def redact_argv(argv: list[str]) -> list[str]:
    """``argv`` with the value of every secret option replaced by ``***``."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        name = arg.split("=", 1)[0]
        if name in SECRET_OPTIONS:
            if "=" in arg:
                out.append(f"{name}=***")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(arg)
    return out


def secrets_from_options(
    recovery_passwords: tuple[str, ...] | list[str] = (),
    password_files: tuple[str, ...] | list[str] = (),
    beks: tuple[str, ...] | list[str] = (),
    strict: bool = True,
) -> Secrets | None:
    """The secrets the command line gives: recovery passwords as typed (dashes optional),
    passwords read from files, ``.bek`` files checked to be startup-key files."""
    from hvrescue.io.files import read_evidence

    recovery = tuple(_recovery_password(r) for r in recovery_passwords)
    passwords, key_ids = [], []
    for path in password_files:
        try:
            raw = read_evidence(path, MAX_SECRET_FILE + 1)
        except (OSError, HvrescueError) as exc:
            raise InputError("error.bitlocker.secret-file", path=path, reason=_why(exc)) from None
        passwords.append(_password_text(raw, path))
    for path in beks:
        try:
            raw = read_evidence(path, MAX_SECRET_FILE + 1)
        except (OSError, HvrescueError) as exc:
            raise InputError("error.bitlocker.secret-file", path=path, reason=_why(exc)) from None
        # A .bek is a FVE metadata block: size (u32) then version 1 (u32), at most a few KiB.
        if len(raw) < 48 or len(raw) > MAX_SECRET_FILE or raw[4:8] != b"\x01\x00\x00\x00":
            raise InputError("error.bitlocker.not-bek", path=path)
        # The external key entry (type 6, value type 9) starts with the key's id.
        if raw[0x32:0x36] == b"\x06\x00\x09\x00":
            key_ids.append(str(uuid.UUID(bytes_le=raw[0x38:0x48])))
    secrets = Secrets(recovery, tuple(passwords), tuple(beks), tuple(key_ids), strict)
    return secrets if secrets else None


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


def _recovery_password(text: str) -> str:
    """48 digits in eight groups of six; each group is a multiple of 11 below 720896."""
    digits = "".join(ch for ch in text.strip() if ch not in "- \u00a0")
    groups = [digits[i : i + 6] for i in range(0, len(digits), 6)]
    ok = len(digits) == 48 and digits.isascii() and digits.isdigit()
    if not ok or any(int(g) % 11 or int(g) >= 720896 for g in groups):
        raise InputError("error.bitlocker.recovery-format")
    return "-".join(groups)


def _password_text(raw: bytes, path: str) -> str:
    if len(raw) > MAX_SECRET_FILE:
        raise InputError("error.bitlocker.secret-file", path=path, reason="> 4096 bytes")
    try:
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            text = raw.decode("utf-16")
        else:
            text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("error.bitlocker.secret-file", path=path, reason="encoding") from None
    # One line, as Notepad or `echo` leaves it; inner spaces belong to the password.
    text = text.rstrip("\r\n")
    if not text or "\n" in text:
        raise InputError("error.bitlocker.secret-file", path=path, reason="not one line")
    return text


def _pybde() -> Any:
    try:
        import pybde
    except ImportError:
        return None
    return pybde


@dataclass
class Protector:
    type: str
    id: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}


def _protectors(volume: Any) -> list[Protector]:
    out = []
    for i in range(min(int(volume.number_of_key_protectors or 0), 64)):
        kp = volume.get_key_protector(i)
        kind = PROTECTOR_TYPES.get(int(kp.type), f"unknown-0x{int(kp.type):04x}")
        out.append(Protector(kind, str(kp.identifier)))
    return out


def unlock_options(protectors: list[Protector]) -> list[str]:
    """The options of this command that would unlock a volume with these protectors."""
    found = [UNLOCKS_WITH.get(p.type) for p in protectors]
    return sorted({f for f in found if f})


class DecryptedSource(MappedSource):
    """The decrypted bytes of a BitLocker volume, mapped onto the disk as the volume is."""

    def __init__(self, base: MappedSource, volume: Any, handle: Any, size: int) -> None:
        super().__init__(base.disk, base.runs, size)
        self.base = base
        self._volume = volume
        self._handle = handle  # keeps the file object libbde reads alive
        self._lock = threading.Lock()

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self.size:
            return b""
        length = min(length, self.size - offset)
        with self._lock:
            try:
                return bytes(self._volume.read_buffer_at_offset(length, offset))
            except OSError:
                raise InputError("error.bitlocker.read", offset=offset, length=length) from None

    def read_checked(self, offset: int, length: int) -> tuple[bytes, int | None]:
        _raw, first = self.base.read_checked(offset, length)
        return self.read(offset, length), first


def _attempt(pybde: Any, base: MappedSource, kind: str, value: str) -> tuple[Any, Any] | None:
    """A pybde volume opened with one secret (and the file object it reads), or None when
    the secret does not unlock it."""
    volume = pybde.volume()
    handle = base.file_object()
    try:
        if kind == "recovery-password":
            volume.set_recovery_password(value)
        elif kind == "password":
            volume.set_password(value)
        elif kind == "startup-key":
            volume.read_startup_key(value)
        volume.open_file_object(handle)
        if volume.is_locked():
            volume.unlock()
    except OSError:
        return None  # libbde refuses a key that does not decrypt any protector
    if volume.is_locked():
        return None
    return volume, handle


def examine(info: Any) -> None:
    """Describe the BitLocker volume ``info`` (a fs.addressing.VolumeInfo) and, when it is
    not protected or a given secret unlocks it, make it read as its decrypted content."""
    pybde = _pybde()
    if pybde is None:
        info.problem = ("error.bitlocker.no-library", {"volume": info.id})
        return
    base = info.source
    handle = base.file_object()
    volume = pybde.volume()
    try:
        volume.open_file_object(handle)
        protectors = _protectors(volume)
        header = _header(volume)
    except OSError:
        info.problem = ("error.bitlocker.metadata", {"volume": info.id})
        return
    info.detail.update(
        encryption="bitlocker",
        locked=True,
        protectors=[p.as_dict() for p in protectors],
        recovery_key_ids=[p.id for p in protectors if p.type == "recovery-password"],
        unlock_with=unlock_options(protectors),
        bitlocker=header,
    )
    opened = None if volume.is_locked() else volume
    secrets = current()
    how = "none" if opened is not None else None
    if opened is None and secrets:
        for kind, values in (
            ("recovery-password", secrets.recovery_passwords),
            ("password", secrets.passwords),
            ("startup-key", secrets.startup_keys),
        ):
            for value in values:
                attempt = _attempt(pybde, base, kind, value)
                if attempt is not None:
                    opened, handle = attempt
                    how = kind
                    break
            if opened is not None:
                break
        (secrets.used if opened is not None else secrets.tried).append(info.id)
    if opened is None:
        info.problem = _locked_problem(info.id, protectors)
        return
    try:
        size = min(int(opened.get_size()), base.size)
        header.update(method=METHODS.get(int(opened.encryption_method or 0), "unknown"))
    except OSError:
        info.problem = ("error.bitlocker.metadata", {"volume": info.id})
        return
    if volume is not opened:
        volume.close()
    info.source = DecryptedSource(base, opened, handle, size)
    info.detail.update(locked=False, unlocked_by=how)


def _header(volume: Any) -> dict[str, Any]:
    created = volume.get_creation_time()
    return {
        "volume_id": str(volume.get_volume_identifier() or ""),
        "description": str(volume.get_description() or "")[:200],
        "created": created.isoformat() + "Z" if created is not None else None,
    }


def _locked_problem(vid: str, protectors: list[Protector]) -> tuple[str, dict[str, Any]]:
    kinds = ", ".join(sorted({p.type for p in protectors})) or "-"
    options = ", ".join(unlock_options(protectors)) or "-"
    ids = ", ".join(p.id for p in protectors if p.type == "recovery-password") or "-"
    secrets = current()
    wanted = [p.id for p in protectors if p.type == "startup-key"]
    given_ids = set(secrets.startup_key_ids) if secrets else set()
    if secrets and vid in secrets.tried and given_ids and wanted and not given_ids & set(wanted):
        # The .bek files given belong to other volumes: say which file to look for.
        params = {"volume": vid, "given": ", ".join(sorted(given_ids)), "wanted": ", ".join(wanted)}
        return ("error.bitlocker.bek-mismatch", params)
    if secrets and vid in secrets.tried:
        return (
            "error.bitlocker.wrong-secret",
            {"volume": vid, "given": ", ".join(secrets.given()), "protectors": kinds},
        )
    return (
        "error.bitlocker.locked",
        {"volume": vid, "protectors": kinds, "options": options, "ids": ids},
    )


def check_all_refused(volumes: list[Any]) -> None:
    """Secrets were given, a BitLocker volume refused them and none took them: a clear
    error (exit 2) rather than a listing that merely shows the volume locked."""
    secrets = current()
    if not secrets or secrets.used or not secrets.strict:
        return
    for info in volumes:
        if info.problem is not None and info.problem[0] in REFUSED:
            raise InputError(info.problem[0], **info.problem[1])
