-- The publication Debezium's pgoutput plugin streams from. Owned by {app_user} (who owns
-- the tables); Debezium must run with publication.autocreate.mode=disabled, because
-- 'filtered' would try to CREATE/ALTER it, which needs ownership of every table.

CREATE PUBLICATION {publication} FOR TABLE
    ticketing.venues, ticketing.events, ticketing.sections, ticketing.price_levels,
    ticketing.seats, ticketing.seat_inventory, ticketing.holds, ticketing.orders,
    ticketing.heartbeat, ticketing.debezium_signal;
