"""The availability processor: Debezium seat-inventory changes in, seat availability out."""
