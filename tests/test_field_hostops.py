"""Host operations that used to end as "nothing recognised" or a generic diagnosis (task H14):
the Virtual Machine Management service that does not start, Import-VM failures, a virtual
switch whose adapter cannot be bound, a disk held by another process, Hyper-V Manager refused
by the host, the Hyper-V WMI provider out of reach. End to end through `hvrescue triage` on the
incident folders of ``tests/fixtures/field_hostops`` (sources in its README), then the rules on
facts: the near misses the same codes and words make elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import JAPANESE, run_cli, triage_incident
from tests.test_field_rules import diagnose, ids

FIXTURES = Path(__file__).parent / "fixtures" / "field_hostops"
OURS = {
    "host.vmms-not-running",
    "vm.import-failed.configuration",
    "vm.import-failed.not-found",
    "vm.import-failed.already-exists",
    "host.vswitch-bind-failed",
    "vm.device-in-use",
    "host.manager-cannot-connect",
    "host.wmi-object-not-found",
}

CASES = [
    ("vmms-start-failed-en", "host.vmms-not-running", "sc.exe qc vmms", "en"),
    ("vmms-start-failed-en", "host.vmms-not-running", "Start-Service vmms", "ja"),
    ("vmms-crashed-ja", "host.vmms-not-running", "Get-AuthenticodeSignature", "ja"),
    ("vmms-post-en", "host.vmms-not-running", "Get-WinEvent -LogName System", "en"),
    (
        "import-configuration-en",
        "vm.import-failed.configuration",
        '$report = Compare-VM -Path "E:\\Export\\SRV-WEB04\\Virtual Machines\\'
        '6C1F0A2E-93B4-4D7A-8E25-B0D4F7A61C39.vmcx"',
        "en",
    ),
    (
        "import-configuration-ja",
        "vm.import-failed.configuration",
        "Import-VM -CompatibilityReport $report",
        "ja",
    ),
    ("import-not-found-en", "vm.import-failed.not-found", "Get-VMHostSupportedVersion", "en"),
    ("import-not-found-en", "vm.import-failed.not-found", "<.vmcx のパス>", "ja"),
    ("import-already-exists-en", "vm.import-failed.already-exists", "-GenerateNewId", "en"),
    ("vswitch-bind-en", "host.vswitch-bind-failed", "-ComponentID vms_pp", "en"),
    ("vswitch-bind-ja", "host.vswitch-bind-failed", "<ネットワーク アダプター>", "ja"),
    (
        "device-in-use-en",
        "vm.device-in-use",
        'Get-VHD -Path "D:\\Hyper-V\\Shared\\data01.vhdx"',
        "en",
    ),
    ("device-in-use-ja", "vm.device-in-use", 'handle64.exe -accepteula "SRV-DB07-log.vhdx"', "ja"),
    ("manager-connect-en", "host.manager-cannot-connect", "Hyper-V Administrators", "en"),
    ("manager-connect-ja", "host.manager-cannot-connect", "<Hyper-V ホスト>", "ja"),
    ("wmi-object-not-found-en", "host.wmi-object-not-found", "WindowsVirtualization.V2.mof", "en"),
    ("wmi-object-not-found-ja", "host.wmi-object-not-found", "Get-Service vmms, winmgmt", "ja"),
    ("wmi-object-not-found-post-en", "host.wmi-object-not-found", "mofcomp", "en"),
]


@pytest.mark.parametrize(
    ("case", "expected", "command", "lang"), CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES]
)
def test_incident_is_diagnosed_by_its_own_rule(
    case: str, expected: str, command: str, lang: str, tmp_path: Path
) -> None:
    data = triage_incident(FIXTURES / case, tmp_path, expected, command, lang)
    top = data["diagnoses"][0]
    assert top["severity"] == "error"
    # No generic stand-in leads: the specific rule explains the failure.
    assert "generic.unexplained-error" not in [d["id"] for d in data["diagnoses"]]
    # The first step only looks; the avoid list says what would make it worse.
    assert top["steps"][0]["precondition"] == "none" and top["avoid"]
    if lang == "ja":
        assert JAPANESE.search(top["summary"]) and all(JAPANESE.search(a) for a in top["avoid"])
    else:
        assert not JAPANESE.search(top["title"] + top["summary"])


@pytest.mark.parametrize(
    "case", ["vmms-running-near-miss", "import-ok-near-miss", "vswitch-ok-near-miss"]
)
def test_operations_that_worked_raise_nothing(case: str, tmp_path: Path) -> None:
    triage_incident(FIXTURES / case, tmp_path, None, None, "en")


def test_a_held_disk_ranks_above_the_configuration_mismatch(tmp_path: Path) -> None:
    # "Failed to open attachment" is also read as Worker 12140; the sharing violation is the
    # cause, not a configuration that names the wrong disk.
    data = triage_incident(FIXTURES / "device-in-use-en", tmp_path, "vm.device-in-use", None, "en")
    found = [d["id"] for d in data["diagnoses"]]
    if "vm.config-disk-mismatch" in found:
        assert found.index("vm.device-in-use") < found.index("vm.config-disk-mismatch")


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("0x80041002", "WBEM_E_NOT_FOUND"),
        ("0x8004100E", "WBEM_E_INVALID_NAMESPACE"),
        ("0x80041010", "WBEM_E_INVALID_CLASS"),
        ("0x80041017", "WBEM_E_INVALID_QUERY"),
        ("0x800700B7", "ERROR_ALREADY_EXISTS"),
        ("0x80070020", "ERROR_SHARING_VIOLATION"),
    ],
)
def test_the_codes_of_these_failures_are_explained(code: str, name: str) -> None:
    r = run_cli("--lang", "en", "explain", code)
    assert r.rc == 0 and name in r.stdout, r.stdout


# ------------------------------------------------------------------ the rules on facts


def ps_error(command: str, message: str, **more: Any) -> tuple[str, dict[str, Any]]:
    return ("ps_error", {"command": command, "message": message, "codes": [], **more})


def ours(*items: tuple[str, dict[str, Any]]) -> list[str]:
    return [i for i in ids(diagnose(*items)) if i in OURS]


def test_a_stopped_vmms_counts_only_with_an_exit_code() -> None:
    stopped = {"service_name": "vmms", "running": False, "state": {"code": 1, "name": "STOPPED"}}
    failed = dict(stopped, win32_exit_code={"code": 1067, "name": "(0x42b)"})
    clean = dict(stopped, win32_exit_code={"code": 0, "name": "(0x0)"})
    assert ours(("service_status", failed)) == ["host.vmms-not-running"]
    assert ours(("service_status", clean)) == []
    other = dict(failed, service_name="Spooler")
    assert ours(("service_status", other)) == []


def test_another_service_failing_is_not_vmms() -> None:
    assert (
        ours(
            (
                "event",
                {
                    "provider": "Service Control Manager",
                    "event_id": 7031,
                    "level": 2,
                    "message": "The Print Spooler service terminated unexpectedly.",
                },
            ),
            ps_error("Start-Service", "Service 'Print Spooler (Spooler)' cannot be started."),
        )
        == []
    )


def test_already_exists_belongs_to_the_operation_that_says_it() -> None:
    code = "Cannot create a file when that file already exists. (0x800700B7)."
    switch = ps_error(
        "New-VMSwitch",
        "Failed while adding virtual Ethernet switch connections. Ethernet port "
        "'{7E1A4C92-3B5D-4F08-9C61-2D8E0B7A5F13}' bind failed: " + code,
        codes=["0x800700b7"],
    )
    assert ours(switch) == ["host.vswitch-bind-failed"]
    imported = ps_error("Import-VM", "Failed to import a virtual machine. " + code)
    assert ours(imported) == ["vm.import-failed.already-exists"]
    # The same code from a file copy is neither.
    assert ours(ps_error("Copy-Item", code, codes=["0x800700b7"])) == []


def test_a_sharing_violation_outside_a_device_is_not_ours() -> None:
    in_use = "The process cannot access the file because it is being used by another process."
    assert ours(ps_error("Remove-Item", in_use, codes=["0x80070020"])) == []
    added = ps_error("Add-VMHardDiskDrive", "Failed to add device 'Virtual Hard Disk'. " + in_use)
    assert ours(added) == ["vm.device-in-use"]


def test_a_namespace_error_of_the_hyperv_provider_only() -> None:
    cim = "HRESULT 0x8004100e,Microsoft.Management.Infrastructure.CimCmdlets.GetCimInstanceCommand"
    hyperv = ps_error(
        "Get-CimInstance", "Invalid namespace", error_id=cim, target="root\\virtualization\\v2"
    )
    other = ps_error("Get-CimInstance", "Invalid namespace", error_id=cim, target="root\\cimv2\\x")
    assert ours(hyperv) == ["host.wmi-object-not-found"]
    assert ours(other) == []


def test_a_remote_cmdlet_refused_by_winrm_is_a_connection_problem() -> None:
    refused = ps_error(
        "Get-VM",
        "The WinRM client cannot process the request. Default credentials with Negotiate over "
        "HTTP can be used only if the target machine is part of the TrustedHosts list.",
    )
    assert ours(refused) == ["host.manager-cannot-connect"]
    # A namespace the host lacks is the WMI rule's, not a permission problem.
    namespace = ps_error(
        "Get-VM",
        "The WS-Management service cannot process the request. The CIM namespace "
        "root/virtualization/v2 is invalid.",
    )
    assert ours(namespace) == ["host.wmi-object-not-found"]


def test_a_vm_that_vmms_could_not_start_is_not_vmms_itself() -> None:
    # vmms ran and refused the VM: the hypervisor's components, not the service.
    start_vm = ps_error(
        "Start-VM",
        "The Virtual Machine Management Service failed to start the virtual machine 'DEV01' "
        "because one of the Hyper-V components is not running.",
    )
    assert "host.vmms-not-running" not in ids(diagnose(start_vm))
