"""Dagster pieces of seatflow, merged into one Definitions by pipelines.definitions."""
