"""Prefect deployments: schedules and work pools for the flows."""
