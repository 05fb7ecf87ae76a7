"""Room on each page of the events table for the new versions of its rows:
delivery updates every row a few times, and an update that changes no indexed
column and fits on the row's page writes no index entry (a HOT update)."""

from django.db import migrations

FILLFACTOR = 70


def set_fillfactor(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"ALTER TABLE destinations_inboundevent SET (fillfactor = {FILLFACTOR})"
        )


def reset_fillfactor(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE destinations_inboundevent RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("destinations", "0017_event_destination_index"),
    ]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
