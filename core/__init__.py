"""Anomaly Desk's domain: models, store, texts, provider clients. Free of any UI or web framework."""
