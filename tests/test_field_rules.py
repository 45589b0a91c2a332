"""Rules from the field (issue 14): each cause told apart from its neighbours by the evidence
that names it, with the fix of that cause, and no diagnosis at all on near misses and healthy
evidence. First through the rule engine on facts shaped as the readers give them, then end to
end through `hvrescue triage` on incident folders of evidence as people paste it
(tests/fixtures/field, sources in its README)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hvrescue.diagnose.engine import SEVERITY_ORDER, Diagnosis, evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.facts.model import Fact, Provenance
from hvrescue.report.i18n import Messages
from tests.helpers import JAPANESE, triage_incident

RULES = load_rules()
FIELD = Path(__file__).parent / "fixtures" / "field"
CAPI2_RULES = {
    "vss.system-writer-missing.file-permissions",
    "vss.capi2-513.missing-binary",
    "vss.capi2-513.bad-path",
    "vss.capi2-513.undetermined",
}


def facts(*items: tuple[str, dict[str, Any]]) -> list[Fact]:
    return [
        Fact(kind, attrs, Provenance("/evidence/pasted.txt", f"line:{i + 1}"))
        for i, (kind, attrs) in enumerate(items)
    ]


def diagnose(*items: tuple[str, dict[str, Any]]) -> list[Diagnosis]:
    return evaluate(RULES, facts(*items))


def ids(found: list[Diagnosis]) -> list[str]:
    return [d.rule.id for d in found]


def serious(found: list[Diagnosis]) -> list[str]:
    return [d.rule.id for d in found if SEVERITY_ORDER[d.severity] >= SEVERITY_ORDER["warning"]]


def rendered(diagnosis: Diagnosis, lang: str = "en") -> dict[str, Any]:
    return diagnosis.as_dict(lang, Messages(lang))


def event(provider: str | None, event_id: int | None, message: str, **more: Any):
    return ("event", {"provider": provider, "event_id": event_id, "message": message, **more})


# --------------------------------------------------------------------------- CAPI2 513 / 512

HEAD = (
    "Cryptographic Services failed while processing the OnIdentity() call in the System Writer "
    "Object."
)
HEAD_JA = (
    "暗号化サービスで、System Writer オブジェクトの OnIdentity() "
    "呼び出しの処理中にエラーが発生しました。"
)


def capi2(
    detail: str, error: str, head: str = HEAD, provider: str | None = "Microsoft-Windows-CAPI2"
):
    system_error = "システム エラー" if head == HEAD_JA else "System Error"
    details = "詳細" if head == HEAD_JA else "Details"
    text = f"{head}\n\n{details}:\n{detail}\n\n{system_error}:\n{error}\n."
    return event(provider, 513 if provider else None, text)


@pytest.mark.parametrize(
    ("detail", "error", "head", "provider", "expected"),
    [
        (
            "AddCoreCsiFiles : BeginFileEnumeration() failed.",
            "Access is denied.",
            HEAD,
            "Microsoft-Windows-CAPI2",
            "vss.system-writer-missing.file-permissions",
        ),
        (
            "AddCoreCsiFiles : BeginFileEnumeration() failed.",
            "アクセスが拒否されました。",
            HEAD_JA,
            "Microsoft-Windows-CAPI2",
            "vss.system-writer-missing.file-permissions",
        ),
        (
            "AddLegacyDriverFiles: Unable to back up image of binary Contoso Storage Filter.",
            "The system cannot find the file specified.",
            HEAD,
            "Microsoft-Windows-CAPI2",
            "vss.capi2-513.missing-binary",
        ),
        (
            "AddLegacyDriverFiles: Unable to back up image of binary Contoso Storage Filter.",
            "指定されたファイルが見つかりません。",
            HEAD_JA,
            "CAPI2",
            "vss.capi2-513.missing-binary",
        ),
        (
            "AddCoreCsiFiles : RtlConvertNtFilePathToWin32Path() failed.",
            "0xC0000039 (unresolvable).",
            HEAD,
            "Microsoft-Windows-CAPI2",
            "vss.capi2-513.bad-path",
        ),
        # The message pasted without its header: no provider, no id, the cause still decides.
        (
            "AddLegacyDriverFiles : RtlConvertNtFilePathToWin32Path() failed.",
            "Object Path Component was not a directory object.",
            HEAD,
            None,
            "vss.capi2-513.bad-path",
        ),
        (
            "AddLegacyDriverFiles: Unable to back up image of binary Contoso Storage Filter.",
            "The system cannot find the file specified.",
            HEAD,
            None,
            "vss.capi2-513.missing-binary",
        ),
        (
            "CSystemWriter::AddVolumesOfComponent : enumeration failed.",
            "The parameter is incorrect.",
            HEAD,
            "Microsoft-Windows-CAPI2",
            "vss.capi2-513.undetermined",
        ),
    ],
)
def test_capi2_513_detail_decides_the_one_cause(detail, error, head, provider, expected):
    found = diagnose(capi2(detail, error, head, provider))
    assert [i for i in ids(found) if i in CAPI2_RULES] == [expected]
    assert found[0].rule.id == expected


def test_capi2_513_without_detail_claims_no_cause():
    found = diagnose(event("Microsoft-Windows-CAPI2", 513, HEAD))
    assert [i for i in ids(found) if i in CAPI2_RULES] == ["vss.capi2-513.undetermined"]
    d = found[0]
    assert d.severity == "warning" and d.confidence < 0.5
    steps = rendered(d)["steps"]
    assert any("EventID=513" in s["command"] for s in steps)  # read the full event, no fix


def test_capi2_513_is_old_news_when_system_writer_is_back():
    writers = ("vss_writer_list", {"count": 9, "names": ["System Writer", "ASR Writer"]})
    for error in ("Access is denied.", "The system cannot find the file specified.", "0xC0000039"):
        found = diagnose(capi2("AddLegacyDriverFiles: x", error), writers)
        assert not set(ids(found)) & CAPI2_RULES, error
    found = diagnose(event("Microsoft-Windows-CAPI2", 513, HEAD), writers)
    assert not set(ids(found)) & CAPI2_RULES


def test_capi2_detail_from_a_signal_when_the_message_lost_it():
    """A signature's event keeps only its own line; the code on a later line is a signal."""
    found = diagnose(
        event(
            "Microsoft-Windows-CAPI2",
            513,
            HEAD,
            format="signature",
            signature="capi2-513-system-writer",
        ),
        (
            "signal",
            {"type": "ntstatus", "value": "0xc0000039", "text": "0xC0000039 (unresolvable)."},
        ),
    )
    assert [i for i in ids(found) if i in CAPI2_RULES] == ["vss.capi2-513.bad-path"]


def test_access_denied_on_a_driver_image_adds_the_service_step():
    found = diagnose(
        capi2(
            (
                "AddLegacyDriverFiles: Unable to back up image of binary Microsoft Link-Layer "
                "Discovery Protocol."
            ),
            "Access is denied.",
        )
    )
    d = next(d for d in found if d.rule.id == "vss.system-writer-missing.file-permissions")
    commands = [s["command"] for s in rendered(d)["steps"]]
    assert any("sc sdshow" in c for c in commands)
    plain = diagnose(capi2("AddCoreCsiFiles : BeginFileEnumeration() failed.", "Access is denied."))
    d = next(d for d in plain if d.rule.id == "vss.system-writer-missing.file-permissions")
    assert not any("sc sdshow" in s["command"] for s in rendered(d)["steps"])
    assert any("PendingRenames" in s["command"] for s in rendered(d)["steps"])


# --------------------------------------------------------------------------- virtualization off

VIRT = "host.hypervisor-not-running.virtualization-disabled"


@pytest.mark.parametrize(
    "info",
    [
        # systeminfo | findstr: only the requirement lines (structured booleans).
        {
            "virtualization_firmware_enabled": False,
            "vm_monitor_mode_extensions": True,
            "confidence": 0.9,
        },
        # Get-ComputerInfo: HyperVRequirementDataExecutionPreventionAvailable : False.
        {
            "hypervisor_detected": False,
            "virtualization_firmware_enabled": True,
            "dep_available": False,
        },
        # msinfo32 in Japanese, read into the same booleans.
        {"virtualization_firmware_enabled": False, "slat": True, "dep_available": True},
        # An older systeminfo reading: the lines themselves.
        {
            "hypervisor_detected": False,
            "hyperv_requirements": "VM Monitor Mode Extensions: Yes",
            "hyperv_requirements_items": [
                "Virtualization Enabled In Firmware: No",
                "Second Level Address Translation: Yes",
                "Data Execution Prevention Available: Yes",
            ],
        },
        {
            "hyperv_requirements": "VM モニター モード拡張機能: はい",
            "hyperv_requirements_items": ["ファームウェアで仮想化が有効になっています: いいえ"],
        },
    ],
)
def test_virtualization_disabled_from_one_output_alone(info):
    found = diagnose(("system_info", info))
    assert ids(found)[0] == VIRT
    d = rendered(found[0])
    assert any("VT-x" in s["text"] and "DEP" in s["text"] for s in d["steps"])
    ja = rendered(found[0], "ja")
    assert JAPANESE.search(ja["title"]) and "ファームウェア" in ja["title"]


@pytest.mark.parametrize(
    "infos",
    [
        [
            {
                "hypervisor_detected": False,
                "vm_monitor_mode_extensions": True,
                "virtualization_firmware_enabled": True,
                "slat": True,
                "dep_available": True,
            }
        ],
        [{"hypervisor_detected": True}],
        [{"virtualization_firmware_enabled": False}, {"hypervisor_detected": True}],
        [{"os_name": "Microsoft Windows Server 2022 Standard", "slat": True}],
        [{"virtualization_firmware_enabled": None, "dep_available": None}],
    ],
    ids=["all-yes", "hypervisor-running", "running-elsewhere", "partial", "unknown"],
)
def test_virtualization_near_misses_say_nothing(infos):
    found = diagnose(*[("system_info", i) for i in infos])
    assert serious(found) == []


# --------------------------------------------------------------------------- merges

MERGE_19100 = (
    "'SRV-APP01' background disk merge failed to complete: {}. (Virtual machine ID "
    "3F2A9C41-7B0E-4C55-9D61-0A8E5B7C2D10)"
)
FS_LIMIT = (
    "The requested operation could not be completed due to a file system limitation (0x80070299)"
)
NO_SPACE = "There is not enough space on the disk. (0x80070070)"


def test_merge_failure_for_a_file_system_limitation_ranks_first_with_its_own_fix():
    found = diagnose(
        event("Hyper-V-VMMS", 19100, MERGE_19100.format(FS_LIMIT)),
        (
            "vhd",
            {
                "path": "D:\\VMs\\SRV-APP01.vhdx",
                "vhd_type": "Dynamic",
                "fragmentation_percentage": 91,
            },
        ),
        (
            "vhd",
            {
                "path": "D:\\VMs\\SRV-APP01_8C1E.avhdx",
                "vhd_type": "Differencing",
                "fragmentation_percentage": 3,
            },
        ),
    )
    assert ids(found)[0] == "vdisk.merge-failed.filesystem-limitation"
    assert "vdisk.merge-failed.disk-full" not in ids(found)
    assert "vdisk.merge-interrupted" in ids(found)  # the broad rule still stands, below
    commands = [s["command"] for s in rendered(found[0])["steps"]]
    assert any('compact /q "D:\\VMs\\SRV-APP01.vhdx"' in c for c in commands)  # the fragmented one
    assert not any("SRV-APP01_8C1E" in c for c in commands)
    assert any(c.startswith("Move-VMStorage") for c in commands)


def test_merge_failure_for_lack_of_space_frees_space():
    found = diagnose(event("Microsoft-Windows-Hyper-V-VMMS", 19100, MERGE_19100.format(NO_SPACE)))
    assert ids(found)[0] == "vdisk.merge-failed.disk-full"
    assert "vdisk.merge-failed.filesystem-limitation" not in ids(found)
    top = rendered(found[0])
    assert any("Get-Volume" in s["command"] for s in top["steps"])
    assert any(".avhdx" in a for a in top["avoid"])
    assert (
        found[0].confidence
        > next(d for d in found if d.rule.id == "storage.no-room-to-merge").confidence
    )


# Lack of space is a merge failure only with a merge (or a checkpoint's .avhdx) in the
# evidence (task H26): the same message during an export or a copy is host.copy-target-full's.
# The StorageVSP and the Japanese cases used to stand alone; they now carry their merge context.
AVHDX_RECOVERY = event(
    "Microsoft-Windows-Hyper-V-StorageVSP",
    5,
    "Storage device 'D:\\Hyper-V\\SRV-DB02\\SRV-DB02_1F0C.avhdx' changed recovery state",
)
MERGE_JA = event(
    "Microsoft-Windows-Hyper-V-VMMS",
    19070,
    "'FILE-SV' のバックグラウンド ディスク マージが開始されました。",
)


@pytest.mark.parametrize(
    "evidence",
    [
        [
            AVHDX_RECOVERY,
            event("Microsoft-Windows-Hyper-V-StorageVSP", 4, "New status = Disk Full"),
        ],
        [
            (
                "ps_error",
                {
                    "command": "Remove-VMSnapshot",
                    "message": "Operation failed. There is not enough space on the disk. "
                    "(0x80070070)",
                    "codes": ["0x80070070"],
                },
            )
        ],
        [
            MERGE_JA,
            event(
                None,
                None,
                "ディスクに十分な空き領域がありません。",
                format="signature",
                signature="disk-full",
                codes=["0x80070070"],
            ),
        ],
    ],
)
def test_lack_of_space_in_any_layout(evidence):
    assert ids(diagnose(*evidence))[0] == "vdisk.merge-failed.disk-full"
    # Without the merge context it is not a merge failure.
    alone = [e for e in evidence if e not in (AVHDX_RECOVERY, MERGE_JA)]
    if len(alone) < len(evidence):
        assert "vdisk.merge-failed.disk-full" not in ids(diagnose(*alone))


def test_file_system_limitation_from_a_signature_with_no_provider():
    found = diagnose(
        event(
            None,
            None,
            "ファイル システムの制限のため、要求された操作を完了できませんでした。",
            format="signature",
            signature="file-system-limitation",
            codes=["0x80070299"],
        )
    )
    assert ids(found)[0] == "vdisk.merge-failed.filesystem-limitation"


def test_merge_near_misses():
    started = event("Hyper-V-VMMS", 19070, "'SRV-APP01' background disk merge has been started.")
    roomy = (
        "volume",
        {
            "drive_letter": "D",
            "filesystem": "NTFS",
            "size": 2 * 10**12,
            "free": 8 * 10**11,
            "health": "Healthy",
        },
    )
    fragmented = ("vhd", {"path": "D:\\VMs\\SRV-APP01.vhdx", "fragmentation_percentage": 64})
    assert serious(diagnose(started, roomy, fragmented)) == []
    other = event(
        "Application Error", 1000, "Faulting application name: app.exe, exception code 0x80070299"
    )
    assert "vdisk.merge-failed.filesystem-limitation" not in ids(diagnose(other))


# ------------------------------------------------------------------------ checkpoint disk missing

AVHDX = (
    "D:\\Hyper-V\\SRV-APP01\\Virtual Hard "
    "Disks\\SRV-APP01_6E0B2F4C-1D3A-4E8B-9C57-2A1F0D4B8E63.avhdx"
)


@pytest.mark.parametrize(
    "evidence",
    [
        (
            "ps_error",
            {
                "command": "Remove-VMSnapshot",
                "message": (
                    f"'SRV-APP01' is missing a checkpoint. The checkpoint disk '{AVHDX}' could "
                    "not be found. The system cannot find the file specified. (0x80070002)"
                ),
                "codes": ["0x80070002"],
                "confidence": 0.9,
            },
        ),
        event(
            "Microsoft-Windows-Hyper-V-VMMS",
            None,
            (
                f"Failed to get VHD parent '{AVHDX}'. The system cannot find the file specified. "
                "(0x80070002)"
            ),
        ),
        event(
            "Microsoft-Windows-Hyper-V-Worker",
            12140,
            (
                f"'SRV-APP01': Failed to open attachment '{AVHDX}'. Error: 'The system cannot "
                "find the file specified.' (0x80070002)."
            ),
        ),
        (
            "dialog",
            {
                "title": "Hyper-V Manager",
                "instruction": (
                    "An error occurred while attempting to start the selected virtual machine(s)."
                ),
                "content": (
                    f"'SRV-APP01' failed to start. ... Failed to open attachment '{AVHDX}'. "
                    "Error: 'The system cannot find the file specified.'"
                ),
                "codes": ["0x80070002"],
            },
        ),
        event(
            None,
            None,
            "Failed to get VHD parent",
            format="signature",
            signature="vhd-parent-not-found",
            codes=[],
        ),
    ],
    ids=["ps-error", "vmms", "worker", "dialog", "signature"],
)
def test_missing_checkpoint_disk_ranks_above_the_broader_parent_rule(evidence):
    found = diagnose(evidence, ("signal", {"type": "vdisk_path", "value": AVHDX, "text": "..."}))
    assert ids(found)[0] == "vdisk.checkpoint-disk-missing"
    d = rendered(found[0])
    assert d["severity"] == "critical"
    assert any(AVHDX.rsplit("\\", 1)[1] in s["command"] for s in d["steps"])  # looks for that file
    assert any("Remove-VMSnapshot" in a for a in d["avoid"])


def test_a_missing_iso_is_not_a_missing_checkpoint():
    found = diagnose(
        event(
            "Microsoft-Windows-Hyper-V-Worker",
            12140,
            (
                "'SRV-APP01': Failed to open attachment 'E:\\ISO\\install.iso'. Error: 'The "
                "system cannot find the file specified.' (0x80070002)."
            ),
        )
    )
    assert "vdisk.checkpoint-disk-missing" not in ids(found)


# --------------------------------------------------------------------------- access denied

VMID = "7E3C2B1A-0F9E-4D8C-B7A6-5F4E3D2C1B0A"
VHDX = "E:\\VMs\\SRV-WEB02\\Virtual Hard Disks\\SRV-WEB02.vhdx"
DENIED = (
    f"'SRV-WEB02': Failed to open attachment '{VHDX}'. Error: 'General access denied error' "
    f"(0x80070005). (Virtual machine ID {VMID})"
)


def test_access_denied_grants_the_vm_account_with_the_id_and_path_from_the_evidence():
    found = diagnose(
        event("Microsoft-Windows-Hyper-V-Worker", 12140, DENIED),
        ("vm", {"name": "SRV-WEB02", "vm_id": VMID.lower(), "state": "Off"}),
        (
            "vm_disk",
            {
                "vm_name": "SRV-WEB02",
                "controller_type": "SCSI",
                "controller_number": 0,
                "controller_location": 0,
                "path": VHDX,
            },
        ),
    )
    assert ids(found)[0] == "vdisk.access-denied"
    assert found[0].confidence > max(d.confidence for d in found[1:]) if found[1:] else True
    commands = [s["command"] for s in rendered(found[0])["steps"]]
    assert f'icacls "{VHDX}" /grant "NT VIRTUAL MACHINE\\{VMID}":(F)' in commands
    assert 'Start-VM -Name "SRV-WEB02"' in commands


def test_access_denied_without_ids_leaves_placeholders_to_fill():
    found = diagnose(
        event(
            None,
            None,
            "Failed to Power on with Error 'General access denied error'.",
            format="signature",
            signature="general-access-denied",
            codes=["0x80070005"],
        )
    )
    assert ids(found)[0] == "vdisk.access-denied"
    en = [s["command"] for s in rendered(found[0])["steps"]]
    assert 'icacls "<path>" /grant "NT VIRTUAL MACHINE\\<VMID>":(F)' in en
    ja = [s["command"] for s in rendered(found[0], "ja")["steps"]]
    assert 'icacls "<パス>" /grant "NT VIRTUAL MACHINE\\<VM の ID>":(F)' in ja


def test_access_denied_near_misses():
    vss = event(
        "VSS",
        8194,
        (
            "Volume Shadow Copy Service error: Unexpected error querying for the "
            "IVssWriterCallback interface. hr = 0x80070005, Access is denied."
        ),
    )
    missing = event(
        "Microsoft-Windows-Hyper-V-Worker",
        12140,
        (
            f"'SRV-WEB02': Failed to open attachment '{VHDX}'. Error: 'The system cannot find "
            "the file specified.' (0x80070002)."
        ),
    )
    for evidence in (vss, missing):
        assert "vdisk.access-denied" not in ids(diagnose(evidence))


# --------------------------------------------------------------------------- Recovery checkpoints


def test_a_leftover_recovery_checkpoint_is_removed_and_only_that_one():
    found = diagnose(
        (
            "checkpoint",
            {
                "vm_name": "SRV-SQL01",
                "name": "SRV-SQL01 - Backup - (11/27/2026 - 22:00:14)",
                "snapshot_type": "Recovery",
                "creation_time": "2026-11-27T22:00:14",
            },
        ),
        (
            "checkpoint",
            {
                "vm_name": "SRV-APP01",
                "name": "Before patch",
                "snapshot_type": "Standard",
                "creation_time": "2026-10-01T09:12:00",
            },
        ),
    )
    assert ids(found) == ["host.recovery-checkpoint-leftover"]
    d = rendered(found[0])
    assert d["severity"] == "warning"
    commands = [s["command"] for s in d["steps"]]
    assert (
        'Get-VMSnapshot -VMName "SRV-SQL01" -Name "SRV-SQL01 - Backup - (11/27/2026 - '
        '22:00:14)" | Remove-VMSnapshot'
    ) in commands
    assert not any("Before patch" in c or "SRV-APP01" in c for c in commands)
    assert commands.index(next(c for c in commands if "Status" in c)) < commands.index(
        next(c for c in commands if "Remove-VMSnapshot" in c)
    )


@pytest.mark.parametrize(
    "kind", ["Standard", "Production", "Replica", "AppConsistentReplica", None]
)
def test_other_checkpoints_are_not_leftovers(kind):
    found = diagnose(("checkpoint", {"vm_name": "SRV-APP01", "name": "x", "snapshot_type": kind}))
    assert serious(found) == []


# --------------------------------------------------------------------------- third-party VSS

VENDOR = (
    "vss_provider",
    {
        "name": "Contoso VSS Hardware Provider",
        "type": "Hardware",
        "provider_id": "{0c7d1a8e-31f4-4b2a-9a55-6c1f9e2b7d40}",
    },
)
MS = ("vss_provider", {"name": "Microsoft Software Shadow Copy provider 1.0", "type": "System"})
HV_IC = ("vss_provider", {"name": "Hyper-V IC Software Shadow Copy Provider", "type": "Software"})
VSS_12293 = event(
    "VSS",
    12293,
    (
        "Volume Shadow Copy Service error: Error calling a routine on a Shadow Copy Provider "
        "{0c7d1a8e-31f4-4b2a-9a55-6c1f9e2b7d40}. [hr = 0x8004230f, The shadow copy provider had "
        "an unexpected error while trying to process the specified operation.]."
    ),
)


@pytest.mark.parametrize(
    "errors",
    [
        [VSS_12293],
        [
            (
                "backup_error",
                {
                    "tool": "wbadmin",
                    "path": None,
                    "code": "0x80042306",
                    "message": "The shadow copy provider vetoed the operation.",
                    "time": None,
                },
            )
        ],
        [("signal", {"type": "hresult", "value": "0x8004230f", "text": "hr = 0x8004230f"})],
        [
            event(
                "volsnap",
                25,
                (
                    "The shadow copies of volume D: were deleted because the shadow copy storage "
                    "could not grow in time."
                ),
                level=2,
            )
        ],
    ],
    ids=["vss-event", "backup-log", "signal", "volsnap"],
)
def test_third_party_provider_with_snapshot_errors(errors):
    found = diagnose(VENDOR, MS, *errors)
    assert ids(found)[0] == "vss.third-party-provider"
    assert "Contoso VSS Hardware Provider" in rendered(found[0])["title"]


def test_a_backup_filter_driver_with_volsnap_errors():
    found = diagnose(
        ("minifilter", {"name": "stcvsm", "altitude": "385200"}),
        event("volsnap", 8, "The flush and hold writes operation on volume D: timed out.", level=2),
    )
    assert ids(found)[0] == "vss.third-party-provider"


def test_third_party_near_misses():
    writers = ("vss_writer_list", {"count": 12, "names": ["System Writer", "ASR Writer"]})
    assert serious(diagnose(VENDOR, MS, writers)) == []  # installed, nothing failing
    assert "vss.third-party-provider" not in ids(diagnose(MS, HV_IC, VSS_12293))  # Microsoft's only


# --------------------------------------------------------------------------- hypervisor resources


@pytest.mark.parametrize(
    "evidence",
    [
        event(
            "Microsoft-Windows-Hyper-V-Hypervisor",
            84,
            (
                "Hypervisor launch failed; The operating system boot loader was unable to "
                "allocate sufficient resources to complete the operation."
            ),
        ),
        event(
            "Hyper-V-Hypervisor",
            83,
            (
                "Hypervisor launch failed; The operating system boot loader was unable to "
                "allocate sufficient memory to complete the operation."
            ),
        ),
        event(
            "Microsoft-Windows-Hyper-V-Hypervisor",
            None,
            (
                "Hypervisor launch failed; the hypervisor boot loader was unable to allocate "
                "sufficient resources to perform the launch."
            ),
            format="signature",
        ),
    ],
)
def test_hypervisor_launch_failing_for_resources(evidence):
    found = diagnose(evidence)
    assert ids(found)[0] == "host.hypervisor-launch-failed.resources"
    assert VIRT not in ids(found)
    assert any("truncatememory" in s["command"] for s in rendered(found[0])["steps"])


def test_hypervisor_resources_near_misses():
    vmx = diagnose(
        event(
            "Microsoft-Windows-Hyper-V-Hypervisor",
            41,
            "Hypervisor launch failed; Either VMX not present or not enabled in BIOS.",
        )
    )
    assert ids(vmx)[0] == VIRT and "host.hypervisor-launch-failed.resources" not in ids(vmx)
    ok = diagnose(
        event(
            "Microsoft-Windows-Hyper-V-Hypervisor", 1, "Hypervisor successfully started.", level=4
        )
    )
    assert serious(ok) == []


# ------------------------------------------------------------------------ 0xc000021a + 0xc0000139

BUGCHECK_1001 = (
    "The computer has rebooted from a bugcheck.  The bugcheck was: 0xc000021a "
    "(0xffffd28e6b5e3b40, 0x00000000{}, 0x00007ffd2c3f1e70, 0x000000d8a6b7f3a0). A dump was "
    "saved in: C:\\Windows\\MEMORY.DMP. Report Id: 112026-9421-01."
)


def test_entry_point_not_found_is_told_apart_from_update_and_edr_causes():
    pending = (
        "package",
        {
            "identity": "Package_for_KB5034768~31bf3856ad364e35~amd64~~17763.5329.1.7",
            "kb": "KB5034768",
            "state_code": "install_pending",
        },
    )
    edr = (
        "service_config",
        {
            "service_name": "edrdrv",
            "binary_path_name": "\\SystemRoot\\System32\\drivers\\edrdrv.sys",
        },
    )
    crash = event(
        "BugCheck", 1001, BUGCHECK_1001.format("c0000139"), time_local="2026-11-20T07:41:12"
    )
    found = diagnose(crash, pending, edr)
    assert ids(found)[0] == "guest.stop-0xc000021a.entry-point-not-found"
    commands = [s["command"] for s in rendered(found[0])["steps"]]
    assert any(c.startswith("sfc /scannow /offbootdir=") for c in commands)
    # Without 0xc0000139 the update and EDR causes keep the lead, and this rule stays silent.
    other = diagnose(
        event("BugCheck", 1001, BUGCHECK_1001.format("c0000005"), time_local="2026-11-20T07:41:12"),
        pending,
    )
    assert ids(other)[0] == "guest.stop-0xc000021a.pending-update"
    assert "guest.stop-0xc000021a.entry-point-not-found" not in ids(other)


def test_entry_point_from_the_blue_screen_text():
    found = diagnose(
        event(
            None,
            None,
            "STOP: c000021a {Fatal System Error}",
            format="signature",
            signature="bugcheck-c000021a",
            codes=["0xc000021a"],
        ),
        (
            "signal",
            {
                "type": "ntstatus",
                "value": "0xc0000139",
                "text": "terminated unexpectedly with a status of 0xc0000139 (0x00000000 0x0).",
            },
        ),
    )
    assert ids(found)[0] == "guest.stop-0xc000021a.entry-point-not-found"
    assert (
        serious(diagnose(("signal", {"type": "ntstatus", "value": "0xc0000139", "text": "x"})))
        == []
    )


# --------------------------------------------------------------------------- healthy evidence


def test_healthy_host_evidence_raises_nothing():
    found = diagnose(
        (
            "vss_writer_list",
            {
                "count": 3,
                "names": ["System Writer", "Registry Writer", "Microsoft Hyper-V VSS Writer"],
            },
        ),
        (
            "vss_writer",
            {"name": "System Writer", "state": "stable", "state_code": 1, "last_error_ok": True},
        ),
        MS,
        (
            "vss_provider_list",
            {"count": 1, "names": ["Microsoft Software Shadow Copy provider 1.0"]},
        ),
        (
            "system_info",
            {
                "host_name": "LAB-HV01",
                "hypervisor_detected": False,
                "vm_monitor_mode_extensions": True,
                "virtualization_firmware_enabled": True,
                "slat": True,
                "dep_available": True,
            },
        ),
        (
            "checkpoint",
            {"vm_name": "SRV-APP01", "name": "Before patch", "snapshot_type": "Standard"},
        ),
        (
            "volume",
            {
                "drive_letter": "D",
                "filesystem": "NTFS",
                "health": "Healthy",
                "size": 2 * 10**12,
                "free": 9 * 10**11,
            },
        ),
        (
            "vhd",
            {
                "path": "D:\\VMs\\SRV-APP01.vhdx",
                "vhd_type": "Dynamic",
                "fragmentation_percentage": 4,
            },
        ),
        event(
            "Microsoft-Windows-Hyper-V-VMMS",
            19070,
            "'SRV-APP01' background disk merge has been started.",
        ),
        event(
            "Microsoft-Windows-Hyper-V-Hypervisor", 1, "Hypervisor successfully started.", level=4
        ),
    )
    assert serious(found) == []


# --------------------------------------------------------------------------- end to end

# folder, expected top diagnosis (None: nothing of warning or worse), a command the steps must
# hold (None: no check), the report language.
INCIDENTS = [
    ("capi2-missing-binary-en", "vss.capi2-513.missing-binary", "sc delete <service>", "en"),
    ("capi2-bare-message-en", "vss.capi2-513.missing-binary", "sc delete <service>", "en"),
    ("capi2-bad-path-en", "vss.capi2-513.bad-path", "ImagePath -NotMatch", "en"),
    ("capi2-denied-ja", "vss.system-writer-missing.file-permissions", "PendingRenames", "ja"),
    ("virt-disabled-findstr-en", VIRT, "systeminfo", "en"),
    ("virt-disabled-msinfo-ja", VIRT, "systeminfo", "ja"),
    ("virt-disabled-computerinfo", VIRT, "systeminfo", "en"),
    (
        "merge-fslimit-en",
        "vdisk.merge-failed.filesystem-limitation",
        'compact /q "D:\\Hyper-V\\SRV-APP01\\Virtual Hard Disks\\SRV-APP01.vhdx"',
        "en",
    ),
    ("merge-diskfull-ja", "vdisk.merge-failed.disk-full", "Get-Volume", "ja"),
    ("chain-broken-test-vhd", "vdisk.chain.parent-missing", "hvrescue chain", "en"),
    (
        "checkpoint-missing-ps",
        "vdisk.checkpoint-disk-missing",
        "SRV-APP01_6E0B2F4C-1D3A-4E8B-9C57-2A1F0D4B8E63.avhdx",
        "en",
    ),
    (
        "access-denied-dialog",
        "vdisk.access-denied",
        (
            'icacls "E:\\VMs\\SRV-WEB02\\Virtual Hard Disks\\SRV-WEB02.vhdx" /grant "NT VIRTUAL '
            'MACHINE\\7E3C2B1A-0F9E-4D8C-B7A6-5F4E3D2C1B0A":(F)'
        ),
        "en",
    ),
    (
        "access-denied-dialog-ja",
        "vdisk.access-denied",
        (
            'icacls "F:\\Hyper-V\\SRV-WEB03\\Virtual Hard Disks\\SRV-WEB03.vhdx" /grant "NT '
            'VIRTUAL MACHINE\\2D4F6A8C-1B3E-4F5A-9C7D-0E1F2A3B4C5D":(F)'
        ),
        "ja",
    ),
    (
        "recovery-checkpoint",
        "host.recovery-checkpoint-leftover",
        (
            'Get-VMSnapshot -VMName "SRV-SQL01" -Name "SRV-SQL01 - Backup - (11/27/2026 - '
            '22:00:14)" | Remove-VMSnapshot'
        ),
        "ja",
    ),
    (
        "third-party-vss",
        "vss.third-party-provider",
        "vssadmin list providers && fltmc filters",
        "en",
    ),
    (
        "hypervisor-resources-en",
        "host.hypervisor-launch-failed.resources",
        "bcdedit /enum {current}",
        "en",
    ),
    (
        "bugcheck-entry-point",
        "guest.stop-0xc000021a.entry-point-not-found",
        "sfc /scannow /offbootdir=",
        "en",
    ),
    ("hypervisor-resources-ja", "host.hypervisor-launch-failed.resources", "truncatememory", "ja"),
    ("storagevsp-disk-full", "vdisk.merge-failed.disk-full", "Resume-VM", "en"),
    ("capi2-near-miss-en", None, None, "en"),
    ("virt-healthy-en", None, None, "en"),
    ("third-party-near-miss", None, None, "en"),
    ("healthy-backup-en", None, None, "en"),
]


@pytest.mark.parametrize(
    ("name", "expected", "command", "lang"), INCIDENTS, ids=[i[0] for i in INCIDENTS]
)
def test_incident_folder_through_the_cli(tmp_path: Path, name: str, expected, command, lang: str):
    triage_incident(FIELD / name, tmp_path, expected, command, lang)


TEST_VHD_BROKEN = (FIELD / "chain-broken-test-vhd" / "test_vhd.txt").read_text(encoding="utf-8")


def test_a_broken_chain_pasted_from_powershell_is_the_missing_parent():
    """Test-VHD's error record (or the sentence alone) names the failure: a differencing disk
    whose parent cannot be found, not an unexplained error."""
    from hvrescue.logs.collect_text import facts_from_text

    found = evaluate(RULES, facts_from_text(TEST_VHD_BROKEN, "post.txt"))
    assert serious(found)[0] == "vdisk.chain.parent-missing"
    assert "generic.unexplained-error" not in ids(found)
    sentence = "Start-VM fails: The chain of virtual hard disks is broken.\n"
    assert serious(evaluate(RULES, facts_from_text(sentence, "p.txt")))[0] == (
        "vdisk.chain.parent-missing"
    )
