"""The command line: thin commands over the library, --json everywhere, stable exit codes."""
