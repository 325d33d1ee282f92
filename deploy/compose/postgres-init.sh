#!/bin/sh
# PostgreSQL's first start in docker-compose.yml (docker-entrypoint-initdb.d, an empty volume
# only): for each service a login role and a schema it owns, named after the service, with the
# password of that service's own KRING_POSTGRES_URL secret. A service can then reach only its own
# tables; nobody but the superuser can create anything in public.
#
# Reads /run/secrets/<service>_postgres_url (POSTGRES_INIT_SECRETS overrides the folder, for
# tests); connects as the entrypoint does (psql as POSTGRES_USER to POSTGRES_DB).
set -eu

secrets="${POSTGRES_INIT_SECRETS:-/run/secrets}"

services="intake coordination plans followup partners"

# Every file first: a missing one stops the start before anything is created.
for service in $services; do
  file="$secrets/${service}_postgres_password"
  if [ ! -r "$file" ] || [ -z "$(tr -d '\r\n' < "$file")" ]; then
    echo "kring-roles: $file is missing, empty or unreadable (run deploy/make-secrets)" >&2
    exit 1
  fi
done

for service in $services; do
  role="$service"
  password="$(tr -d '\r\n' < "$secrets/${service}_postgres_password")"
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="$role" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE SCHEMA :"role" AUTHORIZATION :"role";
REVOKE ALL ON SCHEMA :"role" FROM PUBLIC;
ALTER ROLE :"role" SET search_path = :"role";
SQL
  echo "kring-roles: role and schema $service created"
done

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v db="$POSTGRES_DB" <<'SQL'
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO intake, coordination, plans, followup, partners;
SQL
