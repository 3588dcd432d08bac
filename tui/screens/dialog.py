"""What every dialog shares: the frame's CSS and the one-line anomaly it is about."""

from __future__ import annotations

from anomaly_desk.core.views import AnomalyDetail, RefView


def ref_name(ref: RefView | None) -> str:
    """A datastore or container as people say it: its name, else its id."""
    if ref is None:
        return ""
    return ref.name or ("" if ref.id is None else str(ref.id))


def anomaly_line(anomaly: AnomalyDetail) -> str:
    """One line that tells which anomaly a dialog acts on."""
    where = " › ".join(n for n in (ref_name(anomaly.datastore), ref_name(anomaly.container)) if n)
    what = anomaly.message or anomaly.description or anomaly.type or ""
    return " · ".join(p for p in (f"Anomaly {anomaly.id}", where, what) if p)


DIALOG_CSS = """
{screen} {
    align: center middle;
    background: $background 60%;
}
{screen} > #dialog {
    width: 100;
    max-width: 100%;
    height: auto;
    max-height: 100%;
    margin: 0 2;
    border: thick $primary 80%;
    border-title-align: left;
    background: $surface;
    padding: 0 1;
}
{screen} #anomaly { color: $text-muted; padding: 0 1; height: auto; max-height: 2; }
{screen} #choose { padding: 0 1; }
{screen} #status { height: auto; padding: 0 1; }
{screen} #status.-error { color: $text-error; }
{screen} #status.-busy { color: $text-warning; }
{screen} #buttons { height: auto; align-horizontal: right; }
{screen} #buttons Button { margin-left: 2; }
"""


def dialog_css(screen: str, extra: str = "") -> str:
    """The shared look of the ticket dialogs, scoped to one screen class."""
    return DIALOG_CSS.replace("{screen}", screen) + extra
