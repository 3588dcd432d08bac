"""Ticket types and create forms: the offered tables, each one's form from ``sys_dictionary``
and ``sys_choice`` (reused for ``FORM_TTL``), and the drop-down options."""

from __future__ import annotations

import asyncio
import re
import time

from pydantic import JsonValue

from anomaly_desk.core.providers.base import Option
from anomaly_desk.core.providers.errors import AuthError, NotFoundError, ValidationError
from anomaly_desk.core.providers.payloads import ServiceNowRow
from anomaly_desk.core.providers.servicenow_base import CHOICE_FIELDS, ServiceNowBase
from anomaly_desk.core.providers.servicenow_fields import (
    CHOICE_READ_FIELDS,
    DICTIONARY_FIELDS,
    TableForm,
    build_form,
)
from anomaly_desk.core.providers.servicenow_tables import spec_for
from anomaly_desk.core.views import CreateFormView, TicketTypeView

FORM_TTL = 300.0  # seconds a table's form (dictionary, choices) is reused
FORM_LEVELS = 4  # parent tables followed through sys_db_object.super_class
IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")


class ServiceNowForms(ServiceNowBase):
    """Reading the dictionary; the cache lives on the client (``_forms``)."""

    async def ticket_types(self) -> list[TicketTypeView]:
        """The offered tables, labelled by ``sys_db_object`` when this account may read it."""
        labels: dict[str, str] = {}
        try:
            rows = await self._rows(
                "sys_db_object", f"nameIN{','.join(self.tables)}", "name,label", limit=100
            )
            labels = {row.get("name", ""): row.get("label", "") for row in rows}
        except (AuthError, NotFoundError, ValidationError):
            pass
        return [
            TicketTypeView(id=name, name=labels.get(name) or spec_for(name).label)
            for name in self.tables
        ]

    async def create_form(self, ticket_type: str | None = None) -> CreateFormView:
        table = self._table_field(ticket_type)
        form = await self._form(table, fresh=True)  # the desk caches it; a refresh is a refresh
        return CreateFormView(
            connection=self.name,
            ticket_type=TicketTypeView(id=table, name=form.label),
            fields=list(form.fields),
        )

    def _table_field(self, raw: JsonValue) -> str:
        """The ticket's table: ``fields["table"]`` or the connection's; a name only."""
        if raw is None or raw == "":
            return self.table
        name = str(raw).strip()
        if not IDENTIFIER.match(name):
            message = f"not a ServiceNow table name: {name!r}"
            raise ValidationError(message, field_errors={"table": message}, connection=self.name)
        if name not in self.tables:
            # an interrupted create is looked for on these tables only (find_created): a ticket
            # on another one could be made twice
            offered = ", ".join(self.tables)
            message = f"{name} is not one of this connection's tables ({offered}); add it to tables"
            raise ValidationError(message, field_errors={"table": message}, connection=self.name)
        return name

    async def _form_or_none(self, table: str) -> TableForm | None:
        """The table's form, or None when the dictionary is not readable to this account."""
        try:
            return await self._form(table)
        except (AuthError, NotFoundError):
            return None

    async def _form(self, table: str, *, fresh: bool = False) -> TableForm:
        """``sys_dictionary`` of the table and its parents, ``sys_choice`` of its choice
        columns: kept ``FORM_TTL`` seconds for the creates that check against it."""
        held = self._forms.get(table)
        if held is not None and not fresh and time.monotonic() - held[0] < FORM_TTL:
            return held[1]
        label, chain = await self._lineage(table)
        rows = await self._rows(
            "sys_dictionary", f"nameIN{','.join(chain)}", DICTIONARY_FIELDS, limit=5000
        )
        if not any(row.get("name") == table for row in rows):
            message = f"{table} is not a table of this instance (no dictionary entries)"
            raise ValidationError(message, field_errors={"table": message}, connection=self.name)
        choice_columns = sorted(
            {row.get("element", "") for row in rows if row.get("choice", "0") in ("1", "3")} - {""}
        )
        choices: list[ServiceNowRow] = []
        if choice_columns:
            choices = await self._rows(
                "sys_choice",
                f"nameIN{','.join(chain)}^elementIN{','.join(choice_columns)}^language=en"
                "^ORDERBYsequence",
                CHOICE_READ_FIELDS,
                limit=5000,
            )
        form = build_form(table, label, rows, choices, chain)
        self._forms[table] = (time.monotonic(), form)
        return form

    async def _lineage(self, table: str) -> tuple[str, list[str]]:
        """The table's label and its chain of tables up to ``task`` (from ``sys_db_object``;
        unreadable: the table and ``task``)."""
        chain, label, name = [table], spec_for(table).label, table
        try:
            for _ in range(FORM_LEVELS):
                rows = await self._rows(
                    "sys_db_object", f"name={name}", "name,label,super_class.name", limit=1
                )
                if not rows:
                    break
                if name == table:
                    label = rows[0].get("label") or label
                parent = rows[0].get("super_class.name", "")
                if not parent or parent in chain:
                    break
                chain.append(parent)
                if parent == "task":
                    break
                name = parent
        except (AuthError, NotFoundError, ValidationError):
            pass  # not readable (or no such table here): the table and task
        if table != "task" and "task" not in chain:
            chain.append("task")
        return label, chain

    async def options(self) -> dict[str, list[Option]]:
        choices, groups, users = await asyncio.gather(
            self._rows(
                "sys_choice",
                f"name={self.table}^elementIN{','.join(CHOICE_FIELDS)}^inactive=false"
                "^language=en^ORDERBYelement^ORDERBYsequence",
                "element,value,label,dependent_value,sequence",
            ),
            self._rows("sys_user_group", "active=true^ORDERBYname", "sys_id,name"),
            self._rows("sys_user", "active=true^ORDERBYname", "sys_id,user_name,name"),
        )
        out: dict[str, list[Option]] = {name: [] for name in CHOICE_FIELDS}
        for row in choices:
            element, option = row["element"], Option(row["value"], row["label"])
            if element == "subcategory" and row.get("dependent_value"):
                out.setdefault(f"subcategory:{row['dependent_value']}", []).append(option)
            if option not in out.setdefault(element, []):
                out[element].append(option)
        out["assignment_group"] = [Option(g["sys_id"], g["name"]) for g in groups]
        people = [Option(u["sys_id"], f"{u['name']} ({u['user_name']})") for u in users]
        out["assigned_to"] = people
        out["caller_id"] = list(people)
        return out
