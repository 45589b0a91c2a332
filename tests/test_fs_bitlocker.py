"""BitLocker volumes: detected with their protectors and recovery-key id, unlocked with
``--recovery-password``, ``--password-file`` or ``--bek``, read as their decrypted content
(also inside a VHDX chain and through `guest`/`triage`), a wrong secret a clear error, and the
secrets never written anywhere.

The images are fox-it/dissect.fve's public test volumes (``shared/corpus/public/fs/bitlocker``).
They are cut short (only metadata and a few sectors hold data), so the oracle is the one
PROVENANCE.md gives: the sha256 of the first 0x3000 decrypted bytes, on which pybde,
dislocker and dissect.fve agreed, with OEM ``NTFS    `` at 3 and ``FILE0`` at 0x2000. The id
of a startup key is checked against the GUID inside its ``.bek`` file (MS-FVE: the external
key entry at 0x38), which Windows also uses as the file's name."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import sqlite3
import struct
import uuid
from pathlib import Path

import pytest

from tests.fs_linux_builders import have, run, to_vhdx
from tests.helpers import CORPUS, run_cli

MiB = 1 << 20
BDE = CORPUS / "fs" / "bitlocker"
PASSWORD = "password12!@"
RECOVERY = "284867-596541-514998-422114-660297-261613-215424-199408"
RECOVERY_ID = "3c116b76-c67b-484e-b439-ce2ed68b561e"  # checked by _vmk_entries
# name: (protector types, how to unlock, dec[0:0x3000] sha256 from PROVENANCE.md)
IMAGES = {
    "aes_128": (
        ["password"],
        "password",
        "4ae79835595bb5d4c1265f4bf3539dc6695cb46a7c8767bdff82522318690c17",
    ),
    "aes_256": (
        ["password"],
        "password",
        "60a7605ae7999ec4fbb84573a9be81a3be2640813f3c970a55aad86251ecf039",
    ),
    "aes_128_diffuser": (
        ["password"],
        "password",
        "36c60f721d9171ac9d9637465887ef5caaabfc9738ca09f38ae0b7e726a768c9",
    ),
    "aes_256_diffuser": (
        ["password"],
        "password",
        "fb11d88ed43c5a3cfdc87f435eef05739afa277064957a331b5cd12abbf4492f",
    ),
    "aes-xts_128": (
        ["password"],
        "password",
        "ba92dec35d4123e2b4df407928800f360543f0e3f453fda7f10e386cadfb8019",
    ),
    "aes-xts_256": (
        ["password"],
        "password",
        "b45d90888b9dd8cfe792c1fc03b3b898849363ea5612ee5d08c64355bd3afcfe",
    ),
    "recovery_password": (
        ["recovery-password", "password"],
        "recovery-password",
        "9f567532e88a9d2425ad0f6f4b2bf06f6f9fdb10d7d1ed9e7575530e851ee54b",
    ),
    "recovery_key": (
        ["startup-key", "password"],
        "startup-key",
        "66b43a27788f18b243c314da08776275397dc23a3975cd0d1e8a0e27e03155b0",
    ),
    "startup_key": (
        ["startup-key", "password"],
        "startup-key",
        "f633315a58620b43fa3c4622477c7f798794167e2bbdd2a24779255d999b7866",
    ),
    "suspended": (
        ["clear-key"],
        "none",
        "24005ca032d178e676dd02272dd271b7175df01d9ab5abd34bace5b4793bdb98",
    ),
}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory):
    if not BDE.exists():
        pytest.skip("../shared/corpus/public/fs is not present")
    if not have("qemu-img"):
        pytest.skip("needs qemu-img (Debian qemu-utils)")
    folder = tmp_path_factory.mktemp("bde")
    made: dict[str, Path] = {}

    def get(name: str, raw: bool = False) -> Path:
        key = f"{name}.raw" if raw else name
        if key not in made:
            path = folder / f"{name}.bin"
            if not path.exists():
                with gzip.open(BDE / f"{name}.bin.gz", "rb") as fin, open(path, "wb") as fout:
                    shutil.copyfileobj(fin, fout, MiB)
            made[f"{name}.raw"] = path
            if not raw:
                made[name] = to_vhdx(path, folder / f"{name}.vhdx")
        return made[key]

    get.folder = folder  # type: ignore[attr-defined]
    return get


def _secret_args(how: str, name: str, folder: Path) -> list[str | Path]:
    if how == "password":
        pw = folder / "password.txt"
        pw.write_text(PASSWORD + "\r\n", encoding="utf-8")
        return ["--password-file", pw]
    if how == "recovery-password":
        return ["--recovery-password", RECOVERY]
    if how == "startup-key":
        return ["--bek", BDE / f"{name}.bek"]
    return []


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_public_images_decrypt_as_provenance_says(images, name: str, tmp_path: Path):
    from hvrescue.fs import discover
    from hvrescue.fs.bitlocker import Secrets, unlocking
    from hvrescue.vdisk.disk import Disk

    kinds, how, want = IMAGES[name]
    disk = images(name)
    locked = run_cli("ls", disk, "--json")
    assert locked.rc == 0, locked.stderr
    [vol] = locked.json()["volumes"]
    assert vol["encryption"] == "bitlocker"
    assert sorted(p["type"] for p in vol["protectors"]) == sorted(kinds)
    if how != "none":
        assert vol["filesystem"] == "bitlocker" and vol["locked"] is True
        assert vol["problem"]["key"] == "error.bitlocker.locked"
        assert vol["readable"] is False
    args = _secret_args(how, name, tmp_path)
    opened = run_cli(
        "ls", disk, *args, "--json", evidence=[disk, *[a for a in args if isinstance(a, Path)]]
    )
    [vol] = opened.json()["volumes"]
    assert vol["locked"] is False and vol["unlocked_by"] == how
    assert vol["filesystem"] == "ntfs" and vol["encryption"] == "bitlocker"
    secrets = {
        "password": Secrets(passwords=(PASSWORD,)),
        "recovery-password": Secrets(recovery_passwords=(RECOVERY,)),
        "startup-key": Secrets(startup_keys=(str(BDE / f"{name}.bek"),)),
        "none": None,
    }[how]
    with Disk.open(str(disk)) as d, unlocking(secrets):
        [info] = discover(d)
        data = info.source.read(0, 0x3000)
    assert data[3:11] == b"NTFS    " and data[0x2000:0x2005] == b"FILE0"
    assert hashlib.sha256(data).hexdigest() == want


def _vmk_entries(raw: Path) -> list[tuple[str, int]]:
    """(GUID, protection type) of each volume master key entry, parsed here from the first
    FVE metadata block by the layout libbde's documentation gives (an independent reading):
    block header 64 bytes, metadata header 48, then entries (size, type 2 = VMK, value type
    8 = VMK) holding the protector's GUID, a FILETIME, 2 bytes, then the protection type."""
    data = raw.read_bytes()
    at = struct.unpack_from("<Q", data, 0xB0)[0]
    block = data[at : at + 0x10000]
    assert block[:8] == b"-FVE-FS-"
    end = 64 + struct.unpack_from("<I", block, 64)[0]
    out, pos = [], 64 + 48
    while pos < end:
        size, kind, value = struct.unpack_from("<HHH", block, pos)
        if size == 0:
            break
        if kind == 2 and value == 8:
            guid = str(uuid.UUID(bytes_le=block[pos + 8 : pos + 24]))
            out.append((guid, struct.unpack_from("<H", block, pos + 34)[0]))
        pos += size
    return out


def test_recovery_key_id_is_the_one_to_look_up(images):
    vmks = _vmk_entries(images("recovery_password", raw=True))
    assert (RECOVERY_ID, 0x0800) in vmks  # 0x0800: recovery password
    r = run_cli("ls", images("recovery_password"), "--json")
    [vol] = r.json()["volumes"]
    assert vol["recovery_key_ids"] == [RECOVERY_ID]
    assert sorted((p["id"], p["type"]) for p in vol["protectors"]) == sorted(
        (g, {0x0800: "recovery-password", 0x2000: "password"}[t]) for g, t in vmks
    )
    assert vol["unlock_with"] == ["--password-file", "--recovery-password"]
    text = run_cli("ls", images("recovery_password"))
    assert RECOVERY_ID in text.stdout.replace("\n", "").replace("│", "").replace(" ", "") or (
        RECOVERY_ID in text.stdout + text.stderr
    )


@pytest.mark.parametrize("name", ["startup_key", "recovery_key"])
def test_startup_key_id_matches_the_bek_file(images, name: str):
    bek = (BDE / f"{name}.bek").read_bytes()
    assert struct.unpack_from("<HH", bek, 0x32) == (0x0006, 0x0009)  # startup key, external key
    key_id = str(uuid.UUID(bytes_le=bek[0x38:0x48]))
    r = run_cli("ls", images(name), "--json")
    [vol] = r.json()["volumes"]
    assert [p["id"] for p in vol["protectors"] if p["type"] == "startup-key"] == [key_id]
    assert "--bek" in vol["unlock_with"]


@pytest.mark.slow  # 20 s each: many CLI runs
def test_wrong_secrets_are_clear_errors(images, tmp_path: Path):
    disk = images("recovery_password")
    bad = "111111-111111-111111-111111-111111-111111-111111-111111"  # well formed, wrong
    r = run_cli("ls", disk, "--recovery-password", bad, "--json")
    assert r.rc == 2
    err = r.json()["error"]
    assert err["key"] == "error.bitlocker.wrong-secret"
    assert err["params"]["protectors"] == "password, recovery-password"
    assert bad not in r.stdout + r.stderr
    # Human output: the catalogue message, naming the protector types; no traceback.
    h = run_cli("ls", disk, "--recovery-password", bad)
    assert h.rc == 2 and "recovery-password" in h.stderr and bad not in h.stderr
    typo = run_cli("ls", disk, "--recovery-password", RECOVERY[:-1] + "9", "--json")
    assert typo.rc == 2 and typo.json()["error"]["key"] == "error.bitlocker.recovery-format"
    pw = tmp_path / "wrong.txt"
    pw.write_text("password12!", encoding="utf-8")
    p = run_cli("ls", images("aes_128"), "--password-file", pw, "--json")
    assert p.rc == 2 and p.json()["error"]["params"]["protectors"] == "password"
    # The .bek of another volume.
    other = run_cli("ls", images("startup_key"), "--bek", BDE / "recovery_key.bek", "--json")
    assert other.rc == 2 and other.json()["error"]["key"] == "error.bitlocker.bek-mismatch"
    assert other.json()["error"]["params"] == {
        "volume": "1",
        "given": "99b0081a-60b6-47e4-8482-dea46ee1891d",  # recovery_key.bek's own id
        "wanted": "b3411a58-3400-420a-8b7e-9b5f706425c0",  # startup_key's protector
    }
    notbek = tmp_path / "key.bek"
    notbek.write_bytes(b"\0" * 156)
    n = run_cli("ls", disk, "--bek", notbek, "--json")
    assert n.rc == 2 and n.json()["error"]["key"] == "error.bitlocker.not-bek"
    missing = run_cli("ls", disk, "--password-file", tmp_path / "nope.txt", "--json")
    assert missing.rc == 2 and missing.json()["error"]["key"] == "error.bitlocker.secret-file"


def test_a_locked_volume_cannot_be_read_and_says_what_would_unlock_it(images):
    r = run_cli("ls", images("recovery_password"), "1:/", "--json")
    assert r.rc == 2
    err = r.json()["error"]
    assert err["key"] == "error.bitlocker.locked"
    assert err["params"]["options"] == "--password-file, --recovery-password"
    assert err["params"]["ids"] == RECOVERY_ID


# ---------------------------------------------------------------- a Windows guest in a chain
def _guest_raw(folder: Path, bitlocker: Path, esp_files: dict[str, bytes], name: str) -> Path:
    """GPT: an EFI system partition (FAT) and C:, a BitLocker volume, as Windows sets up."""
    from tests.builders import make_fat

    size = bitlocker.stat().st_size
    sectors = size // 512
    raw = folder / name
    with open(raw, "wb") as f:
        f.truncate((2048 + 32768 + sectors + 2048) * 512)
    layout = (
        "label: gpt\n"
        "start=2048, size=32768, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"
        f"start=34816, size={sectors}, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n"
    )
    run_sfdisk = __import__("subprocess").run
    run_sfdisk(["sfdisk", "-q", str(raw)], input=layout.encode(), check=True, capture_output=True)
    esp = folder / f"{name}.esp"
    make_fat(esp, 32768 * 512, esp_files)
    with open(raw, "r+b") as dst:
        for at, src in ((2048 * 512, esp), (34816 * 512, bitlocker)):
            dst.seek(at)
            with open(src, "rb") as fin:
                shutil.copyfileobj(fin, dst, 4 * MiB)
    return raw


@pytest.fixture(scope="module")
def chain(images):
    if not have("sfdisk", "mkfs.fat", "mcopy"):
        pytest.skip("needs fdisk, dosfstools and mtools")
    from tests.builders import raw_to_vhdx_chain

    folder: Path = images.folder / "chain"
    folder.mkdir()
    encrypted = images("recovery_password", raw=True)
    v1 = _guest_raw(folder, encrypted, {"EFI/Microsoft/Boot/BCD": b"v1" * 100}, "v1.raw")
    v2 = _guest_raw(
        folder, encrypted, {"EFI/Microsoft/Boot/BCD": b"v2" * 100, "new.txt": b"x"}, "v2.raw"
    )
    base, leaf = raw_to_vhdx_chain(v1, v2, folder)
    return {"base": base, "leaf": leaf, "folder": folder}


def test_bitlocker_volume_in_a_vhdx_chain(chain, tmp_path: Path):
    leaf = chain["leaf"]
    r = run_cli("ls", leaf, "--recovery-password", RECOVERY, "--json", evidence=[chain["folder"]])
    assert r.rc == 0, r.stderr
    vols = {v["id"]: v for v in r.json()["volumes"]}
    assert vols["1"]["filesystem"] in ("fat12", "fat16", "fat32")
    assert vols["2"]["encryption"] == "bitlocker" and vols["2"]["locked"] is False
    # The ESP reads as the leaf has it (the chain is followed) and the key is accepted.
    esp = run_cli("ls", leaf, "1:/", "--recovery-password", RECOVERY, "--json")
    assert "NEW.TXT" in {e["name"].upper() for e in esp.json()["entries"]}
    from hvrescue.fs import discover
    from hvrescue.fs.bitlocker import Secrets, unlocking
    from hvrescue.vdisk.disk import Disk

    with Disk.open(str(leaf)) as d, unlocking(Secrets(recovery_passwords=(RECOVERY,))):
        vol = {v.id: v for v in discover(d)}["2"]
        data = vol.source.read(0, 0x3000)
    assert hashlib.sha256(data).hexdigest() == IMAGES["recovery_password"][2]


@pytest.mark.slow  # 20 s each: many CLI runs
def test_guest_and_triage_pass_the_secret_through(chain, tmp_path: Path):
    leaf = chain["leaf"]
    locked = run_cli("guest", leaf, "--json")
    vols = {v["id"]: v for v in locked.json()["volumes"]}
    assert vols["2"]["filesystem"] == "bitlocker" and vols["2"]["locked"] is True
    assert vols["2"]["recovery_key_ids"] == [RECOVERY_ID]
    opened = run_cli("guest", leaf, "--recovery-password", RECOVERY, "--json")
    vols = {v["id"]: v for v in opened.json()["volumes"]}
    assert vols["2"]["locked"] is False and vols["2"]["encryption"] == "bitlocker"
    wrong = run_cli("guest", leaf, "--recovery-password", "0" * 48, "--json")
    assert wrong.rc == 2 and wrong.json()["error"]["key"] == "error.bitlocker.wrong-secret"
    t = run_cli("triage", leaf, "--recovery-password", RECOVERY, "--json", "--out", tmp_path / "t")
    assert t.rc in (0, 1), t.stderr
    assert RECOVERY not in t.stdout + t.stderr
    # triage goes on, but never calls a guest whose Windows volume stayed locked healthy.
    tw = run_cli("triage", leaf, "--recovery-password", "0" * 48, "--json", "--out", tmp_path / "w")
    assert tw.rc == 1, tw.stdout
    assert tw.json()["verdict"]["state"] != "healthy"
    assert "error.bitlocker.wrong-secret" in tw.stdout


@pytest.mark.slow  # every command run with a secret, 30 s
def test_secrets_are_never_written_anywhere(chain, images, tmp_path: Path):
    """Every command that takes a secret, run with --case, --debug and --log-file: the secret
    is in no output, log, case database or manifest (as typed, without dashes, or in UTF-16)."""
    leaf = chain["leaf"]
    from hvrescue.preserve.case import CaseRecord

    case, log = tmp_path / "case.sqlite", tmp_path / "debug.log"
    CaseRecord(str(case)).close()  # as `preserve` starts one
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD, encoding="utf-8")
    outs = []
    runs = [
        ["ls", leaf, "--recovery-password", RECOVERY],
        ["ls", leaf, "--recovery-password=" + RECOVERY, "--json"],
        ["ls", leaf, "2:/", "--recovery-password", RECOVERY],
        ["extract", leaf, "1:/", "--to", tmp_path / "x1", "--recovery-password", RECOVERY],
        [
            "extract",
            leaf,
            "1:/",
            "--to",
            tmp_path / "x2",
            "--recovery-password",
            RECOVERY,
            "--json",
        ],
        ["guest", leaf, "--recovery-password", RECOVERY, "--json"],
        ["triage", leaf, "--recovery-password", RECOVERY, "--out", tmp_path / "t"],
        ["ls", leaf, "--recovery-password", "1" * 6 + RECOVERY[6:]],
        ["ls", images("aes_128"), "--password-file", pw, "--json"],
        ["ls", images("aes_128"), "--password-file", pw],
    ]
    for i, args in enumerate(runs):
        common = ["--case", case, "--debug", "--log-file", log.with_suffix(f".{i}.log")]
        r = run_cli(*common, *args, evidence=[chain["folder"], pw])
        assert r.rc in (0, 1, 2), r.stderr
        outs.append(r.stdout + r.stderr)
    assert all(log.with_suffix(f".{i}.log").exists() for i in range(len(runs)))
    hidden = [RECOVERY, RECOVERY.replace("-", ""), PASSWORD, "1" * 6 + RECOVERY[6:]]
    blobs = [o.encode() for o in outs]
    for f in [case, *tmp_path.rglob("*")]:
        if Path(f).is_file() and f != pw:
            blobs.append(Path(f).read_bytes())
    assert any(b"manifest" in Path(f).name.encode() for f in tmp_path.rglob("*"))
    for secret in hidden:
        for form in (secret.encode(), secret.encode("utf-16-le")):
            assert not any(form in blob for blob in blobs), secret
    with sqlite3.connect(case) as db:
        text = "\n".join(str(row) for t in _tables(db) for row in db.execute(f"SELECT * FROM {t}"))
    assert "***" in text and RECOVERY not in text


def _tables(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]


def test_undefined_ranges_under_an_encrypted_volume_are_reported(images, tmp_path: Path):
    """A 1 MiB block of the encrypted volume made undefined: decrypted reads over it are
    reported with that range (the mount view refuses it), reads beside it are whole."""
    from hvrescue.fs import discover
    from hvrescue.fs.bitlocker import Secrets, unlocking
    from hvrescue.vdisk.disk import Disk
    from hvrescue.vdisk.vhdx.image import VhdxImage
    from tests.builders import patch

    raw = images("recovery_password", raw=True)
    damaged = tmp_path / "damaged.vhdx"
    run(
        "qemu-img",
        "convert",
        "-f",
        "raw",
        "-O",
        "vhdx",
        "-o",
        "subformat=dynamic,block_size=1M",
        raw,
        damaged,
    )
    mib = 8  # no BitLocker metadata there (it lies at 34, 41 and 48 MiB)
    img = VhdxImage.open(str(damaged))
    try:
        at = img.regions["bat"].file_offset + 8 * (mib + mib // img.chunk_ratio)
        far = ((damaged.stat().st_size >> 20) + 64) << 20 | 6
    finally:
        img.close()
    patch(damaged, at, struct.pack("<Q", far))
    with Disk.open(str(damaged)) as d, unlocking(Secrets(recovery_passwords=(RECOVERY,))):
        [vol] = discover(d)
        assert vol.detail["locked"] is False
        data, first = vol.source.read_checked(mib * MiB - 4096, 8192)
        assert first == 4096 and len(data) == 8192
        assert vol.source.read_checked(0, 0x3000)[1] is None
        assert vol.source.to_disk(mib * MiB, 4096) == [(mib * MiB, 4096)]
        assert any(g.offset <= mib * MiB < g.offset + g.length for g in d.undefined())
    from hvrescue.fs.mount import volume_views

    with Disk.open(str(damaged)) as d, unlocking(Secrets(recovery_passwords=(RECOVERY,))):
        views = volume_views(d)
        assert "p1-decrypted.raw" in views
        whole = views["p1-decrypted.raw"].read_checked(0, 0x3000)
    assert hashlib.sha256(whole[0]).hexdigest() == IMAGES["recovery_password"][2]


def test_redaction_and_secrets_repr():
    from hvrescue.fs.bitlocker import Secrets, redact_argv

    argv = ["hvrescue", "ls", "d.vhdx", "--recovery-password", RECOVERY, f"--password={PASSWORD}"]
    assert redact_argv(argv) == [
        "hvrescue",
        "ls",
        "d.vhdx",
        "--recovery-password",
        "***",
        "--password=***",
    ]
    s = Secrets(recovery_passwords=(RECOVERY,), passwords=(PASSWORD,))
    assert RECOVERY not in repr(s) and PASSWORD not in repr(s) and PASSWORD not in str(s)


def test_damaged_bitlocker_metadata_is_reported_not_raised(images, tmp_path: Path):
    raw = images("aes_128", raw=True)
    broken = tmp_path / "broken.raw"
    data = bytearray(raw.read_bytes())
    for at in struct.unpack_from("<QQQ", data, 0xB0):  # the three FVE metadata blocks
        data[at : at + 64] = b"\xa5" * 64
    broken.write_bytes(bytes(data))
    disk = to_vhdx(broken, tmp_path / "broken.vhdx")
    r = run_cli("ls", disk, "--json")
    [vol] = r.json()["volumes"]
    assert vol["filesystem"] == "bitlocker"
    assert vol["problem"]["key"] == "error.bitlocker.metadata"
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD, encoding="utf-8")
    opened = run_cli("ls", disk, "1:/", "--password-file", pw, "--json")
    assert opened.rc == 2 and opened.json()["error"]["key"] == "error.bitlocker.metadata"
