"""Opening a URL honestly: a browser only where one can show up, and the clipboard otherwise.

``webbrowser.open`` says False when nothing opened, but in an SSH session without a display it
may pick a text browser (lynx, w3m) and run it in the foreground, on top of the dashboard, or
say True for a command that opened nothing anyone sees. So a browser is asked only when there is
a graphical session (``DISPLAY`` / ``WAYLAND_DISPLAY``, macOS, Windows), and "opened" is claimed
only when it said yes; otherwise the caller copies the URL (OSC 52 reaches the clipboard of the
terminal the user sits at, even over SSH) and shows it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import webbrowser


def has_display() -> bool:
    """Whether a browser started from here can appear in front of the user."""
    if sys.platform == "darwin" or os.name == "nt":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


async def open_in_browser(url: str) -> bool:
    """True only when a graphical browser was asked to open ``url`` and said it did.

    Runs in a thread: ``xdg-open`` and friends can take a while, and the dashboard keeps drawing.
    """
    if not has_display():
        return False
    try:
        return bool(await asyncio.to_thread(webbrowser.open, url))
    except webbrowser.Error:
        return False
