"""`hvrescue rebuild`: the script that recreates a VM from its surviving disks.

The guest disks are built here with the tools that make real ones (sfdisk, mkntfs through
ntfs-3g, mkfs.fat, mkfs.ext4) and converted to VHDX by qemu-img; each test checks the script's
generation, firmware and disk paths against what it built. The configuration case uses the
public test.vmcx (dissect.hypervisor's test data: a generation 1 VM, 1024 MB, 1 processor).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.hyperv.rebuild_script import ps_quote
from tests.builders import make_fat, make_guest_raw, ntfs_tools, raw_to_vhdx_chain, update_ntfs
from tests.fs_linux_builders import make_ext4, to_vhdx
from tests.helpers import run_cli
from tests.test_fs import _fuse_works

MiB = 1024 * 1024
VMCX = Path(__file__).resolve().parents[2] / "shared/corpus/public/dissect-hypervisor/test.vmcx"
WINDOWS = {"Windows/System32/config/SYSTEM": b"regf" + bytes(4092)}
LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
BASIC = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"


# ------------------------------------------------------------------------------ builders
def _gpt(raw: Path, size: int, parts: list[tuple[str, Path | None]]) -> None:
    """A GPT disk: each (type, image) from 1 MiB on, 32 MiB each, the last one to the end."""
    with open(raw, "wb") as f:
        f.truncate(size)
    lines = ["label: gpt"]
    start = 2048
    for i, (kind, _image) in enumerate(parts):
        size_part = "" if i == len(parts) - 1 else ", size=65536"
        lines.append(f"start={start}{size_part}, type={kind}")
        start += 65536
    subprocess.run(
        ["sfdisk", "-q", str(raw)], input="\n".join(lines).encode(), check=True, capture_output=True
    )
    table = json.loads(
        subprocess.run(["sfdisk", "-J", str(raw)], check=True, capture_output=True).stdout
    )
    for p, (_kind, image) in zip(table["partitiontable"]["partitions"], parts, strict=True):
        if image is None:
            continue
        assert image.stat().st_size <= p["size"] * 512
        with open(image, "rb") as src, open(raw, "r+b") as dst:
            dst.seek(p["start"] * 512)
            shutil.copyfileobj(src, dst, 4 * MiB)
        image.unlink()


def _linux_disk(folder: Path, name: str, esp_files: dict[str, bytes]) -> Path:
    """GPT: an EFI system partition (FAT) and ext4 holding /etc/os-release, as Ubuntu installs."""
    folder.mkdir(parents=True, exist_ok=True)
    esp = folder / f"{name}-esp.img"
    make_fat(esp, 32 * MiB, esp_files)
    tree = folder / f"{name}-root"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/os-release").write_text(
        'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\n'
    )
    (tree / "boot").mkdir()
    root = folder / f"{name}-root.img"
    make_ext4(root, 40, tree)
    raw = folder / f"{name}.raw"
    _gpt(raw, 80 * MiB, [(ESP, esp), (LINUX_FS, root)])
    out = to_vhdx(raw, folder / f"{name}.vhdx")
    raw.unlink()
    return out


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not ntfs_tools() or not shutil.which("qemu-img") or not shutil.which("mkfs.ext4"):
        pytest.skip("needs Debian's ntfs-3g, dosfstools, mtools, fdisk, e2fsprogs and qemu-utils")
    work = tmp_path_factory.mktemp("rebuild-build")
    if not _fuse_works(work):
        pytest.skip("ntfs-3g cannot mount here (no FUSE)")
    ev = tmp_path_factory.mktemp("rebuild-evidence")
    out: dict[str, Path] = {}
    raw = make_guest_raw(work / "g1", "mbr", WINDOWS, size=64 * MiB)
    out["gen1"] = ev / "gen1"  # the folder of win2012.vhdx
    out["gen1"].mkdir()
    to_vhdx(raw, out["gen1"] / "win2012.vhdx")
    raw.unlink()
    # Generation 2 Windows with a checkpoint: base.vhdx <- child.avhdx (the leaf).
    raw1 = make_guest_raw(
        work / "g2", "gpt", WINDOWS, esp_files={"EFI/Microsoft/Boot/bootmgfw.efi": b"MZ"}
    )
    raw2 = work / "g2-after.raw"
    update_ntfs(raw1, raw2, {"Users/after.txt": b"written after the checkpoint"}, work / "m2")
    (ev / "gen2").mkdir()
    base, child = raw_to_vhdx_chain(raw1, raw2, ev / "gen2")
    out["gen2-base"], out["gen2-leaf"] = base, child
    raw1.unlink()
    raw2.unlink()
    out["linux-shim"] = _linux_disk(
        ev / "linux-shim",
        "ubuntu",
        {"EFI/ubuntu/shimx64.efi": b"MZ shim", "EFI/ubuntu/grubx64.efi": b"MZ grub"},
    )
    out["linux-noshim"] = _linux_disk(
        ev / "linux-noshim", "custom", {"EFI/BOOT/BOOTX64.EFI": b"MZ grub built locally"}
    )
    # GPT with a Windows volume and no EFI system partition (a data disk, or an ESP deleted).
    gpt = make_guest_raw(work / "noesp", "gpt", WINDOWS)
    (ev / "noesp").mkdir()
    # The first partition's type becomes "basic data": no EFI system partition is left.
    subprocess.run(["sfdisk", "--part-type", str(gpt), "1", BASIC], check=True, capture_output=True)
    out["noesp"] = to_vhdx(gpt, ev / "noesp" / "data.vhdx")
    gpt.unlink()
    return out


# ------------------------------------------------------------------------------ reading scripts
def _unquote(literal: str) -> str:
    assert literal.startswith("'") and literal.endswith("'")
    return re.sub(r"([\u0027\u2018\u2019\u201a\u201b])\1", r"\1", literal[1:-1])


def parse(script: str) -> dict:
    """What the script does, read from its commands (comments ignored)."""
    commands = [ln for ln in script.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    text = "\n".join(commands)
    new_vm = re.search(r"^New-VM .*-Generation (\d) -MemoryStartupBytes (\d+)", text, re.M)
    assert new_vm, script
    firmware = re.search(
        r"^Set-VMFirmware -VMName \$VMName -EnableSecureBoot (On|Off)"
        r"(?: -SecureBootTemplate (\S+))?",
        text,
        re.M,
    )
    drives = re.findall(
        r"^Add-VMHardDiskDrive -VMName \$VMName -ControllerType (IDE|SCSI) -ControllerNumber (\d+)"
        r" -ControllerLocation (\d+) -Path ('(?:[^']|'')*')$",
        text,
        re.M,
    )
    processors = re.search(r"^Set-VMProcessor -VMName \$VMName -Count (\d+)(.*)$", text, re.M)
    return {
        "generation": int(new_vm.group(1)),
        "memory": int(new_vm.group(2)),
        "secure_boot": firmware.group(1) if firmware else None,
        "template": firmware.group(2) if firmware else None,
        "disks": [(t, int(n), int(loc), _unquote(p)) for t, n, loc, p in drives],
        "processors": int(processors.group(1)) if processors else None,
        "commands": commands,
    }


def _rebuild(*args: str | Path, evidence: list[Path]) -> tuple[int, dict, str]:
    result = run_cli("rebuild", *args, "--json", evidence=evidence)
    assert result.rc in (0, 1), result.stderr + result.stdout
    data = json.loads(result.stdout)
    return result.rc, data, data["script"]


# ------------------------------------------------------------------------------ the tests
def test_generation_1_windows_disk_boots_from_ide_0_0(disks: dict[str, Path]) -> None:
    disk = disks["gen1"] / "win2012.vhdx"
    rc, plan, script = _rebuild(disk, evidence=[disk.parent])
    got = parse(script)
    assert got["generation"] == 1 and plan["generation"] == 1
    assert plan["generation_source"] == "partition-style"
    assert got["secure_boot"] is None  # generation 1 has no UEFI firmware to set
    assert got["disks"] == [("IDE", 0, 0, str(disk.resolve()))]
    assert plan["guest"]["guest_os"] == "windows" and plan["guest"]["partition_style"] == "mbr"
    # Memory and processors were not read: assumed, and the script says so on those lines.
    assert {"memory_startup_bytes", "processor_count"} <= set(plan["assumed"])
    line = next(c for c in got["commands"] if c.startswith("Set-VMProcessor"))
    assert "ASSUMED" in line and got["processors"] == 2
    assert rc == 0 and plan["warnings"] == []


def test_generation_2_checkpoint_leaf_is_attached_with_its_chain(disks: dict[str, Path]) -> None:
    leaf, base = disks["gen2-leaf"], disks["gen2-base"]
    _rc, plan, script = _rebuild(leaf, evidence=[leaf.parent])
    got = parse(script)
    assert got["generation"] == 2 and plan["generation_source"] == "partition-style"
    assert (got["secure_boot"], got["template"]) == ("On", "MicrosoftWindows")
    assert got["disks"] == [("SCSI", 0, 0, str(leaf.resolve()))]  # the leaf, never its base
    assert plan["disks"][0]["chain"] == [str(base.resolve()), str(leaf.resolve())]
    # Every file of the chain is checked before anything is created; the first boot device is
    # the disk attached; the network is cut and a checkpoint taken before the first boot.
    required = script.split("$RequiredFiles = @(")[1].split(")")[0]
    assert ps_quote(str(base.resolve())) in required and ps_quote(str(leaf.resolve())) in required
    assert "-FirstBootDevice (Get-VMHardDiskDrive -VMName $VMName -ControllerType SCSI " in script
    assert "Get-VMNetworkAdapter -VMName $VMName | Disconnect-VMNetworkAdapter" in got["commands"]
    checkpoint = got["commands"].index(
        "Checkpoint-VM -Name $VMName -SnapshotName 'hvrescue: before first boot'"
    )
    assert checkpoint > max(i for i, c in enumerate(got["commands"]) if "VMHardDiskDrive" in c)
    assert not any(c.startswith("Start-VM") for c in got["commands"])  # printed, never started
    assert script.startswith("#Requires -RunAsAdministrator\n")


def test_a_folder_without_configuration_gets_its_newest_leaf(disks: dict[str, Path]) -> None:
    folder = disks["gen2-leaf"].parent
    _rc, plan, script = _rebuild(folder, evidence=[folder])
    assert parse(script)["disks"] == [("SCSI", 0, 0, str(disks["gen2-leaf"].resolve()))]
    assert plan["generation"] == 2 and plan["configuration"] is None


def test_linux_with_shim_gets_the_uefi_ca_template(disks: dict[str, Path]) -> None:
    disk = disks["linux-shim"]
    _rc, plan, script = _rebuild(disk, evidence=[disk.parent])
    got = parse(script)
    assert got["generation"] == 2
    assert (got["secure_boot"], got["template"]) == ("On", "MicrosoftUEFICertificateAuthority")
    assert plan["guest"]["guest_os"] == "linux" and plan["guest"]["shim"] is True
    assert plan["guest"]["os_name"] == "Ubuntu 22.04.4 LTS"
    assert got["disks"] == [("SCSI", 0, 0, str(disk.resolve()))]


def test_linux_without_shim_gets_secure_boot_off_and_a_warning(disks: dict[str, Path]) -> None:
    disk = disks["linux-noshim"]
    rc, plan, script = _rebuild(disk, evidence=[disk.parent])
    got = parse(script)
    assert (got["generation"], got["secure_boot"], got["template"]) == (2, "Off", None)
    assert [w["key"] for w in plan["warnings"]] == ["ui.rebuild.warn.linux-without-shim"]
    assert rc == 1


def test_gpt_without_esp_is_generation_2_with_a_warning(disks: dict[str, Path]) -> None:
    disk = disks["noesp"]
    rc, plan, script = _rebuild(disk, evidence=[disk.parent])
    assert parse(script)["generation"] == 2
    assert plan["guest"]["efi_system_partition"] is False
    assert "ui.rebuild.warn.gpt-without-esp" in [w["key"] for w in plan["warnings"]]
    assert "WARNING: " in script and rc == 1


@pytest.fixture
def vm_folder(tmp_path: Path, disks: dict[str, Path]) -> Path:
    """A VM folder as Hyper-V lays it out, with the public test.vmcx and the disk it names."""
    if not VMCX.is_file():
        pytest.skip("needs ../shared/corpus (test.vmcx)")
    pytest.importorskip("dissect.hypervisor")
    folder = tmp_path / "Other Location"
    (folder / "Virtual Machines").mkdir(parents=True)
    shutil.copy(VMCX, folder / "Virtual Machines" / "282874FC-59D6-4F30-BC04-5FDD909C82E0.vmcx")
    (folder / "Virtual Hard Disks").mkdir()
    shutil.copy(disks["gen1"] / "win2012.vhdx", folder / "Virtual Hard Disks/Other Location.vhdx")
    return folder


def test_memory_and_processors_come_from_the_configuration(vm_folder: Path) -> None:
    _rc, plan, script = _rebuild(vm_folder, evidence=[vm_folder])
    got = parse(script)
    disk = (vm_folder / "Virtual Hard Disks/Other Location.vhdx").resolve()
    assert plan["name"] == "Other Location" and plan["generation_source"] == "configuration"
    assert got["generation"] == 1
    assert got["memory"] == 1024 * MiB == plan["memory_startup_bytes"]
    assert got["processors"] == 1 == plan["processor_count"]
    assert not {"memory_startup_bytes", "processor_count", "name"} & set(plan["assumed"])
    line = next(c for c in got["commands"] if c.startswith("Set-VMProcessor"))
    assert "ASSUMED" not in line
    assert got["disks"] == [("IDE", 0, 0, str(disk))]
    configured = "C:\\Users\\Public\\Documents\\Hyper-V\\Virtual Hard Disks\\Other Location.vhdx"
    assert plan["disks"][0]["configured_path"] == configured
    assert plan["network_adapters"] == [
        {"name": "Network Adapter", "switch": None, "connected": False, "static_mac": None}
    ]


def test_a_configured_disk_that_is_missing_is_refused(vm_folder: Path) -> None:
    (vm_folder / "Virtual Hard Disks/Other Location.vhdx").unlink()
    result = run_cli("rebuild", vm_folder, evidence=[vm_folder])
    assert result.rc == 2 and result.stdout == ""
    assert "Other Location.vhdx" in result.stderr and "not there" in result.stderr


def test_two_vms_in_one_folder_are_refused_with_their_list(vm_folder: Path) -> None:
    other = vm_folder / "Other VM" / "Virtual Machines"
    other.mkdir(parents=True)
    shutil.copy(VMCX, other / "AAAAAAAA-59D6-4F30-BC04-5FDD909C82E0.vmcx")
    result = run_cli("rebuild", vm_folder, "--json", evidence=[vm_folder])
    assert result.rc == 2
    error = json.loads(result.stdout)["error"]
    assert error["key"] == "error.rebuild.several-vms" and error["params"]["count"] == 2


def test_no_disk_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("the VM's disks were on the failed LUN\n")
    result = run_cli("rebuild", tmp_path, evidence=[tmp_path])
    assert result.rc == 2 and "No virtual disk" in result.stderr


def test_names_and_paths_cannot_become_commands(disks: dict[str, Path]) -> None:
    disk = disks["gen1"] / "win2012.vhdx"
    name = "db'01\nRemove-Item C:\\ -Recurse #"
    result = run_cli("rebuild", disk, "--name", name, "--switch", "Ext\u2019ern", evidence=[disk])
    assert result.rc in (0, 1)
    lines = result.stdout.splitlines()
    assert not any(ln.startswith("Remove-Item") for ln in lines)
    assert "$VMName = 'db''01 Remove-Item C:\\ -Recurse #'" in lines  # one quoted literal
    assert "-SwitchName 'Ext\u2019\u2019ern'" in result.stdout
    assert ps_quote("a'b\u2018c") == "'a''b\u2018\u2018c'"


def test_output_file_is_written_once_with_a_bom(disks: dict[str, Path], tmp_path: Path) -> None:
    disk = disks["gen1"] / "win2012.vhdx"
    out = tmp_path / "rebuild.ps1"
    first = run_cli("rebuild", disk, "-o", out, evidence=[disk])
    assert first.rc == 0 and first.stdout == ""
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf#Requires -RunAsAdministrator\r\n")
    assert parse(data[3:].decode("utf-8").replace("\r\n", "\n"))["generation"] == 1
    again = run_cli("rebuild", disk, "-o", out, evidence=[disk])
    assert again.rc == 2 and out.read_bytes() == data  # never over an existing file


def test_japanese_comments_same_commands(disks: dict[str, Path]) -> None:
    disk = disks["linux-shim"]
    en = run_cli("rebuild", disk, evidence=[disk])
    ja = run_cli("--lang", "ja", "rebuild", disk, evidence=[disk])
    assert "仮定" in ja.stdout and "初回起動" in ja.stdout

    def commands(text: str) -> list[str]:
        keep = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
        return [ln for ln in keep if "throw" not in ln and "ASSUMED" not in ln and "仮定" not in ln]

    assert commands(en.stdout) == commands(ja.stdout)
    assert parse(ja.stdout)["template"] == "MicrosoftUEFICertificateAuthority"


def test_the_public_vmcx_hardware_is_read() -> None:
    if not VMCX.is_file():
        pytest.skip("needs ../shared/corpus (test.vmcx)")
    pytest.importorskip("dissect.hypervisor")
    from hvrescue.vmconfig import read_config

    vm = read_config(str(VMCX)).as_dict()
    assert (vm["generation"], vm["memory_startup_mb"], vm["processor_count"]) == (1, 1024, 1)
    assert (vm["dynamic_memory"], vm["memory_minimum_mb"]) == (False, 512)
    assert vm["secure_boot"] is False and vm["secure_boot_template"] is None
    assert vm["tpm_enabled"] is None  # no TPM device read: unknown, never "off"
    assert vm["disks"][0]["bus"] == "ide"  # the keys inventory already had are still there


def test_xml_configuration_generation_2_with_secure_boot(tmp_path: Path) -> None:
    """A 2012 R2 XML configuration (the layout rlevchenko.com and Altaro show) read the same
    way: subtype 1 is generation 2; the template GUID maps to its Set-VMFirmware name."""
    from hvrescue.vmconfig import read_config

    xml = tmp_path / "EF259B05-2CDE-4317-8ACF-E80CB364D66C.xml"
    xml.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<configuration>\n'
        '  <properties><name type="string">WikiTest1</name>'
        '<subtype type="integer">1</subtype><type_id type="string">Virtual Machines</type_id>'
        '<version type="integer">1280</version></properties>\n'
        '  <settings><processors><count type="integer">4</count></processors>'
        '<memory><bank><dynamic_memory_enabled type="bool">True</dynamic_memory_enabled>'
        '<limit type="integer">8192</limit><reservation type="integer">512</reservation>'
        '<size type="integer">2048</size></bank></memory></settings>\n'
        '  <_ac6b8dc1-3257-4a70-b1b2-a9c9215659ad_><secure_boot_enabled type="bool">True'
        '</secure_boot_enabled><secure_boot_template_id type="string">'
        "{272E7447-90A4-4563-A4B9-8E4AB00526CE}</secure_boot_template_id>"
        "</_ac6b8dc1-3257-4a70-b1b2-a9c9215659ad_>\n"
        '  <_1bc9500e-ad4b-426e-ad70-d04cbeb2033b_><FriendlyName type="string">LAN</FriendlyName>'
        '<SwitchName type="string">vSwitch-Prod</SwitchName><MacAddress type="string">'
        '00155D012A0B</MacAddress><MacAddressIsStatic type="bool">True</MacAddressIsStatic>'
        "</_1bc9500e-ad4b-426e-ad70-d04cbeb2033b_>\n</configuration>\n",
        encoding="utf-8",
    )
    vm = read_config(str(xml)).as_dict()
    assert vm["generation"] == 2 and vm["processor_count"] == 4
    assert (vm["memory_startup_mb"], vm["memory_minimum_mb"], vm["memory_maximum_mb"]) == (
        2048,
        512,
        8192,
    )
    assert vm["dynamic_memory"] is True and vm["secure_boot"] is True
    assert vm["secure_boot_template"] == "MicrosoftUEFICertificateAuthority"
    assert vm["network_adapters"] == [
        {"name": "LAN", "switch": "vSwitch-Prod", "connected": None, "static_mac": "00155D012A0B"}
    ]


def test_a_folder_with_two_systems_and_no_configuration_is_refused(
    disks: dict[str, Path], tmp_path: Path
) -> None:
    """Without a configuration, two disks that each hold a system belong to two VMs: the
    tool names both rather than pick one."""
    shutil.copy(disks["gen1"] / "win2012.vhdx", tmp_path / "app.vhdx")
    shutil.copy(disks["linux-shim"], tmp_path / "proxy.vhdx")
    result = run_cli("rebuild", tmp_path, "--json", evidence=[tmp_path])
    assert result.rc == 2
    error = json.loads(result.stdout)["error"]
    assert error["key"] == "error.rebuild.several-systems"
    assert "app.vhdx (windows)" in error["params"]["disks"]
    assert "proxy.vhdx (linux)" in error["params"]["disks"]


def test_a_data_disk_without_a_system_is_attached_after_the_boot_disk(
    disks: dict[str, Path], tmp_path: Path
) -> None:
    shutil.copy(disks["linux-shim"], tmp_path / "a-root.vhdx")
    data = tmp_path / "b-data.raw"
    (tmp_path / "empty").mkdir()
    make_ext4(data, 16, tmp_path / "empty")
    to_vhdx(data, tmp_path / "b-data.vhdx")
    data.unlink()
    _rc, plan, script = _rebuild(tmp_path, evidence=[tmp_path])
    assert parse(script)["disks"] == [
        ("SCSI", 0, 0, str((tmp_path / "a-root.vhdx").resolve())),
        ("SCSI", 0, 1, str((tmp_path / "b-data.vhdx").resolve())),
    ]
    assert plan["generation"] == 2


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=40) | st.binary(max_size=8),
        lambda inner: st.dictionaries(
            st.sampled_from(
                [
                    "properties",
                    "subtype",
                    "settings",
                    "memory",
                    "bank",
                    "size",
                    "processors",
                    "count",
                    "_ac6b8dc1-3257-4a70-b1b2-a9c9215659ad_",
                    "secure_boot_enabled",
                    "secure_boot_template_id",
                    "manifest",
                    "name",
                    "SwitchName",
                    "MacAddress",
                    "MacAddressIsStatic",
                    "_x_",
                    "limit",
                    "reservation",
                    "dynamic_memory_enabled",
                ]
            ),
            inner,
            max_size=6,
        ),
        max_leaves=30,
    )
)
def test_hardware_of_any_damaged_tree_is_typed_or_none(tree: object) -> None:
    """Whatever a damaged store decodes into, the hardware read is None or the right type."""
    from hvrescue.vmconfig.hardware import hardware

    got = hardware(tree if isinstance(tree, dict) else {"configuration": tree})
    assert got["generation"] in (None, 1, 2)
    for key in ("memory_startup_mb", "memory_minimum_mb", "memory_maximum_mb"):
        assert got[key] is None or (isinstance(got[key], int) and got[key] > 0)
    assert got["processor_count"] is None or 0 < got["processor_count"] <= 2048
    for key in ("dynamic_memory", "secure_boot", "tpm_enabled"):
        assert got[key] in (None, True, False)
    assert got["secure_boot_template_id"] is None or len(got["secure_boot_template_id"]) == 36
    assert all(isinstance(a, dict) for a in got["network_adapters"])


def _xml_config(path: Path, disk: str, template: str) -> None:
    """A 2012 R2 configuration of a generation 2 VM with one SCSI disk and one adapter."""
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<configuration>\n'
        '  <properties><name type="string">app01</name><subtype type="integer">1</subtype>'
        '<type_id type="string">Virtual Machines</type_id></properties>\n'
        '  <settings><processors><count type="integer">4</count></processors><memory><bank>'
        '<dynamic_memory_enabled type="bool">True</dynamic_memory_enabled>'
        '<limit type="integer">8192</limit><reservation type="integer">512</reservation>'
        '<size type="integer">2048</size></bank></memory></settings>\n'
        '  <_ac6b8dc1-3257-4a70-b1b2-a9c9215659ad_><secure_boot_enabled type="bool">True'
        f'</secure_boot_enabled><secure_boot_template_id type="string">{template}'
        "</secure_boot_template_id></_ac6b8dc1-3257-4a70-b1b2-a9c9215659ad_>\n"
        '  <_1bc9500e-ad4b-426e-ad70-d04cbeb2033b_><FriendlyName type="string">LAN'
        '</FriendlyName><SwitchName type="string">vSwitch-Prod</SwitchName>'
        "</_1bc9500e-ad4b-426e-ad70-d04cbeb2033b_>\n"
        "  <_d422512d-2bf2-4752-809d-7b82b5fcb1b4_><controller0><drive0>"
        f'<pathname type="string">{disk}</pathname><type type="string">VHD</type>'
        "</drive0></controller0></_d422512d-2bf2-4752-809d-7b82b5fcb1b4_>\n"
        "</configuration>\n",
        encoding="utf-8",
    )


def test_a_generation_2_configuration_sets_firmware_memory_and_network(
    disks: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "app01"
    (folder / "Virtual Machines").mkdir(parents=True)
    (folder / "Virtual Hard Disks").mkdir()
    for disk in (disks["gen2-base"], disks["gen2-leaf"]):
        shutil.copy(disk, folder / "Virtual Hard Disks" / disk.name)
    configured = "D:\\VMs\\app01\\Virtual Hard Disks\\child.avhdx"
    template = "{272E7447-90A4-4563-A4B9-8E4AB00526CE}"  # the configuration's, not the guest's
    _xml_config(
        folder / "Virtual Machines/0A1B2C3D-0000-4000-8000-00155D012A0B.xml", configured, template
    )
    rc, plan, script = _rebuild(folder, evidence=[folder])
    got = parse(script)
    leaf = (folder / "Virtual Hard Disks/child.avhdx").resolve()
    assert got["disks"] == [("SCSI", 0, 0, str(leaf))]
    assert (got["generation"], plan["generation_source"]) == (2, "configuration")
    assert (got["secure_boot"], got["template"]) == ("On", "MicrosoftUEFICertificateAuthority")
    assert (
        "Set-VMMemory -VMName $VMName -StartupBytes 2147483648 -DynamicMemoryEnabled $true "
        "-MinimumBytes 536870912 -MaximumBytes 8589934592" in got["commands"]
    )
    assert got["processors"] == 4 and plan["assumed"] == []
    assert "vSwitch-Prod" in script and rc == 0
    assert not any("Connect-VMNetworkAdapter" in c for c in got["commands"])  # only a comment


def test_a_configuration_naming_a_disk_with_newer_children_keeps_it_and_warns(
    disks: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "app01"
    (folder / "Virtual Machines").mkdir(parents=True)
    (folder / "Virtual Hard Disks").mkdir()
    for disk in (disks["gen2-base"], disks["gen2-leaf"]):
        shutil.copy(disk, folder / "Virtual Hard Disks" / disk.name)
    configured = "D:\\VMs\\app01\\Virtual Hard Disks\\base.vhdx"
    _xml_config(
        folder / "Virtual Machines/vm.xml", configured, "{1734C6E8-3154-4DDA-BA5F-A874CC483422}"
    )
    rc, plan, script = _rebuild(folder, evidence=[folder])
    assert parse(script)["disks"][0][3] == str((folder / "Virtual Hard Disks/base.vhdx").resolve())
    assert "ui.rebuild.warn.newer-children" in [w["key"] for w in plan["warnings"]]
    assert rc == 1


def test_a_surviving_vmgs_with_a_vtpm_is_named_before_the_first_boot(
    disks: dict[str, Path], tmp_path: Path
) -> None:
    """The configuration is lost but the guest state survived: its vTPM (read by the VMGS
    reader) will not move to the new VM, and the script says so before BitLocker asks."""
    try:
        from tests.test_hyperv_formats import vmgs_image
    except ImportError:
        pytest.skip("the VMGS test builder is not there")
    (tmp_path / "Virtual Machines").mkdir()
    vmgs = tmp_path / "Virtual Machines/282874FC-59D6-4F30-BC04-5FDD909C82E0.vmgs"
    vmgs.write_bytes(vmgs_image({1: b"NVRAM" * 300, 3: b"\x01TPM" * 3000, 6: b"kp" * 40}))
    shutil.copy(disks["gen2-base"], tmp_path / "base.vhdx")
    shutil.copy(disks["gen2-leaf"], tmp_path / "child.avhdx")
    rc, plan, script = _rebuild(tmp_path, evidence=[tmp_path])
    warning = next(w for w in plan["warnings"] if w["key"] == "ui.rebuild.warn.vmgs-vtpm")
    assert warning["params"] == {"path": str(vmgs.resolve()), "protector": "true"}
    assert plan["tpm_enabled"] is True and rc == 1
    assert str(vmgs.resolve()) in script  # in the warning at the top of the script
    assert parse(script)["disks"] == [("SCSI", 0, 0, str((tmp_path / "child.avhdx").resolve()))]


def test_a_differencing_disk_whose_parent_is_gone_is_refused(tmp_path: Path) -> None:
    """A script attaching a child without its parent would make a VM that cannot start."""
    from tests.builders import make_chain

    base, child = make_chain(tmp_path / "vm", depth=2)
    base.unlink()
    result = run_cli("rebuild", child, "--json", evidence=[child.parent])
    assert result.rc == 2
    assert json.loads(result.stdout)["error"]["key"].startswith("error.chain")
