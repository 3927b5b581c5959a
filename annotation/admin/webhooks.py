"""Admin for webhooks and their delivery log, with the "send test event" action.

The secret is write-only, like a project's API key: left empty on a new webhook it is generated and
shown once, in the message after saving, to be copied into the receiver; left empty on an existing
one it is kept.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from annotation.admin.scoping import ProjectScopedAdminMixin, project_admin_action
from annotation.models import Webhook, WebhookDelivery
from annotation.models.webhooks import SUBSCRIBABLE_EVENTS, WebhookEvent
from annotation.services.webhooks import (
    webhook_events_validate,
    webhook_secret_generate,
    webhook_test_send,
    webhook_url_validate,
)
from config.errors import ValidationFailed


class WebhookAdminForm(forms.ModelForm):
    url = forms.URLField(
        max_length=1000, assume_scheme="https", help_text="Receives a signed POST for every event subscribed."
    )
    events = forms.MultipleChoiceField(
        choices=[(event, WebhookEvent(event).label) for event in SUBSCRIBABLE_EVENTS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=(
            "Write-only: payloads are signed with it (HMAC-SHA256, header X-RLHF-Signature). Leave "
            "empty to keep the stored one, or on a new webhook to have one generated and shown once."
        ),
    )

    class Meta:
        model = Webhook
        fields = ["project", "url", "events", "secret", "is_active"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.generated_secret = ""

    def clean_secret(self) -> str:
        given = self.cleaned_data.get("secret")
        if given:
            return given
        if self.instance.pk:  # kept: the form never shows it, so an empty field means "unchanged"
            return Webhook.objects.get(pk=self.instance.pk).secret
        self.generated_secret = webhook_secret_generate()
        return self.generated_secret

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            webhook_url_validate(url=url)
        except ValidationFailed as error:
            raise forms.ValidationError(error.message) from None
        return url

    def clean_events(self) -> list[str]:
        try:
            return webhook_events_validate(events=list(self.cleaned_data.get("events") or []))
        except ValidationFailed as error:
            raise forms.ValidationError(error.message) from None


@admin.register(Webhook)
class WebhookAdmin(ProjectScopedAdminMixin, admin.ModelAdmin):
    form = WebhookAdminForm
    list_display = ["id", "project", "url", "events_display", "is_active", "created_at"]
    list_filter = ["is_active", "project"]
    search_fields = ["url"]
    list_select_related = ["project"]
    actions = ["send_test_event"]

    @admin.display(description="Events")
    def events_display(self, webhook: Webhook) -> str:
        return ", ".join(webhook.events or []) or "-"

    def save_model(self, request: HttpRequest, obj: Webhook, form: WebhookAdminForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if form.generated_secret:
            self.message_user(
                request,
                f"The webhook's signing secret is {form.generated_secret} - copy it into the receiver "
                "now: it is not shown again.",
                messages.WARNING,
            )

    @project_admin_action(description="Send a test event", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        sent = [
            webhook_test_send(webhook=webhook, requested_by=request.user.get_username())
            for webhook in queryset
        ]
        self.message_user(
            request,
            f"Queued a test event for {len(sent)} webhook(s); their response codes appear in Webhook deliveries.",
        )


DELIVERY_FIELDS: list[str] = [
    "webhook",
    "uuid",
    "event",
    "status",
    "response_code",
    "attempts",
    "error",
    "created_at",
    "last_attempt_at",
    "next_attempt_at",
    "delivered_at",
    "payload_display",
]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ProjectScopedAdminMixin, admin.ModelAdmin):
    """The delivery log: read-only; every attempt's outcome is the latest response code and error."""

    project_path = "webhook__project"
    list_display = [
        "id",
        "event",
        "webhook",
        "status",
        "response_code",
        "attempts",
        "created_at",
        "last_attempt_at",
        "error_excerpt",
    ]
    list_filter = ["status", "event", "webhook__project"]
    list_select_related = ["webhook"]
    fields = tuple(DELIVERY_FIELDS)
    readonly_fields = DELIVERY_FIELDS

    @admin.display(description="Error")
    def error_excerpt(self, delivery: WebhookDelivery) -> str:
        return delivery.error[:120] or "-"

    @admin.display(description="Payload")
    def payload_display(self, delivery: WebhookDelivery):
        return format_html("<pre>{}</pre>", json.dumps(delivery.payload, indent=2, ensure_ascii=False))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # deliveries only ever come from events

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
