"""The admin tests log in as the roles the security tests define."""

from tests.security.conftest import (  # noqa: F401 (fixtures)
    destination,
    login,
    make_user,
    marketer,
    operator,
    roles,
)
