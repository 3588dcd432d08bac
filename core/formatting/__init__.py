"""The texts Anomaly Desk writes on tickets: the anomaly block and the sync notes."""

from anomaly_desk.core.formatting.block import AnomalyBlock, anomaly_block
from anomaly_desk.core.formatting.notes import comment_note, link_note, status_note

__all__ = ["AnomalyBlock", "anomaly_block", "comment_note", "link_note", "status_note"]
