"""tests.tui."""
