"""The emulator's task tables besides incident: problem, change_request, rm_defect and
rm_enhancement, with their states, their data dictionary and their data policies.

Each table extends ``task`` as on an instance (``rm_defect`` and ``rm_enhancement`` through
``rm_task``): ``sys_db_object`` names the parent (``super_class``), ``sys_dictionary`` holds each
table's own columns (a child's row overrides its parent's, as ``rm_defect.priority`` does to make
it mandatory without a default), ``sys_choice`` the choices by table (a table without its own
inherits its parent's). The dictionary's mandatory flag is what a form shows; the instance only
enforces *data policies* on a Table API write: ``DATA_POLICIES`` (a change request needs a
risk and impact analysis, named by its label; a problem, a short description; closing needs the close information), refused
with the 403 ``Data Policy Exception`` naming the fields by label.
"""

from __future__ import annotations

# a column: element, label, internal_type, max_length, mandatory, reference, choice, default
Column = tuple[str, str, str, int, bool, str, str, str]

PARENT = {  # sys_db_object.super_class
    "incident": "task",
    "problem": "task",
    "change_request": "task",
    "rm_task": "task",
    "rm_defect": "rm_task",
    "rm_enhancement": "rm_task",
}
TABLE_LABELS = {
    "task": "Task",
    "incident": "Incident",
    "problem": "Problem",
    "change_request": "Change Request",
    "rm_task": "Planning Task",
    "rm_defect": "Defect",
    "rm_enhancement": "Enhancement",
}
TASK_TABLES = ("incident", "problem", "change_request", "rm_defect", "rm_enhancement")
NUMBERS = {  # table -> (prefix, the counter's start)
    "incident": ("INC", 10000),
    "problem": ("PRB", 40000),
    "change_request": ("CHG", 30000),
    "rm_defect": ("DFCT", 10000),
    "rm_enhancement": ("ENHC", 10000),
}
NEW_STATE = {"problem": "101", "change_request": "-5", "rm_defect": "1", "rm_enhancement": "1"}
INACTIVE_STATES = {  # states in which ``active`` is false
    "incident": frozenset({"7", "8"}),
    "problem": frozenset({"107"}),
    "change_request": frozenset({"3", "4"}),
    "rm_defect": frozenset({"3", "4", "7"}),
    "rm_enhancement": frozenset({"3", "4", "7"}),
}

_S, _I, _R, _B, _D = "string", "integer", "reference", "boolean", "glide_date_time"
TASK_COLUMNS: list[Column] = [
    ("number", "Number", _S, 40, True, "", "0", "javascript:getNextObjNumberPadded();"),
    ("short_description", "Short description", _S, 160, False, "", "0", ""),
    ("description", "Description", _S, 4000, False, "", "0", ""),
    ("state", "State", _I, 40, True, "", "3", "1"),
    ("priority", "Priority", _I, 40, False, "", "1", "4"),
    ("impact", "Impact", _I, 40, False, "", "1", "3"),
    ("urgency", "Urgency", _I, 40, False, "", "1", "3"),
    ("assignment_group", "Assignment group", _R, 32, False, "sys_user_group", "0", ""),
    ("assigned_to", "Assigned to", _R, 32, False, "sys_user", "0", ""),
    ("opened_by", "Opened by", _R, 32, False, "sys_user", "0", "javascript:gs.getUserID()"),
    ("opened_at", "Opened", _D, 40, False, "", "0", "javascript:gs.nowDateTime()"),
    ("closed_at", "Closed", _D, 40, False, "", "0", ""),
    ("closed_by", "Closed by", _R, 32, False, "sys_user", "0", ""),
    ("close_notes", "Close notes", _S, 4000, False, "", "0", ""),
    ("active", "Active", _B, 40, False, "", "0", "true"),
    ("correlation_id", "Correlation ID", _S, 100, False, "", "0", ""),
    ("correlation_display", "Correlation display", _S, 100, False, "", "0", ""),
    ("work_notes", "Work notes", "journal_input", 4000, False, "", "0", ""),
    ("comments", "Additional comments", "journal_input", 4000, False, "", "0", ""),
    ("due_date", "Due date", _D, 40, False, "", "0", ""),
    ("sys_class_name", "Task type", "sys_class_name", 80, False, "", "0", ""),
    ("sys_created_on", "Created", _D, 40, False, "", "0", ""),
    ("sys_created_by", "Created by", _S, 40, False, "", "0", ""),
    ("sys_updated_on", "Updated", _D, 40, False, "", "0", ""),
    ("sys_updated_by", "Updated by", _S, 40, False, "", "0", ""),
    ("sys_mod_count", "Updates", _I, 40, False, "", "0", ""),
]
OWN_COLUMNS: dict[str, list[Column]] = {
    "incident": [
        ("caller_id", "Caller", _R, 32, False, "sys_user", "0", ""),
        ("category", "Category", _S, 40, False, "", "1", "inquiry"),
        ("subcategory", "Subcategory", _S, 40, False, "", "1", ""),
        ("close_code", "Resolution code", _S, 40, False, "", "1", ""),
        ("resolved_at", "Resolved", _D, 40, False, "", "0", ""),
        ("resolved_by", "Resolved by", _R, 32, False, "sys_user", "0", ""),
    ],
    "problem": [
        ("short_description", "Problem statement", _S, 160, True, "", "0", ""),
        ("category", "Category", _S, 40, False, "", "1", ""),
        ("cause_notes", "Cause notes", "html", 65000, False, "", "0", ""),
        ("fix_notes", "Fix notes", "html", 65000, False, "", "0", ""),
        ("known_error", "Known error", _B, 40, False, "", "0", "false"),
        ("resolution_code", "Resolution code", _S, 40, False, "", "3", ""),
        ("resolved_at", "Resolved", _D, 40, False, "", "0", ""),
        ("resolved_by", "Resolved by", _R, 32, False, "sys_user", "0", ""),
    ],
    "change_request": [
        ("type", "Type", _S, 40, False, "", "3", "normal"),
        ("justification", "Justification", _S, 4000, False, "", "0", ""),
        ("implementation_plan", "Implementation plan", _S, 4000, False, "", "0", ""),
        ("risk_impact_analysis", "Risk and impact analysis", _S, 4000, False, "", "0", ""),
        ("risk", "Risk", _I, 40, False, "", "3", "3"),
        ("start_date", "Planned start date", _D, 40, False, "", "0", ""),
        ("end_date", "Planned end date", _D, 40, False, "", "0", ""),
        ("requested_by", "Requested by", _R, 32, False, "sys_user", "0", ""),
        ("close_code", "Close code", _S, 40, False, "", "3", ""),
    ],
    "rm_task": [
        ("story_points", "Story points", _I, 40, False, "", "0", ""),
    ],
    "rm_defect": [
        ("priority", "Priority", _I, 40, True, "", "1", ""),
        ("u_found_in", "Found in version", _S, 40, False, "", "0", ""),
    ],
    "rm_enhancement": [
        ("u_business_value", "Business value", _S, 1000, False, "", "0", ""),
    ],
}
# dependent choice columns: (table, element) -> the column whose value filters its choices
# (``sys_dictionary.dependent_on_field``; the choices' ``sys_choice.dependent_value``)
DEPENDENT_ON = {("incident", "subcategory"): "category"}
# choices by (table, element): (value, label)
TASK_STATES = [
    ("-5", "Pending"),
    ("1", "Open"),
    ("2", "Work in Progress"),
    ("3", "Closed Complete"),
    ("4", "Closed Incomplete"),
    ("7", "Closed Skipped"),
]
# The states of the tables besides incident are labelled by the display (``STATES``), not
# listed in ``sys_choice``: a query of every ``state`` choice answers incident's alone, as the
# emulator always has.
STATES: dict[str, list[tuple[str, str]]] = {
    "task": TASK_STATES,
    "problem": [
        ("101", "New"),
        ("102", "Assess"),
        ("103", "Root Cause Analysis"),
        ("104", "Fix in Progress"),
        ("106", "Resolved"),
        ("107", "Closed"),
    ],
    "change_request": [
        ("-5", "New"),
        ("-4", "Assess"),
        ("-3", "Authorize"),
        ("-2", "Scheduled"),
        ("-1", "Implement"),
        ("0", "Review"),
        ("3", "Closed"),
        ("4", "Canceled"),
    ],
}
TABLE_CHOICES: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("task", "priority"): [
        ("1", "1 - Critical"),
        ("2", "2 - High"),
        ("3", "3 - Moderate"),
        ("4", "4 - Low"),
        ("5", "5 - Planning"),
    ],
    ("task", "impact"): [("1", "1 - High"), ("2", "2 - Medium"), ("3", "3 - Low")],
    ("task", "urgency"): [("1", "1 - High"), ("2", "2 - Medium"), ("3", "3 - Low")],
    ("problem", "category"): [
        ("software", "Software"),
        ("hardware", "Hardware"),
        ("database", "Database"),
        ("data_quality", "Data Quality"),
    ],
    ("problem", "resolution_code"): [
        ("fix_applied", "Fix Applied"),
        ("risk_accepted", "Risk Accepted"),
        ("duplicate", "Duplicate"),
        ("canceled", "Canceled"),
    ],
    ("change_request", "type"): [
        ("standard", "Standard"),
        ("normal", "Normal"),
        ("emergency", "Emergency"),
    ],
    ("change_request", "risk"): [
        ("1", "Very High"),
        ("2", "High"),
        ("3", "Moderate"),
        ("4", "Low"),
    ],
    ("change_request", "close_code"): [
        ("successful", "Successful"),
        ("successful_issues", "Successful with issues"),
        ("unsuccessful", "Unsuccessful"),
    ],
}
# data policies: (table, the states it applies in (empty: always), the mandatory columns)
DATA_POLICIES: list[tuple[str, frozenset[str], tuple[str, ...]]] = [
    ("problem", frozenset(), ("short_description",)),
    ("problem", frozenset({"106", "107"}), ("close_notes",)),
    ("change_request", frozenset(), ("short_description", "risk_impact_analysis")),
    ("change_request", frozenset({"3", "4"}), ("close_code", "close_notes")),
    ("rm_defect", frozenset(), ("short_description",)),
    ("rm_enhancement", frozenset(), ("short_description",)),
]
# how the Table API stores a column kind (``snow_data.SCHEMA``)
KINDS = {
    _S: "string",
    _I: "string",
    _B: "bool",
    _D: "datetime",
    "html": "string",
    "journal_input": "journal",
    "sys_class_name": "string",
}


def chain(table: str) -> list[str]:
    """The table and its parents, nearest first."""
    out = [table]
    while out[-1] in PARENT:
        out.append(PARENT[out[-1]])
    return out


def columns(table: str) -> dict[str, Column]:
    """Every column of the table, its own definition over a parent's."""
    out: dict[str, Column] = {}
    for name in reversed(chain(table)):
        for column in TASK_COLUMNS if name == "task" else OWN_COLUMNS.get(name, []):
            out[column[0]] = column
    return out


def column_kind(column: Column) -> str:
    """The emulator's storage kind of a dictionary column."""
    _, _, internal, _, _, reference, choice, _ = column
    if internal == "reference":
        return f"ref:{reference}"
    if choice != "0":
        return "choice"
    return KINDS.get(internal, "string")


def task_schema(table: str) -> dict[str, str]:
    """``snow_data.SCHEMA`` of a task table: sys_id and every column."""
    return {"sys_id": "string", **{name: column_kind(c) for name, c in columns(table).items()}}


def state_label(table: str, value: str) -> str | None:
    """A state's label on a table besides incident (its own states, else task's)."""
    for name in chain(table):
        if name in STATES:
            return next((label for state, label in STATES[name] if state == value), value)
    return None


def label_of(table: str, element: str) -> str:
    column = columns(table).get(element)
    return column[1] if column else element.replace("_", " ").capitalize()
