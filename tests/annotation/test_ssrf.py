"""Generation reaches only allowed hosts: loopback, private and link-local addresses (cloud metadata)
only when GENERATION_ALLOWED_HOSTS lists them, checked on every resolved address and again on the
address each connection reached (DNS rebinding); redirects are not followed; error bodies never
come back; a stored key is never sent to a new server."""

from __future__ import annotations

import socket

import pytest

from annotation.generation.base import GenerationFailed, GenerationUnavailable, SamplingParams
from annotation.generation.hosts import HostPolicy, HostRefused
from annotation.generation.openai_http import OpenAICompatibleBackend
from annotation.tasks import candidates_generate
from tests.annotation.generation_servers import Reply, ScriptedServer
from tests.annotation.test_prompt_import import _project_form_data

SHORT = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=8)
TURNS = [{"role": "user", "content": "Hi?"}]
PUBLIC_IP = "93.184.215.14"


def _backend(url: str, allowed_hosts=("*",)) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(
        base_url=url, model="m", api_key="sk-ssrf-key", max_attempts=1, allowed_hosts=allowed_hosts
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",  # cloud metadata (link-local)
        "http://[fd00:ec2::254]/v1",  # AWS metadata over IPv6 (unique local)
        "http://10.0.0.5:8000/v1",
        "http://192.168.1.10/v1",
        "http://172.16.0.1/v1",
        "http://100.64.0.1/v1",  # carrier-grade NAT
        "http://127.0.0.1:8000/v1",
        "http://localhost:8000/v1",
        "http://[::1]:8000/v1",
        "http://[::ffff:127.0.0.1]:8000/v1",  # loopback written as IPv4-mapped IPv6
        "http://0.0.0.0:8000/v1",
    ],
)
def test_non_public_addresses_are_refused_unless_listed(url):
    with pytest.raises(HostRefused, match="GENERATION_ALLOWED_HOSTS"):
        _backend(url).generate(turns=TURNS, sampling=SHORT, seeds=[1])


def test_the_allowlist_names_hosts_addresses_and_networks():
    policy = HostPolicy.parse(["*", "vllm", ".internal.example", "10.1.0.0/16", "::1"])
    policy.address_check(host="vllm", address="172.18.0.4")  # listed by name: any address
    policy.address_check(host="gpu.internal.example", address="10.9.9.9")
    policy.address_check(host="x", address="10.1.2.3")
    policy.address_check(host="x", address="::1")
    policy.address_check(host="x", address=PUBLIC_IP)  # "*": public hosts
    for address in ("10.2.0.1", "127.0.0.1", "169.254.169.254"):
        with pytest.raises(HostRefused):
            policy.address_check(host="x", address=address)
    only_listed = HostPolicy.parse(["api.example.org"])
    with pytest.raises(HostRefused, match="not in GENERATION_ALLOWED_HOSTS"):
        only_listed.address_check(host="other.example.org", address=PUBLIC_IP)
    with pytest.raises(ValueError, match="GENERATION_ALLOWED_HOSTS"):
        HostPolicy.parse(["http://vllm:8000"])


def test_loopback_is_reached_only_when_listed(scripted_server):
    with pytest.raises(HostRefused):
        _backend(scripted_server.url).generate(turns=TURNS, sampling=SHORT, seeds=[1])
    assert scripted_server.requests == []
    [completion] = _backend(scripted_server.url, ("127.0.0.1",)).generate(
        turns=TURNS, sampling=SHORT, seeds=[1]
    )
    assert completion.text and len(scripted_server.requests) == 1


def test_a_name_that_rebinds_to_loopback_after_the_check_is_refused_at_connect(scripted_server, monkeypatch):
    """The name resolves to a public address when checked and to loopback when connecting: the
    connection's own peer address is checked, and nothing is sent."""
    real_getaddrinfo = socket.getaddrinfo
    answers = iter([PUBLIC_IP])

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.example":
            return real_getaddrinfo(host, port, *args, **kwargs)
        address = next(answers, "127.0.0.1")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = scripted_server.url.split(":")[2].split("/")[0]
    backend = _backend(f"http://rebind.example:{port}/v1")
    with pytest.raises(HostRefused, match="127.0.0.1"):
        backend.generate(turns=TURNS, sampling=SHORT, seeds=[1])
    assert scripted_server.requests == []


def test_redirects_are_not_followed(scripted_server):
    target = ScriptedServer().start()
    try:
        scripted_server.default = Reply(status=307, headers={"Location": target.url + "/chat/completions"})
        with pytest.raises(GenerationFailed, match="redirect") as raised:
            _backend(scripted_server.url, ("127.0.0.1",)).generate(turns=TURNS, sampling=SHORT, seeds=[1])
        assert not isinstance(raised.value, GenerationUnavailable)
        assert target.requests == [] and len(scripted_server.requests) == 1
    finally:
        target.stop()


def test_the_service_refuses_loopback_by_default_and_shows_no_error_body(
    http_project, make_prompts, scripted_server, settings
):
    [prompt] = make_prompts(http_project, 1)
    settings.GENERATION_ALLOWED_HOSTS = ["*"]  # the default
    result = candidates_generate.apply(args=[prompt.pk]).get()
    prompt.refresh_from_db()
    assert (
        "GENERATION_ALLOWED_HOSTS" in result["error"]
        and "GENERATION_ALLOWED_HOSTS" in prompt.generation_error
    )
    assert scripted_server.requests == []

    settings.GENERATION_ALLOWED_HOSTS = ["*", "127.0.0.1"]
    scripted_server.default = Reply(status=403, body='{"error": "internal-admin-page secret=hunter2"}')
    result = candidates_generate.apply(args=[prompt.pk]).get()
    prompt.refresh_from_db()
    assert "HTTP 403 Forbidden" in prompt.generation_error
    assert "hunter2" not in prompt.generation_error + result["error"]
    assert "internal-admin-page" not in prompt.generation_error


def test_admin_form_refuses_a_base_url_that_is_not_allowed(client, admin_user, password, project, settings):
    client.login(username=admin_user.username, password=password)
    url = f"/admin/annotation/project/{project.pk}/change/"
    for base_url in ("http://169.254.169.254/v1", "http://127.0.0.1:8000/v1", "http://10.0.0.7/v1"):
        data = _project_form_data(
            project, generation_backend="openai", generation_base_url=base_url, generation_model="m"
        )
        response = client.post(url, data)
        assert response.status_code == 200 and "GENERATION_ALLOWED_HOSTS" in response.content.decode()
    project.refresh_from_db()
    assert project.generation_base_url == ""
    settings.GENERATION_ALLOWED_HOSTS = ["*", "127.0.0.1"]
    response = client.post(url, data | {"generation_base_url": "http://127.0.0.1:8000/v1"})
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.generation_base_url == "http://127.0.0.1:8000/v1"


def test_the_stored_key_is_cleared_when_the_server_changes(client, admin_user, password, project, settings):
    settings.GENERATION_ALLOWED_HOSTS = ["*", "127.0.0.1", "localhost"]
    project.generation_backend = "openai"
    project.generation_model = "m"
    project.generation_base_url = "http://127.0.0.1:8000/v1"
    project.generation_api_key = "sk-for-the-first-server"
    project.save()
    client.login(username=admin_user.username, password=password)
    url = f"/admin/annotation/project/{project.pk}/change/"
    form = _project_form_data(project, generation_backend="openai", generation_model="m")

    # Same server, another path: the key stays.
    response = client.post(url, form | {"generation_base_url": "http://127.0.0.1:8000/openai/v1"})
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.generation_api_key == "sk-for-the-first-server"

    # Another port (another server): the key is cleared, and the admin is told.
    response = client.post(url, form | {"generation_base_url": "http://127.0.0.1:9000/v1"}, follow=True)
    project.refresh_from_db()
    assert project.generation_api_key == ""
    assert "stored API key was cleared" in response.content.decode()

    # A key typed together with the new URL is kept.
    project.generation_api_key = "sk-old"
    project.save()
    response = client.post(
        url, form | {"generation_base_url": "http://localhost:9000/v1", "generation_api_key": "sk-new"}
    )
    project.refresh_from_db()
    assert project.generation_api_key == "sk-new"
