"""Both roles read what Talon.One refused: marketers create the attributes."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {role: [("destinations", "view_refusedattribute")] for role in ("Marketer", "Operator")}


def grant(apps, schema_editor):
    db = schema_editor.connection.alias
    app_config = apps.get_app_config("destinations")
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
        content_type__app_label="destinations", codename="view_refusedattribute"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("destinations", "0007_segment_edge")]

    operations = [migrations.RunPython(grant, revoke)]
