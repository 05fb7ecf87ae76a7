"""Marketers and operators edit which track events are forwarded and read the
audiences; operators may set an audience's Talon.One id."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

EDIT = [
    f"{action}_{model}"
    for model in ("eventmapping", "eventproperty")
    for action in ("view", "add", "change", "delete")
]
GRANTS = {
    "Marketer": [("destinations", c) for c in (*EDIT, "view_talonaudience")],
    "Operator": [("destinations", c) for c in (*EDIT, "view_talonaudience", "change_talonaudience")],
}


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
            group.permissions.add(
                *Permission.objects.using(db).filter(
                    content_type__app_label="destinations",
                    codename__in=[codename for _, codename in grants],
                )
            )


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.using(schema_editor.connection.alias).filter(
        content_type__app_label="destinations",
        codename__in={codename for grants in GRANTS.values() for _, codename in grants},
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("destinations", "0009_kinds")]

    operations = [migrations.RunPython(grant, revoke)]
