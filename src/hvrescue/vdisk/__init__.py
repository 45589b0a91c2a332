"""Virtual disks: VHDX/AVHDX and VHD/AVHD parsing, validation, chains and one read API."""
