"""The ``kring`` command line: run the system, walk a demo case, read audit trails."""
