"""What the deployment files already name but the code does not provide yet.

The deployment is built to the names the parts agreed on (settings, commands); where another
piece of work has not landed in main yet, its name is listed here with who brings it. The tests
accept a pending name only while it is pending: once the code provides it, they fail until it is
taken off this list, so a name that landed differently cannot hide here. docs/operations.md lists
the same slots for operators ("Pending"), checked by a test.
"""

from __future__ import annotations

#: KRING_ variables the deployment sets that no settings class reads yet: name -> who brings it.
PENDING_SETTINGS: dict[str, str] = {}

#: `kring` subcommands the deployment runs that the CLI does not have yet: words -> who brings it.
PENDING_COMMANDS: dict[tuple[str, ...], str] = {}
