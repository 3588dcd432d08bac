"""What Anomaly Desk knows of ServiceNow's task tables: labels, number prefixes and states.

Every ticket type is a table extending ``task``: work notes, ``correlation_id`` and the journal
behave the same on all of them; what differs is the state model, which states are done, how
to resolve and reopen, and whether the table has a caller. A table not listed here gets
``task``'s own states (3 Closed Complete, 4 Closed Incomplete, 7 Closed Skipped: done).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One task table as the client treats it."""

    name: str
    label: str  # used when sys_db_object is not readable
    prefix: str = ""  # the number's prefix (INC, PRB…); "" for an unknown table
    states: dict[str, str] = field(default_factory=dict)  # value -> label
    done: frozenset[str] = frozenset()  # states that count as done (two-way)
    resolve: str = ""  # the state move_to_done sets
    resolve_fields: tuple[str, ...] = ()  # what that state needs: close_code, close_notes
    reopen: str = ""  # the state reopen sets
    reopen_from: frozenset[str] = frozenset()  # done states that may be left again
    caller: str | None = None  # the field that names who the ticket is raised for


TASK_STATES = {
    "-5": "Pending",
    "1": "Open",
    "2": "Work in Progress",
    "3": "Closed Complete",
    "4": "Closed Incomplete",
    "7": "Closed Skipped",
}
TASK_DONE = frozenset({"3", "4", "7"})

INCIDENT = TableSpec(
    name="incident",
    label="Incident",
    prefix="INC",
    states={
        "1": "New",
        "2": "In Progress",
        "3": "On Hold",
        "4": "Awaiting User Info",
        "5": "Awaiting Problem",
        "6": "Resolved",
        "7": "Closed",
        "8": "Canceled",
    },
    done=frozenset({"6", "7"}),
    resolve="6",
    resolve_fields=("close_code", "close_notes"),
    reopen="2",
    reopen_from=frozenset({"6"}),
    caller="caller_id",
)
PROBLEM = TableSpec(
    name="problem",
    label="Problem",
    prefix="PRB",
    states={
        "101": "New",
        "102": "Assess",
        "103": "Root Cause Analysis",
        "104": "Fix in Progress",
        "106": "Resolved",
        "107": "Closed",
    },
    done=frozenset({"106", "107"}),
    resolve="106",
    resolve_fields=("close_notes",),
    reopen="104",
    reopen_from=frozenset({"106"}),
)
CHANGE_REQUEST = TableSpec(
    name="change_request",
    label="Change Request",
    prefix="CHG",
    states={
        "-5": "New",
        "-4": "Assess",
        "-3": "Authorize",
        "-2": "Scheduled",
        "-1": "Implement",
        "0": "Review",
        "3": "Closed",
        "4": "Canceled",
    },
    done=frozenset({"3", "4"}),
    resolve="3",
    resolve_fields=("close_code", "close_notes"),
)
RM_DEFECT = TableSpec(
    name="rm_defect",
    label="Defect",
    prefix="DFCT",
    states=TASK_STATES,
    done=TASK_DONE,
    resolve="3",
)
RM_ENHANCEMENT = TableSpec(
    name="rm_enhancement",
    label="Enhancement",
    prefix="ENHC",
    states=TASK_STATES,
    done=TASK_DONE,
    resolve="3",
)
KNOWN = {spec.name: spec for spec in (INCIDENT, PROBLEM, CHANGE_REQUEST, RM_DEFECT, RM_ENHANCEMENT)}
# change requests are created through the Change Management API (its defaults and workflow),
# by type; a standard change needs a template (``…/change/standard/{template}``): not offered
CHANGE_MODELS = {
    "normal": "/api/sn_chg_rest/change/normal",
    "emergency": "/api/sn_chg_rest/change/emergency",
}


def spec_for(table: str) -> TableSpec:
    """The table's spec; an unknown table is treated as a plain ``task``."""
    known = KNOWN.get(table)
    if known is not None:
        return known
    label = table.replace("_", " ").strip().title() or table
    return TableSpec(name=table, label=label, states=TASK_STATES, done=TASK_DONE, resolve="3")


def table_of_key(key: str, tables: list[str]) -> str | None:
    """The table a number belongs to, by its prefix, among ``tables`` (PRB0040001 → problem)."""
    upper = key.strip().upper()
    matches = [
        name for name in tables if spec_for(name).prefix and upper.startswith(spec_for(name).prefix)
    ]
    return max(matches, key=lambda name: len(spec_for(name).prefix)) if matches else None
