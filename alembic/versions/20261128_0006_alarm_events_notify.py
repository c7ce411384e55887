"""Alarm events notify: pg_notify('cityrisk_alarm_events', id) on every alarm_event INSERT

The notification carries only the event id; PostgreSQL delivers it when the inserting
transaction commits (never for a rolled-back one), which is what lets ``GET /alarms/stream``
send alarm changes "as they commit". Triggers are invisible to autogenerate: written by hand.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 21:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The channel name is also in app/alarms/stream.py (CHANNEL); keep them equal.
CHANNEL = "cityrisk_alarm_events"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION cityrisk_notify_alarm_event() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', NEW.id::text);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER alarm_event_notify AFTER INSERT ON alarm_event "
        "FOR EACH ROW EXECUTE FUNCTION cityrisk_notify_alarm_event()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS alarm_event_notify ON alarm_event")
    op.execute("DROP FUNCTION IF EXISTS cityrisk_notify_alarm_event()")
