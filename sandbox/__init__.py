"""Local emulators of Jira Cloud and ServiceNow, for the demo and the tests.

Faithful to the real services' envelopes, status codes and error bodies so that their own client
libraries (``jira``, ``pysnc``) work against them. In-memory state; nothing here is production code.
"""
