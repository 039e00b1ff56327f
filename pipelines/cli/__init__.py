"""The `seatflow` command line (the app lives in pipelines.cli.main)."""
