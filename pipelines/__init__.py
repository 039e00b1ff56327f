"""seatflow: change-data-capture of seat availability from the ticketing host to Kafka."""

__version__ = "0.1.0"
