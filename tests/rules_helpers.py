"""What the rule-management tests share: a small Sigma rule set of their own and events for it.

`TASK_RULE` (4698, scheduled task created: no built-in rule reads it) and a correlation on it;
`task_created` and `user_created` build Security records as the real data has them.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

from events.normalize import normalize_record
from events.services import create_events

START = datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC)
TASK_RULE = "sigma:5f1f0a46-9d35-4b0c-9d55-0c6e6f7a0001"
TASK_BURST = "sigma:5f1f0a46-9d35-4b0c-9d55-0c6e6f7a0002"
_record = count(1)

RULES = {
    "task_created.yml": """
        title: Scheduled task created (test)
        id: 5f1f0a46-9d35-4b0c-9d55-0c6e6f7a0001
        status: test
        description: A scheduled task was created.
        tags:
            - attack.persistence
            - attack.t1053.005
        logsource:
            product: windows
            service: security
        detection:
            selection:
                EventID: 4698
            condition: selection
        level: medium
    """,
    "task_burst.yml": """
        title: Many scheduled tasks by one account (test)
        id: 5f1f0a46-9d35-4b0c-9d55-0c6e6f7a0002
        status: test
        tags:
            - attack.execution
            - attack.t1053
        correlation:
            type: event_count
            rules:
                - 5f1f0a46-9d35-4b0c-9d55-0c6e6f7a0001
            group-by:
                - SubjectUserName
            timespan: 10m
            generate: true
            condition:
                gte: 3
        level: high
    """,
}


def write_rules(directory: Path) -> str:
    for name, text in RULES.items():
        (directory / name).write_text(textwrap.dedent(text).lstrip())
    return str(directory)


def task_created(second: float, *, subject="alice", host="WS-01", task="\\Updater") -> dict:
    return {
        "EventID": 4698,
        "Computer": host,
        "Channel": "Security",
        "Provider_Name": "Microsoft-Windows-Security-Auditing",
        "TimeCreated": (START + timedelta(seconds=second)).isoformat().replace("+00:00", "Z"),
        "EventRecordID": next(_record),
        "SubjectUserSid": "S-1-5-21-1-2-3-1105",
        "SubjectUserName": subject,
        "SubjectDomainName": "EXAMPLE",
        "TaskName": task,
    }


def user_created(second: float, *, subject="alice", target="newuser", host="DC-01") -> dict:
    return {
        "EventID": 4720,
        "Computer": host,
        "Channel": "Security",
        "Provider_Name": "Microsoft-Windows-Security-Auditing",
        "TimeCreated": (START + timedelta(seconds=second)).isoformat().replace("+00:00", "Z"),
        "EventRecordID": next(_record),
        "SubjectUserName": subject,
        "SubjectDomainName": "EXAMPLE",
        "TargetUserName": target,
        "TargetDomainName": "EXAMPLE",
    }


def ingest(records: list[dict], capture) -> None:
    """Store the records; the pipeline's on-commit detection step runs as in production."""
    with capture(execute=True):
        create_events([normalize_record(record) for record in records])
