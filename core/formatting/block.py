"""The anomaly block: what a ticket says about its anomaly, before any markup.

Built once as plain data, then rendered as text (ServiceNow) or ADF (Jira), so both providers say
the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from anomaly_desk.core.models import Anomaly


@dataclass(frozen=True, slots=True)
class CheckLine:
    rule_type: str  # "notNull", or "check" when unknown
    check_id: str | None
    fields: tuple[str, ...]
    message: str | None


@dataclass(frozen=True, slots=True)
class AnomalyBlock:
    title: str  # "Qualytics anomaly 1234"
    facts: tuple[tuple[str, str], ...]  # (label, value) in display order, empty values omitted
    message: str | None  # the field / check message
    checks: tuple[CheckLine, ...] = field(default=())
    link: str | None = None  # back to the anomaly on the platform
    platform: str = "Qualytics"


def anomaly_block(
    anomaly: Anomaly, platform: str = "Qualytics", platform_url: str | None = None
) -> AnomalyBlock:
    created = anomaly.created.strftime("%Y-%m-%d %H:%M:%S UTC") if anomaly.created else ""
    candidates = [
        ("Anomaly ID", str(anomaly.id)),
        ("Type", anomaly.type),
        ("Status at detection", str(anomaly.status)),  # one we do not know yet is kept as sent
        ("Severity (weight)", "" if anomaly.weight is None else str(anomaly.weight)),
        ("Datastore", anomaly.datastore.name or "" if anomaly.datastore else ""),
        ("Container", anomaly.container.name or "" if anomaly.container else ""),
        ("Fields", ", ".join(anomaly.fields)),
        (
            "Anomalous records",
            "" if anomaly.anomalous_records_count is None else str(anomaly.anomalous_records_count),
        ),
        ("Detected", created),
        ("Tags", ", ".join(anomaly.global_tags)),
    ]
    message = anomaly.message or anomaly.description
    checks = tuple(
        CheckLine(
            rule_type=check.rule_type or "check",
            check_id=None if check.check_id is None else str(check.check_id),
            fields=tuple(check.fields),
            message=check.message,
        )
        for check in anomaly.failed_checks
    )
    return AnomalyBlock(
        title=f"{platform} anomaly {anomaly.id}",
        facts=tuple((label, value) for label, value in candidates if value),
        message=message,
        checks=checks,
        link=anomaly.link(platform_url),
        platform=platform,
    )
