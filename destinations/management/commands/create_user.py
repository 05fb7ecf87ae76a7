import getpass
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from destinations.services import accounts


class Command(BaseCommand):
    help = (
        "Create an admin account as a Marketer or an Operator: staff status and the role's "
        "group set. The password is asked twice on a terminal, read with --password-stdin, "
        "or else generated and printed once."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=sorted(accounts.ROLES))
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the password from the first line of standard input.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username, role = options["username"], options["role"]
        stdin = options.get("stdin", sys.stdin)
        generated = False
        try:
            accounts.check_new_username(username)
            if options["password_stdin"]:
                password = stdin.readline().rstrip("\r\n")
            elif stdin.isatty():
                password = _prompt_twice()
            else:
                password, generated = accounts.generate_password(), True
            if not password:
                raise CommandError("The password is empty; nothing was created.")
            accounts.create_user(
                username=username, role=role, password=password, email=options["email"]
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(
            f"Created {username}: staff, in the group {accounts.ROLES[role]}. Log in at /admin/."
        )
        if generated:
            self.stdout.write(f"Password (shown only now): {password}")


def _prompt_twice() -> str:
    password = getpass.getpass("Password: ")
    if getpass.getpass("Password (again): ") != password:
        raise CommandError("The two passwords differ; nothing was created.")
    return password
