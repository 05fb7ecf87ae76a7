"""The admin roles as groups with explicit permissions (see docs/security.md).

Marketer: edits the forwarded attribute rows and reads the audit log; sees no
connection settings or secrets. Operator: manages destinations, redelivers,
reads the change history. Audit rows are read-only for everyone (admin.py).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    "Marketer": [
        ("destinations", "view_destination"),
        # Needed to save the attribute rows on the destination page; the
        # admin gives users without manage_connection a form of harmless fields.
        ("destinations", "change_destination"),
        ("destinations", "view_attributemapping"),
        ("destinations", "add_attributemapping"),
        ("destinations", "change_attributemapping"),
        ("destinations", "delete_attributemapping"),
        ("destinations", "view_inboundevent"),
        ("destinations", "view_deliveryattempt"),
    ],
    "Operator": [
        ("destinations", "view_destination"),
        ("destinations", "add_destination"),
        ("destinations", "change_destination"),
        ("destinations", "delete_destination"),
        ("destinations", "manage_connection"),
        ("destinations", "view_attributemapping"),
        ("destinations", "add_attributemapping"),
        ("destinations", "change_attributemapping"),
        ("destinations", "delete_attributemapping"),
        ("destinations", "view_inboundevent"),
        ("destinations", "redeliver_inboundevent"),
        ("destinations", "view_deliveryattempt"),
        ("admin", "view_logentry"),
    ],
}


def create_roles(apps, schema_editor):
    db = schema_editor.connection.alias
    # Permissions are normally created after the last migration (post_migrate).
    for label in ("destinations", "admin"):
        app_config = apps.get_app_config(label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=db)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, permissions in ROLES.items():
        group, _ = Group.objects.using(db).get_or_create(name=name)
        group.permissions.set(
            [
                Permission.objects.using(db).get(
                    content_type__app_label=app_label, codename=codename
                )
                for app_label, codename in permissions
            ]
        )


def delete_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("destinations", "0002_destination_secret_rotation"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
