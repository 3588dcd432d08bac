"""A person field: type a name or address, pick from the people the provider finds as you type.

The search runs a moment after the last key (a debounce), in a worker; a newer search cancels
an older one, so a slow answer never replaces the list for what is typed now. What is sent is
the picked person's id (Jira accountId, ServiceNow sys_id) or, when nobody was picked, the text
as typed: the providers resolve an address or a user name themselves and say when they cannot.

The focus never leaves the input for the list: Down/Up move through the people found, Enter
picks the highlighted one, Escape closes the list, Tab/Shift+Tab go to the next/previous field
(the list closes whenever the input loses the focus, so it never stays over the next fields).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import ClassVar

from pydantic import JsonValue
from rich.text import Text
from textual import on, work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from anomaly_desk.core.views import UserView
from anomaly_desk.tui.client import ApiError
from anomaly_desk.tui.widgets.form_fields import FieldSpec, FormField

SEARCH_DELAY_S = 0.3
MIN_QUERY = 2  # one letter matches half the directory
Searcher = Callable[[str], Awaitable[list[UserView]]]


def user_label(user: UserView) -> str:
    return f"{user.name} <{user.email}>" if user.email else user.name


class UserField(FormField):
    """An input that searches people live, and the list of who it found."""

    DEFAULT_CSS = """
    UserField > OptionList { height: auto; max-height: 6; display: none; }
    UserField.-results > OptionList { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down", "move(1)", "Next person found", show=False),
        Binding("up", "move(-1)", "Previous person found", show=False),
        Binding("escape", "close_results", "Close the list", show=False),
    ]

    def __init__(self, spec: FieldSpec, search: Searcher, default: str = "") -> None:
        super().__init__(spec, default)
        self.search = search
        self.picked: UserView | None = None
        self.found: list[UserView] = []
        self.searched = ""  # the text the list shows results for
        self.searches = 0  # searches sent (tests, and a look at the debounce)

    def compose_control(self) -> ComposeResult:
        yield Input(
            self.default,
            placeholder=self.spec.placeholder or "type a name or email to search",
            id=self.spec.name,
        )
        results = OptionList(id=f"{self.spec.name}-results")
        results.can_focus = False  # Tab goes to the next field, never into the list
        yield results

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    @property
    def results(self) -> OptionList:
        return self.query_one(OptionList)

    @property
    def value(self) -> JsonValue:
        if self.picked is not None:
            return self.picked.id
        return self.input.value.strip()

    def pick(self, user: UserView) -> None:
        """``user`` is the field's value; the input shows who it is."""
        self.picked = user
        with self.prevent(Input.Changed):
            self.input.value = user_label(user)
        self.show_results([])
        self.set_error(None)
        self.post_message(self.Changed(self))

    def show_results(self, users: list[UserView]) -> None:
        self.found = users
        self.results.set_options([Option(Text(user_label(u)), id=u.id) for u in users])
        self.set_class(bool(users), "-results")

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.picked = None  # typing again forgets who was picked
        self.set_error(None)
        self.post_message(self.Changed(self))
        text = event.value.strip()
        if len(text) < MIN_QUERY:
            self.show_results([])
            self.workers.cancel_group(self, "users")
            return
        self.find(text)

    @work(exclusive=True, group="users")
    async def find(self, text: str) -> None:
        await asyncio.sleep(SEARCH_DELAY_S)  # cancelled by the next key: one search per pause
        self.searches += 1
        try:
            users = await self.search(text)
        except ApiError as exc:  # the field says so, and takes what is typed
            self.searched = text
            self.show_results([])
            self.set_error(f"Search failed: {exc.detail}")
            self.error = None  # a note, not a fault of the value: what is typed is still sent
            return
        self.searched = text
        if self.picked is None and self.input.has_focus:  # gone on: no list over other fields
            self.show_results(users)

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        user = next((u for u in self.found if u.id == event.option.id), None)
        if user is not None:
            self.pick(user)
            self.input.focus()

    @property
    def listing(self) -> bool:
        """Whether the list of people found is shown."""
        return self.has_class("-results")

    def action_move(self, step: int) -> None:
        """Down/Up in the input: the next/previous person found is highlighted."""
        if not self.listing:
            raise SkipAction()
        current = self.results.highlighted
        count = self.results.option_count
        if current is None:
            self.results.highlighted = 0 if step > 0 else count - 1
        else:
            self.results.highlighted = max(0, min(count - 1, current + step))

    def action_close_results(self) -> None:
        """Escape closes the list; without one, it is the dialog's (cancel)."""
        if not self.listing:
            raise SkipAction()
        self.show_results([])

    @on(Input.Submitted)
    def _enter(self, event: Input.Submitted) -> None:
        """Enter on a highlighted person picks them; otherwise it submits the form."""
        highlighted = self.results.highlighted
        if not self.listing or highlighted is None:
            return
        event.stop()
        option = self.results.get_option_at_index(highlighted)
        user = next((u for u in self.found if u.id == option.id), None)
        if user is not None:
            self.pick(user)

    @on(Input.Blurred)
    def _left(self) -> None:
        """Tab, Shift+Tab or a click elsewhere: the list goes, and a search still to come (a
        click on the list itself picks, then gives the input its focus back)."""
        if self.results.is_mouse_over:
            return
        self.workers.cancel_group(self, "users")
        self.show_results([])

    def check(self) -> bool:
        if self.spec.required and not self.filled:
            self.set_error(f"{self.spec.label} is required")
            return False
        return self.error is None

    def focus_control(self) -> None:
        self.input.focus()
