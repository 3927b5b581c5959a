"""manage.py evaluate_reward_models PROJECT [--only-version N ...]: measure versions again on the frozen
evaluation set's rankings as they are now, so that every version stands on the same comparisons."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotation.selectors.projects import project_by_reference
from config.errors import DomainError
from rewards.models import RewardModel, RewardModelStatus
from rewards.services.evaluation import reward_model_evaluate


class Command(BaseCommand):
    help = (
        "Measure a project's reward-model versions (all succeeded ones, or --only-version N) again on its "
        "frozen evaluation set as it is now: accuracy, RM-labeler and labeler-labeler agreement, "
        "calibration, score histogram. Loads each model: run it where training runs."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("project", help="project id or exact name")
        parser.add_argument(
            "--only-version",
            type=int,
            action="append",
            dest="versions",
            help="only this version (repeatable)",
        )

    def handle(self, *args, **options) -> None:
        reference = options["project"]
        project = project_by_reference(reference=reference)
        if project is None:
            raise CommandError(f"no project with id or name {reference!r}")
        versions = RewardModel.objects.filter(project=project, status=RewardModelStatus.SUCCEEDED)
        if options["versions"]:
            versions = versions.filter(version__in=options["versions"])
        for reward_model in versions.order_by("version"):
            try:
                measured = reward_model_evaluate(reward_model_id=reward_model.pk)
            except DomainError as error:
                self.stderr.write(f"v{reward_model.version}: {error.message}")
                continue
            evaluation = measured.metrics["evaluation"]
            self.stdout.write(
                json.dumps(
                    {
                        "version": measured.version,
                        "rankings": evaluation["rankings"],
                        "accuracy": evaluation["accuracy"],
                        "rm_labeler": evaluation["rm_labeler"]["agreement"],
                        "ece": evaluation["calibration"]["ece"],
                    }
                )
            )
