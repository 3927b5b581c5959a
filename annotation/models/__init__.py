from annotation.models.assignments import Assignment
from annotation.models.exports import ExportJob
from annotation.models.gold import GoldCheck, MembershipEvent
from annotation.models.imports import PromptImportJob
from annotation.models.live import LiveGeneration
from annotation.models.projects import Membership, Project
from annotation.models.prompts import Candidate, Demonstration, Prompt
from annotation.models.quality import QualityEvent
from annotation.models.rankings import Comparison, Ranking, RankingItem
from annotation.models.webhooks import Webhook, WebhookDelivery

__all__ = [
    "Assignment",
    "Candidate",
    "Comparison",
    "Demonstration",
    "ExportJob",
    "GoldCheck",
    "LiveGeneration",
    "Membership",
    "MembershipEvent",
    "Project",
    "Prompt",
    "PromptImportJob",
    "QualityEvent",
    "Ranking",
    "RankingItem",
    "Webhook",
    "WebhookDelivery",
]
