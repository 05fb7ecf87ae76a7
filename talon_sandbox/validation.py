"""Validation of customer-profile update bodies, as Talon.One's Integration API does it.

Follows the OpenAPI schemas CustomerProfileIntegrationRequestV2 and
MultipleCustomerProfileIntegrationRequest. Neither sets `additionalProperties`, so
unknown top-level or per-profile fields are accepted and ignored; the known ones are
type-checked. Every problem is collected, so one 400 lists all bad profiles.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .attributes import value_matches
from .responses import ApiError, json_pointer

MAX_INTEGRATION_ID_LENGTH = 1000
MAX_BULK_PROFILES = 1000
RESPONSE_CONTENT_VALUES = frozenset(
    {
        "customerProfile",
        "triggeredCampaigns",
        "loyalty",
        "event",
        "awardedGiveaways",
        "ruleFailureReasons",
        "campaignEligibility",
        "achievements",
    }
)

_JSON_TYPE_NAMES = {
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    list: "array",
    dict: "object",
    type(None): "null",
}


class InvalidRequest(Exception):
    """The request is rejected whole with 400; `errors` locate every problem."""

    def __init__(self, errors: list[ApiError]) -> None:
        super().__init__(errors[0].details)
        self.errors = errors


@dataclass(frozen=True)
class ProfileUpdate:
    integration_id: str
    attributes: Mapping[str, Any]  # a None value unsets the attribute
    audience_adds: tuple[int, ...] = ()
    audience_deletes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Rules:
    """What a valid update must respect, snapshotted once per request."""

    catalogue: Mapping[str, str]
    rejected_profiles: frozenset[str]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    try:
        # parse_constant: Python would otherwise accept NaN/Infinity, which JSON forbids.
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:  # includes JSONDecodeError and bad UTF-8
        raise InvalidRequest(
            [ApiError.at_pointer("", "Invalid JSON", f"request body is not valid JSON: {exc}")]
        ) from exc


def check_integration_id_parameter(integration_id: str) -> None:
    if not 1 <= len(integration_id) <= MAX_INTEGRATION_ID_LENGTH:
        raise InvalidRequest(
            [
                ApiError.at_parameter(
                    "integrationId",
                    "Invalid integrationId",
                    f"integrationId must be 1 to {MAX_INTEGRATION_ID_LENGTH} characters",
                )
            ]
        )


def single_update(
    body: Any, integration_id: str, rules: Rules, *, run_rule_engine: bool
) -> ProfileUpdate:
    """Body of PUT /v2/customer_profiles/{integrationId}."""
    _require_object(body)
    errors: list[ApiError] = []
    attributes = _profile_attributes(body, (), integration_id, rules, errors)
    adds, deletes = _audiences_changes(body.get("audiencesChanges"), errors)
    _integer_list(body.get("evaluableCampaignIds"), ("evaluableCampaignIds",), errors)
    _response_content(body.get("responseContent"), run_rule_engine, errors)
    if errors:
        raise InvalidRequest(errors)
    return ProfileUpdate(integration_id, attributes, adds, deletes)


def bulk_update(body: Any, rules: Rules) -> list[ProfileUpdate]:
    """Body of PUT /v2/customer_profiles; all-or-nothing like Talon.One."""
    _require_object(body)
    items = body.get("customerProfiles")
    if type(items) is not list or not 1 <= len(items) <= MAX_BULK_PROFILES:
        raise InvalidRequest(
            [
                ApiError.at_pointer(
                    "/customerProfiles",
                    "Invalid customerProfiles",
                    f"customerProfiles must be an array of 1 to {MAX_BULK_PROFILES}"
                    f" customer profiles, got {_describe_size(items)}",
                )
            ]
        )
    errors: list[ApiError] = []
    updates: list[ProfileUpdate] = []
    for index, item in enumerate(items):
        at = ("customerProfiles", index)
        if type(item) is not dict:
            errors.append(_type_error(at, "a customer profile object", item))
            continue
        integration_id = item.get("integrationId")
        if type(integration_id) is not str or not (
            1 <= len(integration_id) <= MAX_INTEGRATION_ID_LENGTH
        ):
            errors.append(
                ApiError.at_pointer(
                    json_pointer(*at, "integrationId"),
                    "Invalid integrationId",
                    f"integrationId must be a string of 1 to {MAX_INTEGRATION_ID_LENGTH}"
                    " characters",
                )
            )
            continue
        attributes = _profile_attributes(item, at, integration_id, rules, errors)
        updates.append(ProfileUpdate(integration_id, attributes))
    if errors:
        raise InvalidRequest(errors)
    return updates


def _require_object(body: Any) -> None:
    if type(body) is not dict:
        raise InvalidRequest([_type_error((), "a JSON object", body)])


def _profile_attributes(
    container: dict[str, Any],
    at: tuple[str | int, ...],
    integration_id: str,
    rules: Rules,
    errors: list[ApiError],
) -> Mapping[str, Any]:
    """Validate `attributes` against the catalogue; collect errors, return the update."""
    if integration_id in rules.rejected_profiles:
        errors.append(
            ApiError.at_pointer(
                json_pointer(*at, "attributes"),
                "Invalid attribute value",
                f"customer profile {integration_id!r} was rejected"
                " (sandbox fault 'reject_profiles')",
            )
        )
    attributes = container.get("attributes")
    # A null `attributes` is treated like an absent one (Talon.One's Go backend
    # decodes both to a nil map).
    if attributes is None:
        return {}
    if type(attributes) is not dict:
        errors.append(_type_error((*at, "attributes"), "a JSON object", attributes))
        return {}
    for name, value in attributes.items():
        type_name = rules.catalogue.get(name)
        if type_name is None:
            errors.append(
                ApiError.at_pointer(
                    json_pointer(*at, "attributes", name),
                    "Unknown attribute",
                    f"unknown attribute {name!r}: no customer profile attribute of"
                    " this name exists in the Campaign Manager",
                )
            )
        # Talon.One documents no meaning for null attribute values; the sandbox
        # accepts null as "unset" and removes the attribute from the profile.
        elif value is not None and not value_matches(type_name, value):
            errors.append(
                ApiError.at_pointer(
                    json_pointer(*at, "attributes", name),
                    "Invalid attribute value",
                    f"attribute {name!r} must be of type {type_name}, got {_json_type(value)}",
                )
            )
    return attributes


def _audiences_changes(
    changes: Any, errors: list[ApiError]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    # The OpenAPI marks `adds` and `deletes` required but defaults them to null (the
    # SDKs send null for an empty side), so missing or null means "no change".
    if changes is None:
        return (), ()
    if type(changes) is not dict:
        errors.append(_type_error(("audiencesChanges",), "an object", changes))
        return (), ()
    adds = _integer_list(changes.get("adds"), ("audiencesChanges", "adds"), errors)
    deletes = _integer_list(changes.get("deletes"), ("audiencesChanges", "deletes"), errors)
    return adds, deletes


def _integer_list(value: Any, at: tuple[str, ...], errors: list[ApiError]) -> tuple[int, ...]:
    if value is None:
        return ()
    if type(value) is not list:
        errors.append(_type_error(at, "an array of integers", value))
        return ()
    for index, item in enumerate(value):
        if type(item) is not int:
            errors.append(_type_error((*at, index), "an integer", item))
    return tuple(value)


def _response_content(value: Any, run_rule_engine: bool, errors: list[ApiError]) -> None:
    if value is None:
        return
    valid = type(value) is list and all(
        type(item) is str and item in RESPONSE_CONTENT_VALUES for item in value
    )
    if not valid:
        errors.append(
            ApiError.at_pointer(
                "/responseContent",
                "Invalid responseContent",
                "responseContent must be an array of: "
                + ", ".join(sorted(RESPONSE_CONTENT_VALUES)),
            )
        )
    elif value and not run_rule_engine:
        # Documented on runRuleEngine: "If false ... You cannot use responseContent".
        errors.append(
            ApiError.at_pointer(
                "/responseContent",
                "Invalid responseContent",
                "responseContent can only be used with runRuleEngine=true",
            )
        )


def _type_error(at: tuple[str | int, ...], expected: str, value: Any) -> ApiError:
    return ApiError.at_pointer(
        json_pointer(*at),
        "Invalid type",
        f"expected {expected}, got {_json_type(value)}",
    )


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _describe_size(items: Any) -> str:
    return f"{len(items)}" if type(items) is list else _json_type(items)


# --- Events, audiences, memberships (trackEventV2, createAudienceV2,
# updateCustomerProfileAudiences), as their OpenAPI schemas define them ---------


@dataclass(frozen=True)
class TrackedEvent:
    profile_id: str
    type: str
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class NewAudience:
    name: str
    integration: str
    integration_id: str


@dataclass(frozen=True)
class MembershipChange:
    add: bool
    integration_id: str
    audience_id: int


def track_event(body: Any) -> TrackedEvent:
    """Body of POST /v2/events: `type` required (non-empty), `profileId` a string,
    `attributes` an object."""
    _require_object(body)
    errors: list[ApiError] = []
    event_type = body.get("type")
    if type(event_type) is not str or not event_type:
        errors.append(_type_error(("type",), "a non-empty string", event_type))
    profile_id = body.get("profileId", "")
    if type(profile_id) is not str:
        errors.append(_type_error(("profileId",), "a string", profile_id))
    attributes = body.get("attributes", {})
    if type(attributes) is not dict:
        errors.append(_type_error(("attributes",), "an object", attributes))
    if errors:
        raise InvalidRequest(errors)
    return TrackedEvent(profile_id, event_type, attributes)


def new_audience(body: Any) -> NewAudience:
    """Body of POST /v2/audiences: `name` required (non-empty); `integration` a
    string; `integrationId` 1 to 1000 characters."""
    _require_object(body)
    errors: list[ApiError] = []
    name = body.get("name")
    if type(name) is not str or not name:
        errors.append(_type_error(("name",), "a non-empty string", name))
    integration = body.get("integration", "")
    if type(integration) is not str:
        errors.append(_type_error(("integration",), "a string", integration))
    integration_id = body.get("integrationId", "")
    if type(integration_id) is not str or len(integration_id) > MAX_INTEGRATION_ID_LENGTH:
        errors.append(
            _type_error(("integrationId",), "a string of at most 1000 characters", integration_id)
        )
    if errors:
        raise InvalidRequest(errors)
    return NewAudience(name, integration, integration_id)


def membership_changes(body: Any) -> list[MembershipChange]:
    """Body of POST /v2/customer_audiences: `data`, at most 1000 items, each with
    `action` ("add" or "delete"), `profileIntegrationId` (at most 1000
    characters) and `audienceId` (an integer), all required."""
    _require_object(body)
    items = body.get("data")
    if type(items) is not list or len(items) > MAX_BULK_PROFILES:
        raise InvalidRequest(
            [
                ApiError.at_pointer(
                    "/data",
                    "Invalid data",
                    f"data must be an array of at most {MAX_BULK_PROFILES} changes, "
                    f"got {_describe_size(items)}",
                )
            ]
        )
    errors: list[ApiError] = []
    changes = []
    for index, item in enumerate(items):
        at = ("data", index)
        if type(item) is not dict:
            errors.append(_type_error(at, "an object", item))
            continue
        action = item.get("action")
        profile = item.get("profileIntegrationId")
        audience = item.get("audienceId")
        if action not in ("add", "delete"):
            errors.append(_type_error((*at, "action"), '"add" or "delete"', action))
        if type(profile) is not str or len(profile) > MAX_INTEGRATION_ID_LENGTH:
            errors.append(_type_error((*at, "profileIntegrationId"), "a string", profile))
        if type(audience) is not int:
            errors.append(_type_error((*at, "audienceId"), "an integer", audience))
        if not errors:
            changes.append(MembershipChange(action == "add", profile, audience))
    if errors:
        raise InvalidRequest(errors)
    return changes
