"""The Jira emulator's projects and their workflows: statuses, categories, transitions, screens.

Two kinds of project, like a Jira Cloud site has:

* ``DQ`` (Data Quality) is *company-managed*: site-wide statuses, and a workflow whose "Done"
  transition has a screen with the Resolution field on it (required, with the site's
  resolutions as its allowed values). "Reopen" clears the resolution, as Jira's default
  post function does. The other transitions have no screen.
* ``TM`` (Team Managed) is *team-managed*: its statuses belong to the project (their own ids,
  ``scope`` PROJECT), every transition is global ("any status may move here") and none has a
  screen, so its "Done" sets no resolution: issues stay unresolved in Done.
* ``FIN`` and ``OPS`` are company-managed with DQ's workflow; they differ in their create
  screens (``jira_screens``).

What a transition screen means for a client, as on Jira Cloud: a field in ``fields`` or
``update`` that is not on the screen is a 400 ("cannot be set. It is not on the appropriate
screen"); a comment in ``update.comment`` lands only when the transition has a screen and is
silently dropped (204) when it has none. ``comment`` is never listed in ``transitions.fields``.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUS_CATEGORIES = {  # key → (id, name, colour)
    "new": (2, "To Do", "blue-gray"),
    "indeterminate": (4, "In Progress", "yellow"),
    "done": (3, "Done", "green"),
}


@dataclass(frozen=True, slots=True)
class Status:
    id: str
    name: str
    category: str  # a STATUS_CATEGORIES key: new, indeterminate, done
    project_id: str | None = None  # team-managed: the project the status belongs to


@dataclass(frozen=True, slots=True)
class Transition:
    id: str
    name: str
    to: str  # a status name of the project
    sources: tuple[str, ...] = ()  # the statuses it leaves from; () = global (from any status)
    screen: tuple[str, ...] | None = None  # the fields on its screen; None: no screen at all
    required: tuple[str, ...] = ()  # screen fields that must be given
    clears_resolution: bool = False  # Jira's "clear the resolution" post function

    @property
    def is_global(self) -> bool:
        return not self.sources

    def available_from(self, status: str) -> bool:
        return self.is_global or status in self.sources


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    key: str
    name: str
    team_managed: bool
    statuses: tuple[Status, ...]
    transitions: tuple[Transition, ...]
    initial_status: str = "To Do"

    def status(self, name: str) -> Status:
        return next(s for s in self.statuses if s.name == name)

    def transition(self, tid: str) -> Transition | None:
        return next((t for t in self.transitions if t.id == tid), None)

    def available(self, status: str) -> list[Transition]:
        """The transitions an issue in ``status`` offers, in the workflow's order."""
        return [t for t in self.transitions if t.available_from(status)]


RESOLUTIONS = [  # id, name, description (a Jira Cloud site's defaults)
    ("10000", "Done", "Work has been completed on this issue."),
    ("10001", "Won't Do", "This issue won't be actioned."),
    ("10002", "Duplicate", "The problem is a duplicate of an existing issue."),
    (
        "10003",
        "Cannot Reproduce",
        "All attempts at reproducing this issue failed, or not enough information was available "
        "to reproduce the issue.",
    ),
]


def resolution_name(rid: str) -> str:
    return next(r[1] for r in RESOLUTIONS if r[0] == rid)


def find_resolution(ref: object) -> str | None:
    """The id of the resolution a ``{"id"}`` or ``{"name"}`` object names, or None."""
    if not isinstance(ref, dict):
        return None
    for rid, name, _ in RESOLUTIONS:
        if str(ref.get("id", "")) == rid or ref.get("name") == name:
            return rid
    return None


COMPANY_STATUSES = (
    Status("10000", "To Do", "new"),
    Status("3", "In Progress", "indeterminate"),
    Status("10001", "Done", "done"),
)
DQ = Project(
    id="10000",
    key="DQ",
    name="Data Quality",
    team_managed=False,
    statuses=COMPANY_STATUSES,
    transitions=(
        Transition("11", "Start Progress", "In Progress", sources=("To Do",)),
        Transition("21", "Stop Progress", "To Do", sources=("In Progress",)),
        Transition(
            "31",
            "Done",
            "Done",
            sources=("To Do", "In Progress"),
            screen=("resolution",),
            required=("resolution",),
        ),
        Transition("41", "Reopen", "To Do", sources=("Done",), clears_resolution=True),
    ),
)
TM = Project(
    id="10001",
    key="TM",
    name="Team Managed",
    team_managed=True,
    statuses=(
        Status("10010", "To Do", "new", "10001"),
        Status("10011", "In Progress", "indeterminate", "10001"),
        Status("10012", "Done", "done", "10001"),
    ),
    transitions=(
        Transition("11", "To Do", "To Do"),
        Transition("21", "In Progress", "In Progress"),
        Transition("31", "Done", "Done"),
    ),
)
# Company-managed like DQ, with its workflow; their create screens differ (``jira_screens``):
# FIN has custom fields of every type, OPS has no reporter field.
FIN = Project(
    id="10002",
    key="FIN",
    name="Finance Data",
    team_managed=False,
    statuses=COMPANY_STATUSES,
    transitions=DQ.transitions,
)
OPS = Project(
    id="10003",
    key="OPS",
    name="Operations",
    team_managed=False,
    statuses=COMPANY_STATUSES,
    transitions=DQ.transitions,
)
PROJECTS = (DQ, TM, FIN, OPS)


def find_project(key_or_id: str) -> Project | None:
    wanted = key_or_id.strip()
    return next((p for p in PROJECTS if wanted.upper() == p.key or wanted == p.id), None)


def project_of(key: str) -> Project:
    """The project an issue's project key names (always a seeded one)."""
    return next(p for p in PROJECTS if p.key == key)


def all_statuses() -> list[Status]:
    seen: dict[str, Status] = {}
    for project in PROJECTS:
        for status in project.statuses:
            seen.setdefault(status.id, status)
    return list(seen.values())
