"""Anomaly Desk: data-quality anomalies in, Jira Cloud and ServiceNow tickets out."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("anomaly-desk")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
