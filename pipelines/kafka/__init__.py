"""Kafka for seatflow, one home per concern: the clients built from Settings (clients), the
topics' names and layouts (topics), creating and configuring them (admin), reading topics whole
or following them (reading), and where topics end and consumer groups stand (groups)."""
