"""eventsourcing's PostgreSQL recorder as Kring uses it (``PROCESS_RECORDER_TOPIC``; imported
only for a PostgreSQL store).

eventsourcing creates a database function for inserting events, ``es_insert_events_uuid``, one
per schema and not per application: every service that starts replaces it with one that inserts
into its own table, and concurrent replacements fail ("tuple concurrently updated"). Kring does
not call it (``POSTGRES_ENABLE_DB_FUNCTIONS`` stays off), so it is not created at all, and what
a service creates in a schema is only its own tables (``shared.store``) and eventsourcing's row
type, the same for every service.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import ProgrammingError
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder


class KringPostgresProcessRecorder(PostgresProcessRecorder):
    def __init__(self, datastore: PostgresDatastore, **tables: Any) -> None:
        super().__init__(datastore, **tables)
        if datastore.enable_db_functions:
            raise ProgrammingError("Kring's stores do not use eventsourcing's database functions")
        self.sql_create_statements.remove(self.sql_create_pg_function_insert_events)
