-- seatflow: run-as superuser
-- Least-privilege role that Debezium connects as: it replicates and reads the captured
-- tables, writes only the heartbeat and its signals, and owns nothing.
-- Roles are cluster-wide: a role left by another database is reused, its password reset.

DO $migration$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {debezium_user_literal}) THEN
        ALTER ROLE {debezium_user} WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE
            PASSWORD {debezium_password};
    ELSE
        CREATE ROLE {debezium_user} WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE
            PASSWORD {debezium_password};
    END IF;
END
$migration$;

GRANT CONNECT ON DATABASE {database} TO {debezium_user};
GRANT USAGE ON SCHEMA ticketing TO {debezium_user};
GRANT SELECT ON
    ticketing.venues, ticketing.events, ticketing.sections, ticketing.price_levels,
    ticketing.seats, ticketing.seat_inventory, ticketing.holds, ticketing.orders,
    ticketing.heartbeat, ticketing.debezium_signal
    TO {debezium_user};
-- heartbeat.action.query upserts (INSERT ... ON CONFLICT DO UPDATE).
GRANT INSERT, UPDATE ON ticketing.heartbeat TO {debezium_user};
-- Incremental snapshots write their watermarks into the signal table.
GRANT INSERT ON ticketing.debezium_signal TO {debezium_user};
