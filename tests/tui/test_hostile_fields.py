"""A provider's field names and choices are text in the create form, never Textual markup: a
Jira admin can name a custom field anything, including ``[@click=app.quit]``."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Label, SelectionList

from anomaly_desk.core.views import FieldChoice
from anomaly_desk.tui.widgets.form_fields import FieldSpec, MultiOptionField, TextField

HOSTILE = "[@click=app.quit]Region[/] [b]bold[/b]"


class Form(App[None]):
    def compose(self) -> ComposeResult:
        yield TextField(FieldSpec(name="customfield_1", label=HOSTILE, kind="text", required=True))
        yield MultiOptionField(
            FieldSpec(
                name="customfield_2",
                label="Systems",
                kind="multi_option",
                choices=(FieldChoice(value="1", label=HOSTILE),),
            )
        )


async def test_field_labels_and_choices_are_shown_as_written() -> None:
    app = Form()
    async with app.run_test() as pilot:
        label = app.query(Label).first()
        assert str(label.render()) == f"{HOSTILE} *"
        await pilot.click(Label)
        choices = app.query_one(SelectionList)
        assert str(choices.get_option_at_index(0).prompt) == HOSTILE
        assert app.is_running  # the click on the label quit nothing
