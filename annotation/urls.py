"""Labeler pages and the labeler API (the queue, drafts, submissions)."""

from django.urls import path
from django.views.generic import TemplateView

urlpatterns = [
    path("", TemplateView.as_view(template_name="labeler/home.html"), name="labeler-home"),
]
