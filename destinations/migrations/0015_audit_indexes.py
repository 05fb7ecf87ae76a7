"""Indexes that serve the audit log's pages at millions of events.

Built with CREATE INDEX CONCURRENTLY on PostgreSQL, so a live table keeps taking
writes meanwhile (hence atomic = False). SQLite has no CONCURRENTLY (Django's
AddIndexConcurrently would fail there): it gets a plain CREATE INDEX.

They are the database's alone (SeparateDatabaseAndState): they serve how the
admin reads, and the partial ones are PostgreSQL expressions the models need not
know about.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast

# Must equal destinations.selectors.audit.DROPPED_JSONPATH (a test says so): the
# partial index serves the "values dropped" filter only if the query says the same.
DROPPED_JSONPATH = (
    '$[*] ? (!(@.reason starts with "not listed") '
    '&& !(@.reason starts with "Engage trait not listed, and Engage pass-through is off; not sent") '
    '&& !(@.reason starts with "null; skipped, so Talon.One keeps the value it has") '
    '&& !(@.reason starts with "date-time without a UTC offset; assumed UTC") '
    '&& !(@.reason starts with "Engage audience; sent as a Talon.One audience membership instead") '
    '&& !(@.reason starts with "in the future; taken as the time received") '
    '&& !(@.reason starts with "scrubbed "))'
)


class AddIndexConcurrentlyWherePossible(AddIndexConcurrently):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )


def _postgresql_only(sql: str, reverse_sql: str) -> migrations.RunPython:
    def forwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    def backwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(reverse_sql)

    return migrations.RunPython(forwards, backwards)


def _index(*expressions, name, **kwargs):
    return AddIndexConcurrentlyWherePossible(
        model_name="inboundevent", index=models.Index(*expressions, name=name, **kwargs)
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("destinations", "0014_attribute_catalog")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                # Lists filtered by status or destination, newest first.
                _index(fields=["status", "-id"], name="event_status_newest"),
                _index(fields=["destination", "-id"], name="event_destination_newest"),
                # Exact search by userId, messageId and traits.email.
                _index(fields=["user_id"], name="event_user_id"),
                _index(fields=["message_id"], name="event_message_id"),
                _index(
                    Cast(
                        KeyTextTransform("email", KeyTransform("traits", "payload")),
                        models.TextField(),
                    ),
                    name="event_trait_email",
                ),
                # The "values dropped" and "with notes" filters: few rows, newest first.
                _postgresql_only(
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS event_dropped_newest "
                    "ON destinations_inboundevent (id DESC) "
                    f"WHERE jsonb_path_exists(notes, '{DROPPED_JSONPATH}'::jsonpath)",
                    "DROP INDEX CONCURRENTLY IF EXISTS event_dropped_newest",
                ),
                _postgresql_only(
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS event_with_notes_newest "
                    "ON destinations_inboundevent (id DESC) WHERE NOT (notes = '[]'::jsonb)",
                    "DROP INDEX CONCURRENTLY IF EXISTS event_with_notes_newest",
                ),
            ],
            state_operations=[],
        ),
    ]
