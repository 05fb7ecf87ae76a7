# The composite indexes all lead with destination_id: its own index only cost writes.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("destinations", "0016_sharded_leases"),
    ]

    operations = [
        migrations.AlterField(
            model_name="inboundevent",
            name="destination",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="destinations.destination",
            ),
        ),
    ]
