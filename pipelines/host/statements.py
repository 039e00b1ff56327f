"""The on-sale's SQL: one statement per buyer step, each one round trip (autocommit,
prepared), each all-or-nothing where a buyer needs it to be."""

from __future__ import annotations

__all__ = ["BUY", "EXPIRE", "HOLD", "RELEASE", "STILL_TAKEN"]

# All-or-nothing hold in one statement: lock the wanted seats that are open right now
# (skipping rows another buyer is locking: that seat is as good as gone), and only if every
# one of them is free, create the hold and mark them held.
HOLD = """
WITH wanted AS (
    SELECT seat_id FROM ticketing.seat_inventory
    WHERE event_id = %(event_id)s AND seat_id = ANY(%(seat_ids)s::bigint[]) AND status = 'open'
    FOR UPDATE SKIP LOCKED
), hold AS (
    INSERT INTO ticketing.holds (event_id, buyer_id, seat_count, expires_at)
    SELECT %(event_id)s, %(buyer_id)s, %(quantity)s,
           now() + make_interval(secs => %(hold_ttl)s::float8)
    WHERE (SELECT count(*) FROM wanted) = %(quantity)s
    RETURNING hold_id, expires_at
)
UPDATE ticketing.seat_inventory si
SET status = 'held', hold_id = hold.hold_id, hold_expires_at = hold.expires_at
FROM hold, wanted
WHERE si.event_id = %(event_id)s AND si.seat_id = wanted.seat_id
RETURNING hold.hold_id
"""

# Converting locks the hold first (the sweeper skips locked holds), so a hold is either
# bought or expired, never both. An expired hold converts to nothing.
BUY = """
WITH hold AS (
    UPDATE ticketing.holds SET status = 'converted', closed_at = now()
    WHERE hold_id = %(hold_id)s AND status = 'active' AND expires_at > now()
    RETURNING hold_id, event_id, buyer_id
), placed AS (
    INSERT INTO ticketing.orders (event_id, buyer_id, hold_id, seat_count, total)
    SELECT hold.event_id, hold.buyer_id, hold.hold_id, count(*), sum(si.price)
    FROM hold JOIN ticketing.seat_inventory si
      ON si.event_id = hold.event_id AND si.seat_id = ANY(%(seat_ids)s::bigint[])
     AND si.hold_id = hold.hold_id
    GROUP BY hold.event_id, hold.buyer_id, hold.hold_id
    RETURNING order_id, hold_id
)
UPDATE ticketing.seat_inventory si
SET status = 'sold', order_id = placed.order_id, hold_id = NULL, hold_expires_at = NULL
FROM placed
WHERE si.event_id = %(event_id)s AND si.seat_id = ANY(%(seat_ids)s::bigint[])
  AND si.hold_id = placed.hold_id
RETURNING si.seat_id
"""

RELEASE = """
WITH hold AS (
    UPDATE ticketing.holds SET status = 'released', closed_at = now()
    WHERE hold_id = %(hold_id)s AND status = 'active'
    RETURNING hold_id
)
UPDATE ticketing.seat_inventory si
SET status = 'open', hold_id = NULL, hold_expires_at = NULL
FROM hold
WHERE si.event_id = %(event_id)s AND si.seat_id = ANY(%(seat_ids)s::bigint[])
  AND si.hold_id = hold.hold_id
RETURNING si.seat_id
"""

# The sweeper: expire due holds (skipping any a buyer is converting) and reopen their seats.
EXPIRE = """
WITH due AS (
    SELECT hold_id FROM ticketing.holds
    WHERE status = 'active' AND expires_at <= now()
    ORDER BY expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), expired AS (
    UPDATE ticketing.holds h SET status = 'expired', closed_at = now()
    FROM due WHERE h.hold_id = due.hold_id
    RETURNING h.hold_id
)
UPDATE ticketing.seat_inventory si
SET status = 'open', hold_id = NULL, hold_expires_at = NULL
FROM expired
WHERE si.hold_id = expired.hold_id AND si.status = 'held'
RETURNING si.event_id, si.seat_id, expired.hold_id
"""

STILL_TAKEN = """
SELECT seat_id FROM ticketing.seat_inventory
WHERE event_id = %(event_id)s AND seat_id = ANY(%(seat_ids)s::bigint[]) AND status <> 'open'
"""
