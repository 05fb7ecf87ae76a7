from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Lower

from destinations.fields import EncryptedTextField, validate_secret
from destinations.services.mapping import AttributeType, attribute_name_error
from destinations.talon_one import base_url_error


def validate_base_url(value: str) -> None:
    """A Talon.One deployment root: https, a valid host and port, a public address."""
    if message := base_url_error(value):
        raise ValidationError(message)


def validate_attribute_name(value: str) -> None:
    if message := attribute_name_error(value):
        raise ValidationError(message)


class Destination(models.Model):
    """One Talon.One Application that Segment events are delivered to."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(
        max_length=100, unique=True, help_text="Part of the ingest URL: /api/v1/segment/your-slug/."
    )
    enabled = models.BooleanField(default=True, help_text="Disabled destinations refuse events.")
    base_url = models.CharField(
        "Talon.One base URL",
        max_length=255,
        validators=[validate_base_url],
        help_text="The deployment root, e.g. https://mycompany.europe-west1.talon.one.",
    )
    api_key = EncryptedTextField("Integration API key", validators=[validate_secret])
    management_api_key = EncryptedTextField(
        "Management API key",
        blank=True,
        validators=[validate_secret],
        help_text="Optional, read-only use: lets this service read Talon.One's attribute "
        "catalog (GET /v1/attributes) to check the attribute rows.",
    )
    catalog_fetched_at = models.DateTimeField(
        "attribute catalog read at", null=True, blank=True, editable=False
    )
    catalog_error = models.TextField(
        blank=True, editable=False, help_text="Why the last catalog read failed, if it did."
    )
    shared_secret = EncryptedTextField(
        "Segment shared secret",
        blank=True,
        validators=[validate_secret],
        help_text="The secret set in Segment's Webhooks destination; signs every request.",
    )
    # Rotation: the replaced secret stays valid for a while (Segment retries for
    # up to 4 hours, and its settings change after ours), then stops by itself.
    previous_shared_secret = EncryptedTextField("previous Segment shared secret", blank=True)
    previous_secret_expires_at = models.DateTimeField(
        "previous secret accepted until", null=True, blank=True
    )
    accept_unsigned = models.BooleanField(
        "accept unsigned events",
        default=False,
        help_text="Only without a shared secret: accept events that carry no signature. "
        "Anyone who knows the ingest URL can then change profiles.",
    )
    accept_first_event_signature = models.BooleanField(
        "accept batches signed over their first event",
        default=False,
        help_text="Webhooks (Actions) signs a batch with X-Signature over its first event "
        "only, so the other events are not covered. Prefer an Authorization header with "
        "the shared secret; tick this only if you cannot set one.",
    )
    # SHA-256 of the SDK write key (Segment's HTTP Tracking API at /v1/...): the
    # key finds its destination by an index, and is never stored itself.
    write_key_digest = models.CharField(max_length=64, blank=True, editable=False)
    run_rule_engine = models.BooleanField(
        default=False,
        help_text="Run Talon.One's rules on every profile update (slower: one request per "
        "profile instead of bulk requests).",
    )

    class EngageAudiences(models.TextChoices):
        ATTRIBUTE = "attribute", "as a Boolean attribute named by the audience key"
        AUDIENCE = "audience", "as a Talon.One audience (membership added and removed)"
        BOTH = "both", "both"

    engage_audiences = models.CharField(
        "Engage audiences",
        max_length=10,
        choices=EngageAudiences.choices,
        default=EngageAudiences.ATTRIBUTE,
        help_text="How Segment Engage audience entries and exits reach Talon.One.",
    )
    forward_engage = models.BooleanField(
        "Forward Engage traits",
        default=True,
        help_text="Forward Engage audiences and computed traits without listing them below.",
    )
    max_requests_per_second = models.PositiveIntegerField(
        default=50,
        validators=[MinValueValidator(1)],
        help_text="Requests per second to Talon.One, shared by all workers "
        "(Talon.One's Segment proxy allows 60).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["write_key_digest"],
                condition=~models.Q(write_key_digest=""),
                name="unique_write_key",
            )
        ]
        permissions = [
            (
                "manage_connection",
                "Can see and change the Talon.One connection and the Segment secrets",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.accept_unsigned and self.shared_secret:
            raise ValidationError(
                {
                    "accept_unsigned": "A destination with a shared secret checks every "
                    "signature: clear the secret to accept unsigned events, or untick this."
                }
            )


class TypedName(models.Model):
    """A value sent to Talon.One under this name, checked and coerced to this type."""

    name = models.CharField(max_length=255, validators=[validate_attribute_name])
    type = models.CharField(
        max_length=20,
        choices=[(t.value, t.value) for t in AttributeType],
        default=AttributeType.STRING,
    )

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"


class AttributeMapping(TypedName):
    """A trait (after flattening) forwarded to the Talon.One attribute of the same name."""

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="attributes"
    )
    name = models.CharField(
        max_length=255,
        validators=[validate_attribute_name],
        help_text="Exact, case-sensitive trait name after flattening "
        "(address.city → address_city).",
    )

    class Meta(TypedName.Meta):
        constraints = [
            models.UniqueConstraint(
                "destination",
                Lower("name"),
                name="unique_attribute_name_per_destination",
                violation_error_message="This destination already forwards an attribute of this "
                "name (names may not differ only in case).",
            )
        ]


class EventMapping(models.Model):
    """A Segment track event forwarded to Talon.One as a custom event."""

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="event_mappings"
    )
    segment_event = models.CharField(
        "Segment event", max_length=200, help_text="Exact, case-sensitive event name."
    )
    talon_event_type = models.CharField(
        "Talon.One event type",
        max_length=255,
        help_text="The custom event's type in Talon.One (its name there).",
    )

    class Meta:
        ordering = ["segment_event"]
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "segment_event"], name="unique_event_mapping"
            )
        ]

    def __str__(self) -> str:
        return f"{self.segment_event} → {self.talon_event_type}"


class EventProperty(TypedName):
    """A track property (after flattening) sent as the event attribute of the same name."""

    event_mapping = models.ForeignKey(
        EventMapping, on_delete=models.CASCADE, related_name="properties"
    )

    class Meta(TypedName.Meta):
        constraints = [
            models.UniqueConstraint(
                "event_mapping", Lower("name"), name="unique_event_property_name"
            )
        ]


class TalonAudience(models.Model):
    """An Engage audience as a Talon.One audience: created once, its id remembered."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="audiences")
    key = models.CharField(max_length=255, help_text="Segment's computation_key.")
    computation_id = models.CharField(max_length=255, blank=True)
    talon_id = models.BigIntegerField(
        "Talon.One audience id",
        null=True,
        blank=True,
        help_text="Set when the audience was created in Talon.One.",
    )
    members_added = models.PositiveIntegerField(default=0)
    members_removed = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["destination", "key"], name="unique_audience_key")
        ]

    def __str__(self) -> str:
        return self.key


class InboundEvent(models.Model):
    """Every event Segment handed us, and the state of its delivery (the outbox)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"
        SKIPPED = "skipped"

    class Kind(models.TextChoices):
        """Which Talon.One call the row becomes (one handler per kind)."""

        PROFILE = "profile", "profile update"
        AUDIENCE = "audience", "audience membership"
        EVENT = "event", "custom event"
        DELETION = "deletion", "customer data deletion"

    # No index of its own: every composite index below leads with it, and each index
    # is one more write per row version (delivery updates every row three times).
    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    message_id = models.CharField(max_length=200)
    type = models.CharField(max_length=20)
    user_id = models.CharField("userId (integrationId)", max_length=1000, blank=True)
    payload = models.JSONField()
    timestamp = models.DateTimeField(
        help_text="When it happened, from the event (Segment's clock)."
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, blank=True)
    attributes = models.JSONField(default=dict, help_text="The mapped Talon.One attributes.")
    call = models.JSONField(
        default=dict, help_text="What else the call needs (event type, audience)."
    )
    notes = models.JSONField(default=list, help_text="Why traits were dropped or changed.")
    status = models.CharField(max_length=10, choices=Status.choices)
    reason = models.TextField(blank=True, help_text="Why it was skipped or failed.")
    attempts = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When delivery (or redelivery) was asked for."
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Which ingest request stored the row: with concurrent requests for the same
    # messageIds, each learns which rows it inserted itself. Empty on older rows.
    request_id = models.UUIDField(
        null=True, blank=True, editable=False, help_text="The ingest request that stored it."
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["destination", "message_id"], name="unique_message_id")
        ]
        indexes = [
            models.Index(fields=["destination", "status", "next_attempt_at"], name="event_due"),
            models.Index(fields=["destination", "user_id", "status"], name="event_profile"),
            # The sweeper's question across all destinations: which pending events are due.
            models.Index(
                fields=["next_attempt_at"],
                name="event_pending_due",
                condition=models.Q(status="pending"),
            ),
        ]
        permissions = [("redeliver_inboundevent", "Can redeliver events to Talon.One")]

    def __str__(self) -> str:
        return f"{self.type} {self.message_id}"


class SeenMessage(models.Model):
    """A messageId received for a destination: duplicate detection that outlives
    the audit rows (AUDIT_RETENTION_DAYS), kept DEDUPE_RETENTION_DAYS. Without it,
    a captured signed request replayed after the purge would be accepted again."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="+")
    message_id = models.CharField(max_length=200)
    first_seen_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "message_id"], name="unique_seen_message"
            )
        ]

    def __str__(self) -> str:
        return self.message_id


class DeliveryAttempt(models.Model):
    """One HTTP request to Talon.One and what came back (the audit log)."""

    class Outcome(models.TextChoices):
        SUCCESS = "success"
        RETRY = "retry", "will retry"
        FAILED = "failed"

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="attempts")
    events = models.ManyToManyField(InboundEvent, related_name="delivery_attempts")
    integration_id = models.CharField(
        max_length=1000, blank=True, help_text="Set for single-profile requests."
    )
    profile_count = models.PositiveIntegerField()
    method = models.CharField(max_length=10)
    # Text: the path holds the integrationId percent-encoded, up to 6,000 characters.
    url = models.TextField()
    request_body = models.JSONField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True, help_text="Transport error or the reason for the outcome.")
    duration_ms = models.PositiveIntegerField()
    attempt_number = models.PositiveIntegerField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    task_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.method} {self.url} → {self.response_status or self.error[:40]}"


class ProfileState(models.Model):
    """Per profile, the Segment timestamp of the newest value delivered for each attribute.

    Lets a late or repeated event lose to a newer value instead of overwriting it.
    """

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="+")
    integration_id = models.CharField(max_length=1000)
    attribute_timestamps = models.JSONField(default=dict)
    # Segment timestamp of the deletion delivered for this profile: older calls
    # arriving later are not sent, so they cannot bring the profile back.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "integration_id"], name="unique_profile_state"
            )
        ]

    def __str__(self) -> str:
        return self.integration_id


class DeliveryLease(models.Model):
    """Who flushes a shard of a destination now (services/shards.py): one flusher
    per shard at a time, so no profile has two requests in flight, and an expired
    lease frees a shard whose worker died."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="+")
    shard = models.PositiveSmallIntegerField(default=0)
    # The shard count its flusher split the profiles by: flushers of another count
    # (settings changed) wait until every lease of this one has ended.
    shard_count = models.PositiveSmallIntegerField(default=1)
    holder = models.CharField(max_length=255, blank=True)
    expires_at = models.DateTimeField(null=True)
    # A fencing token: one more on every acquisition. A flusher sends only while the
    # lease still has its holder and generation, checked right before each request.
    generation = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["destination", "shard"], name="one_lease_per_shard")
        ]

    def __str__(self) -> str:
        return f"{self.holder or 'free'} until {self.expires_at}"


class RefusedAttribute(models.Model):
    """An attribute Talon.One refused in an update (most often: not created in
    its Campaign Manager yet). Left out of updates until retry_at, so later
    events don't each pay for finding it; shown to marketers to create it."""

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="refused_attributes"
    )
    name = models.CharField(max_length=255)
    message = models.TextField(help_text="What Talon.One answered.")
    example_value = models.JSONField(null=True, blank=True)
    example_event = models.ForeignKey(
        InboundEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    event_count = models.PositiveIntegerField(
        "events", default=0, help_text="Events whose value of it was not sent."
    )
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()
    retry_at = models.DateTimeField(help_text="Until then it is left out without asking.")

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(fields=["destination", "name"], name="unique_refused_attribute")
        ]

    def __str__(self) -> str:
        return self.name


class TalonAttribute(models.Model):
    """A customer-profile attribute as Talon.One's catalog defines it, read with
    the Management API key: what attribute rows are checked against."""

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="talon_attributes"
    )
    name = models.CharField(max_length=255)
    type = models.CharField(max_length=20)
    title = models.CharField(max_length=255, blank=True)
    talon_id = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["destination", "name"], name="unique_talon_attribute")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"
