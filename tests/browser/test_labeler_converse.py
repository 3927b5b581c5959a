"""A labeler talks to the model in real headless Chromium: the replies stream in from a real `live`
worker, token by token, and are ranked, edited or replaced turn after turn; a reload mid-stream loses
nothing; a model server killed mid-stream is said plainly, keeps what the labeler typed, and a retry
works once it is back. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Assignment, Candidate, Demonstration, LiveGeneration, Ranking, RankingItem
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.models.prompts import CandidateSource
from annotation.services.live import live_generation_run
from tests.annotation.converse_server import StreamingServer, free_port, server_process_start
from tests.browser.conftest import open_page
from tests.browser.converse_worker import LiveWorker, broker_folder

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Records, every 20 ms, the live status and each pane's text length, so a test can tell text that
# arrived piece by piece from text that arrived whole.
SAMPLER = """
window.__samples = [];
setInterval(() => {
  const replies = document.getElementById("replies");
  if (!replies) return;
  const lengths = [...document.querySelectorAll("#reply-panes .reply-text")].map((e) => e.textContent.length);
  window.__samples.push([replies.dataset.status || "", lengths]);
}, 20);
"""
READY = "#judge:not([hidden]) article.candidate"


@pytest.fixture
def var_dir(tmp_path):
    """The worker's VAR_DIR: its broker folder is where this process sends the turns' messages."""
    folder = tmp_path / "var"
    with broker_folder(folder):
        yield folder


@pytest.fixture
def converse_project(project):
    project.converse_per_prompt = 1
    project.converse_max_turns = 3
    project.ratings_required = False
    project.min_demonstration_chars = 10
    project.save()
    return project


def _streaming_project(project, url: str, k: int = 2):
    project.k = k
    project.generation_backend, project.generation_base_url, project.generation_model = (
        "openai",
        url,
        "stream",
    )
    project.save()
    return project


def _start_conversation(page, login, labeler, *, home_screenshot=None) -> int:
    login(page, labeler)
    if home_screenshot is not None:
        page.screenshot(path=str(home_screenshot), full_page=True)
        width = page.viewport_size["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.click("button.start[data-kind=converse]")
    page.wait_for_url(re.compile(r"/tasks/\d+/$"))
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def _pane_texts(page) -> list[str]:
    return page.eval_on_selector_all("#reply-panes .reply-text", "panes => panes.map(p => p.textContent)")


def _card_ids(page) -> list[int]:
    return [
        int(x)
        for x in page.eval_on_selector_all("#rank-widget article.candidate", "c => c.map(x => x.dataset.id)")
    ]


def _streamed_piece_by_piece(samples: list) -> bool:
    """Some pane had text while the replies were still being written, and had more later."""
    partial = [
        (n, lengths) for n, (status, lengths) in enumerate(samples) if status == "running" and any(lengths)
    ]
    return any(
        any(later > now for _, after in samples[n + 1 :] for later, now in zip(after, lengths, strict=False))
        for n, lengths in partial
    )


def _next_turn(page, previous_id: int) -> int:
    page.wait_for_url(lambda url: re.search(rf"/tasks/(?!{previous_id}/)\d+/$", url) is not None)
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_three_turn_conversation_with_the_embedded_model(
    page, live_server, login, labeler, converse_project, make_prompts, var_dir, tmp_path, artifacts
):
    project = converse_project
    project.k, project.max_tokens, project.temperature = 3, 24, 1.0
    project.save()
    (opening,) = make_prompts(project, 1, prefix="Tell me about the sea. Question")
    worker = LiveWorker(var_dir=var_dir, log=tmp_path / "worker.log").start()
    page.add_init_script(SAMPLER)
    streamed = []
    try:
        # Turn 1: a tie, a rating, an edit of the winner, then the next message.
        first_id = _start_conversation(page, login, labeler)
        assert page.locator("#turn-count").inner_text() == "turn 1 of 3"
        page.fill("#next-turn", "Tell me a second thing.")  # typed while the replies stream in
        page.wait_for_selector(READY, timeout=180_000)
        streamed.append(_streamed_piece_by_piece(page.evaluate("window.__samples")))
        ids = _card_ids(page)
        assert len(ids) >= 2  # K = 3 replies, fewer only if the model wrote the same one twice
        page.locator(f"article.candidate[data-id='{ids[1]}']").focus()
        page.keyboard.press("t")  # ties the second reply with the first
        page.locator(f"article.candidate[data-id='{ids[0]}']").focus()
        page.keyboard.press("r"), page.keyboard.press("6")
        page.click("#edit-toggle")
        winner = Candidate.objects.get(pk=ids[0])
        assert page.input_value("#edit-text") == winner.text
        page.fill("#edit-text", "An edited reply: the sea is wide and deep.")
        assert page.input_value("#next-turn") == "Tell me a second thing."
        page.screenshot(path=str(artifacts / "converse-turn-1.png"), full_page=True)
        page.click("#send")
        second_id = _next_turn(page, first_id)

        first = Ranking.objects.get(assignment_id=first_id)
        edit = Candidate.objects.get(source=CandidateSource.EDIT)
        assert (edit.edited_from_id, edit.text) == (ids[0], "An edited reply: the sea is wide and deep.")
        # The edit ranks alone just above the tie it came from.
        assert [set(group) for group in first.order] == [{edit.pk}, set(ids[:2])] + [{i} for i in ids[2:]]
        assert RankingItem.objects.get(ranking=first, candidate_id=ids[0]).rating == 6

        # Turn 2: none is acceptable; the labeler writes the reply and sends with Ctrl+Enter.
        assert page.locator("#turn-count").inner_text() == "turn 2 of 3"
        assert "An edited reply: the sea is wide and deep." in page.inner_text(".conversation")
        page.wait_for_selector(READY, timeout=120_000)
        streamed.append(_streamed_piece_by_piece(page.evaluate("window.__samples")))
        page.check("#rank-widget input.none-acceptable")
        assert page.locator("#own-reply").is_visible() and not page.locator("#edit-toggle").is_visible()
        page.fill("#own-reply", "My own reply, better than all three.")
        page.fill("#next-turn", "And a third?")
        page.screenshot(path=str(artifacts / "converse-turn-2-none-acceptable.png"), full_page=True)
        page.focus("#next-turn")
        page.keyboard.press("Control+Enter")
        third_id = _next_turn(page, second_id)
        second = Ranking.objects.get(assignment_id=second_id)
        assert second.none_acceptable
        assert Demonstration.objects.get().text == "My own reply, better than all three."

        # Turn 3, the last: only End is offered, and the keyboard alone finishes it.
        page.wait_for_selector(READY, timeout=120_000)
        streamed.append(_streamed_piece_by_piece(page.evaluate("window.__samples")))
        assert page.locator("#send").count() == 0 and page.locator("#next-turn").count() == 0
        assert page.locator("#last-turn-note").is_visible()
        ids = _card_ids(page)
        assert int(page.evaluate("document.activeElement.dataset.id")) == ids[0]
        page.keyboard.press("2")  # the first reply goes to second place
        page.keyboard.press("Enter")  # on a reply: on to the next step, here End
        assert page.evaluate("document.activeElement.id") == "end"
        page.screenshot(path=str(artifacts / "converse-turn-3-last.png"), full_page=True)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/\?conversation=ended$"))
        assert page.locator("#conversation-ended").is_visible()
    finally:
        worker.stop()

    third = Ranking.objects.get(assignment_id=third_id)
    assert third.order[0] == [ids[1]] and third.order[1] == [ids[0]]
    assert third.prompt.turns[-2:] == [
        {"role": "assistant", "content": "My own reply, better than all three."},
        {"role": "user", "content": "And a third?"},
    ]
    assert third.prompt.parent.parent_id == opening.pk
    assert Assignment.objects.filter(kind=TaskKind.CONVERSE, status=AssignmentStatus.SUBMITTED).count() == 3
    live = LiveGeneration.objects.order_by("pk")
    assert all(row.backend == "embedded" and row.first_token_at for row in live)
    # The panes filled piece by piece (the first turn also waits for the model to load, so its
    # page is always there before the first token).
    print(f"\nconverse, embedded model: replies seen growing piece by piece in {sum(streamed)} of 3 turns")
    assert any(streamed), streamed


def test_a_reload_mid_stream_loses_nothing_and_keeps_streaming(
    page, live_server, login, labeler, converse_project, make_prompts, var_dir, tmp_path, artifacts
):
    server = StreamingServer(words=60, delay=0.1).start()  # about 6 s per reply
    _streaming_project(converse_project, server.url)
    make_prompts(converse_project, 1)
    worker = LiveWorker(var_dir=var_dir, log=tmp_path / "worker.log").start()
    page.set_viewport_size({"width": 390, "height": 844})
    page.add_init_script(SAMPLER)
    try:
        task_id = _start_conversation(
            page, login, labeler, home_screenshot=artifacts / "converse-home-390.png"
        )
        page.wait_for_function(
            "[...document.querySelectorAll('.reply-text')].every(p => p.textContent.length > 40)"
        )
        page.fill("#next-turn", "Typed before the reload.")
        # On a phone the panes stack: one above the other, none wider than the screen.
        boxes = [page.locator(f".reply-pane[data-slot='{n}']").bounding_box() for n in (0, 1)]
        assert boxes[0]["x"] == boxes[1]["x"] and boxes[1]["y"] >= boxes[0]["y"] + boxes[0]["height"]
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(artifacts / "converse-streaming-390.png"), full_page=True)
        before = _pane_texts(page)

        page.reload()
        page.wait_for_selector("#replies[data-status]")
        after = _pane_texts(page)
        assert all(now.startswith(then) for now, then in zip(after, before, strict=True)), (before, after)
        assert page.input_value("#next-turn") == "Typed before the reload."
        page.wait_for_selector(READY, timeout=60_000)
        # After the reload the text kept growing in the page, piece by piece, until it was done.
        assert _streamed_piece_by_piece(page.evaluate("window.__samples"))
        page.screenshot(path=str(artifacts / "converse-rank-390.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        worker.stop()
        server.stop()
    live = LiveGeneration.objects.get(assignment_id=task_id)
    assert live.status == "done" and live.attempt == 1
    assert all(text.startswith(then.strip()) for text, then in zip(live.texts, before, strict=True))


def test_the_model_server_killed_mid_stream_is_reported_and_a_retry_works(
    page, live_server, login, labeler, converse_project, make_prompts, var_dir, tmp_path, artifacts
):
    port = free_port()
    log = tmp_path / "server.log"
    server = server_process_start(port=port, words=300, delay=0.05, log=log)  # 15 s per reply
    _streaming_project(converse_project, f"http://127.0.0.1:{port}/v1")
    make_prompts(converse_project, 1)
    worker = LiveWorker(var_dir=var_dir, log=tmp_path / "worker.log").start()
    try:
        task_id = _start_conversation(page, login, labeler)
        page.wait_for_function(
            "document.querySelector('.reply-text') && document.querySelector('.reply-text').textContent.length > 20"
        )
        page.fill("#next-turn", "Typed while the model was writing.")
        server.kill()  # SIGKILL: the connections drop mid-answer
        server.wait(timeout=10)

        page.wait_for_selector("#live-problem:not([hidden])", timeout=30_000)
        message = page.inner_text("#live-problem")
        assert "The model server is not answering" in message and "kept" in message
        assert page.locator("#replies").get_attribute("data-status") == "failed"
        assert page.input_value("#next-turn") == "Typed while the model was writing."
        page.screenshot(path=str(artifacts / "converse-backend-stopped.png"), full_page=True)
        page.reload()  # still said plainly, and still typed, after a reload
        page.wait_for_selector("#live-problem:not([hidden])")
        assert page.input_value("#next-turn") == "Typed while the model was writing."

        server = server_process_start(port=port, words=8, delay=0.01, log=log)
        page.click("#retry")
        page.wait_for_selector(READY, timeout=60_000)
        assert page.locator("#live-problem").is_hidden()
        assert page.input_value("#next-turn") == "Typed while the model was writing."
        page.keyboard.press("a")  # side by side (K = 2): A is better
        page.screenshot(path=str(artifacts / "converse-after-retry.png"), full_page=True)
        page.click("#send")
        _next_turn(page, task_id)
    finally:
        worker.stop()
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
    live = LiveGeneration.objects.get(assignment_id=task_id)
    assert (live.status, live.attempt) == ("done", 2)
    ranking = Ranking.objects.get(assignment_id=task_id)
    assert ranking.order == [[live.candidate_ids[0]], [live.candidate_ids[1]]]
    follow = Assignment.objects.get(previous_id=task_id)
    assert follow.prompt.turns[-1] == {"role": "user", "content": "Typed while the model was writing."}


def test_own_opening_and_a_stalled_turn_retried_under_the_content_security_policy(
    chromium, live_server, login, labeler, converse_project, make_prompts, var_dir, settings
):
    """Under the real policy: the home's opening form, the stream (EventSource), a stalled turn and
    its retry, and the side-by-side widget with a keyboard choice. The turn's replies are run here
    as a worker would run them."""
    settings.GENERATION_ALLOWED_HOSTS = ["*", "127.0.0.1"]  # the streaming server is on loopback
    server = StreamingServer(words=30, delay=0.02).start()
    _streaming_project(converse_project, server.url)
    converse_project.converse_own_opening = True
    converse_project.save(update_fields=["converse_own_opening"])
    found: list[str] = []
    try:
        with open_page(chromium, bypass_csp=False, viewport={"width": 1280, "height": 900}) as page:
            page.on(
                "console", lambda m: found.append(m.text) if "Content-Security-Policy" in m.text else None
            )
            page.add_init_script(
                "document.addEventListener('securitypolicyviolation', e => console.error("
                "'Content-Security-Policy violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
            )
            login(page, labeler)
            page.fill("#own-openings textarea", "Write me a haiku about rain.")
            page.click("#own-openings button[type=submit]")
            page.wait_for_url(re.compile(r"/tasks/\d+/$"))
            page.wait_for_selector("#replies[data-status=queued]")
            # No worker took the turn for a minute (none is running here): the page says so.
            LiveGeneration.objects.update(updated_at=timezone.now() - timedelta(minutes=1))
            page.wait_for_selector("#replies[data-status=stalled] #live-problem:not([hidden])")
            assert "its worker may have stopped" in page.inner_text("#live-error")
            page.click("#retry")
            page.wait_for_selector("#replies[data-status=queued]")
            live = LiveGeneration.objects.get()
            assert live.attempt == 2
            assert live_generation_run(live_id=live.pk, attempt=live.attempt) == "done"
            page.wait_for_selector(READY)
            page.keyboard.press("b")  # B is better
            page.click("#end")
            page.wait_for_url(re.compile(r"/\?conversation=ended$"))
            page.wait_for_load_state("networkidle")
    finally:
        server.stop()
    assert not found, found
    assert Ranking.objects.get().prompt.opened_by == labeler
