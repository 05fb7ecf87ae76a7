"""Operators read the value history of settings (django-auditlog)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {"Operator": [("auditlog", "view_logentry")]}


def grant(apps, schema_editor):
    db = schema_editor.connection.alias
    app_config = apps.get_app_config("auditlog")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0, using=db)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, grants in GRANTS.items():
        for group in Group.objects.using(db).filter(name=name):
            for app_label, codename in grants:
                group.permissions.add(
                    Permission.objects.using(db).get(
                        content_type__app_label=app_label, codename=codename
                    )
                )


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.using(schema_editor.connection.alias).filter(
        content_type__app_label="auditlog", codename="view_logentry"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("destinations", "0011_lease_generation"),
        ("auditlog", "0017_add_actor_email"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
