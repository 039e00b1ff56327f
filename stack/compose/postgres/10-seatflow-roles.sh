#!/bin/sh
# Runs once, when the postgres volume is still empty (docker-entrypoint-initdb.d): what
# pipelines/stack/postgres.py bootstrap() does for the local stack, the app role owning the
# ticketing database and the registry role owning the registry's. The Debezium role and the
# schema come later, from `seatflow migrate` on the host, as with the local stack.
# Unlike bootstrap(), a password changed later in .env is not applied to an existing volume:
# ALTER ROLE it by hand, or start afresh with `docker compose down -v`.
# No `set -u` or `exit`: the image's entrypoint sources this file when it isn't executable.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
    -v app_user="${SEATFLOW_PG_APP_USER:?}" \
    -v app_password="${SEATFLOW_PG_APP_PASSWORD:?}" \
    -v app_database="${SEATFLOW_PG_DATABASE:?}" \
    -v registry_user="${SEATFLOW_PG_REGISTRY_USER:?}" \
    -v registry_password="${SEATFLOW_PG_REGISTRY_PASSWORD:?}" \
    -v registry_database="${SEATFLOW_PG_REGISTRY_DATABASE:?}" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_database" OWNER :"app_user";
CREATE ROLE :"registry_user" LOGIN PASSWORD :'registry_password';
CREATE DATABASE :"registry_database" OWNER :"registry_user";
SQL
