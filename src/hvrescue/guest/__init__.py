"""Look inside a Windows guest offline, read-only, through the chain (log replayed): registry
hives with their transaction logs applied in memory, boot configuration, servicing state,
services and drivers, crash dump headers, event logs and the folder counts that matter. Every
finding becomes a fact with provenance (``<disk>!p<N>:/Windows/...``), so the rules of `triage`
fire from a disk exactly as from collected evidence.

Layout: :mod:`.collect` (``guest_facts``, the one entry point) walks the partitions;
:mod:`.artefacts` is the registry of artefact readers, one module per artefact (``bcd``,
``services``, ``servicing``, ``crash_dumps``, ``event_logs``, ``wer``, ``dotnet``,
``registry_hives``); :mod:`.context` is what a reader sees of a volume; :mod:`.hive` reads
registry hives through regipy; :mod:`.result` is the plain-data result."""
