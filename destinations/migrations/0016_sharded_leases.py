"""Leases per shard of a destination. Leases are a running flusher's state, not
data: the table is made anew (stop the workers before migrating)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("destinations", "0015_audit_indexes"),
    ]

    operations = [
        migrations.DeleteModel(name="DeliveryLease"),
        migrations.CreateModel(
            name="DeliveryLease",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("shard", models.PositiveSmallIntegerField(default=0)),
                ("shard_count", models.PositiveSmallIntegerField(default=1)),
                ("holder", models.CharField(blank=True, max_length=255)),
                ("expires_at", models.DateTimeField(null=True)),
                ("generation", models.PositiveBigIntegerField(default=0)),
                (
                    "destination",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="destinations.destination",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("destination", "shard"), name="one_lease_per_shard"
                    )
                ],
            },
        ),
    ]
