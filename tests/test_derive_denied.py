"""The disk and VM an access-denied failure names (hvrescue.diagnose.derive_denied)."""

from __future__ import annotations

from hvrescue.diagnose.derive_denied import denied_disks
from hvrescue.facts.model import Fact, Provenance

WHERE = Provenance("post.txt", "line:3")
OTHER_VM = "0f6a2c84-3d1b-4e59-a7c0-9b8e6d4f2a13"


def fact(kind: str, **attrs: object) -> Fact:
    return Fact(kind, dict(attrs), WHERE)


def test_the_denied_line_decides_the_disk_and_get_vm_the_id():
    dialog = fact(
        "dialog",
        instruction="The application encountered an error while attempting to change the state "
        "of 'LAB-SP01'.",
        content="'LAB-SP01' failed to start.\n"
        "Loaded 'D:\\VMs\\LAB-SP01\\boot.iso' fine\n"
        "The file 'D:\\VMs\\LAB-SP01\\LAB-SP01.vhd' does not have the required security "
        "settings. Error: 'General access denied error'",
    )
    facts = [
        dialog,
        fact("vm", name="LAB-DC01", vm_id=OTHER_VM),
        fact("vm", name="LAB-SP01", vm_id="5C2E9A17-4B8D-4F03-B6E1-7D0A3C9F2E58"),
    ]
    got = [f.attributes for f in denied_disks(facts)]
    assert got == [
        {
            "path": "D:\\VMs\\LAB-SP01\\LAB-SP01.vhd",
            "name": "LAB-SP01",
            "vm_name": "LAB-SP01",
            "vm_id": "5c2e9a17-4b8d-4f03-b6e1-7d0a3c9f2e58",
            "source": "dialog",
        }
    ]


def test_the_id_in_the_message_wins_and_japanese_wording_counts():
    event = fact(
        "event",
        provider="Microsoft-Windows-Hyper-V-Worker",
        event_id=12140,
        message="'SRV-APP01': 添付ファイル 'E:\\Hyper-V\\SRV-APP01.avhdx' を開けませんでした。"
        "エラー: '一般的なアクセス拒否エラー' (0x80070005)。"
        "(仮想マシン ID 3F2A9C41-7B0E-4C55-9D61-0A8E5B7C2D10)",
    )
    facts = [event, fact("vm", name="SRV-APP01", vm_id=OTHER_VM)]
    (got,) = denied_disks(facts)
    assert got.attributes["path"] == "E:\\Hyper-V\\SRV-APP01.avhdx"
    assert got.attributes["vm_id"] == "3f2a9c41-7b0e-4c55-9d61-0a8e5b7c2d10"
    assert got.provenance == WHERE


def test_failures_that_are_not_access_denied_or_name_no_disk_give_nothing():
    facts = [
        fact(
            "event",
            message="'web01': Failed to open attachment 'D:\\VMs\\web01.vhdx'. Error: 'The system "
            "cannot find the file specified.' (0x80070002).",
        ),
        fact("ps_error", message="Start-VM : Access is denied.", command="Start-VM"),
    ]
    assert denied_disks(facts) == []
