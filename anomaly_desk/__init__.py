"""Anomaly Desk: data-quality anomalies in, Jira Cloud and ServiceNow tickets out."""

__version__ = "0.1.0"
