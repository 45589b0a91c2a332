"""Look inside a Windows guest offline, read-only, through the chain (log replayed): registry
hives with their transaction logs applied in memory, boot configuration, servicing state,
services and drivers, crash dump headers, event logs and the folder counts that matter. Every
finding becomes a fact with provenance (``<disk>!p<N>:/Windows/...``), so the rules of `triage`
fire from a disk exactly as from collected evidence.

Linux guests (a VM's disk with LVM, XFS or ext4; a WSL 2 distribution's or Docker Desktop's
partitionless ext4.vhdx) are read the same way: distribution and kernels, /etc/fstab against the
volumes present, filesystem state and free space, log tails, Hyper-V integration, and what kind
of disk it is (:mod:`.disk_kind`).

Layout: :mod:`.collect` (``guest_facts``, the one entry point) walks every volume fs.addressing
finds (partitions, a partitionless disk, LVM logical volumes);
:mod:`.artefacts` is the registry of artefact readers, one module per artefact (``bcd``,
``services``, ``servicing``, ``crash_dumps``, ``event_logs``, ``wer``, ``dotnet``,
``registry_hives``, ``linux_os``, ``linux_fstab``, ``linux_fs``, ``linux_logs``);
:mod:`.linux_volumes` reads Linux superblocks (identity, state, free space);
:mod:`.reconcile` checks fstab across the disks of one VM; :mod:`.context` is what a reader
sees of a volume; :mod:`.hive` reads registry hives through regipy; :mod:`.result` is the
plain-data result."""
