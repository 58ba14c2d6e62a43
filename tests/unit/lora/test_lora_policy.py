"""The adapters loop's pure parts: what an engine lists, what to load and unload, when to try again."""

from __future__ import annotations

import pytest

from inference_operator.policies.adapters import (
    RETRY_MOST,
    Failure,
    already_loaded,
    backoff,
    engine_reason,
    failed,
    loaded_adapters,
    plan,
)

DESIRED = {"sql": "/mnt/adapters/a/sql", "chat": "/mnt/adapters/a/chat"}


def test_an_engine_lists_its_adapters_with_their_parent():
    answer = {"object": "list", "data": [{"id": "llama", "parent": None}, {"id": "sql", "parent": "llama"},
                                         {"id": "x", "parent": "another-base"}]}
    assert loaded_adapters(answer, "llama") == {"sql"}


@pytest.mark.parametrize("answer", [None, [], "text", {"data": "x"}, {"nodata": []}])
def test_an_answer_not_in_the_list_shape_is_no_listing(answer):
    assert loaded_adapters(answer, "llama") is None


def test_hostile_entries_are_skipped():
    answer = {"data": [1, "s", {"id": 5, "parent": "llama"}, {"id": "x" * 1000, "parent": "llama"},
                       {"id": "", "parent": "llama"}, {"id": "ok", "parent": "llama"}] + [{}] * 5000}
    assert loaded_adapters(answer, "llama") == {"ok"}


def test_a_fresh_replica_gets_every_adapter_in_spec_order():
    assert plan(DESIRED, frozenset(), {}, 0.0).loads == (("sql", DESIRED["sql"]), ("chat", DESIRED["chat"]))


def test_a_replica_holding_everything_needs_nothing():
    assert not plan(DESIRED, frozenset(DESIRED), {}, 0.0)


def test_what_the_spec_no_longer_names_is_unloaded():
    todo = plan({"sql": "/p"}, frozenset({"sql", "old", "older"}), {}, 0.0)
    assert todo.unloads == ("old", "older") and todo.loads == ()


def test_a_failed_load_waits_for_its_backoff():
    failure = Failure("refused", 1, retry_at=10.0)
    assert plan(DESIRED, frozenset(), {"sql": failure}, 9.0).loads == (("chat", DESIRED["chat"]),)
    assert ("sql", DESIRED["sql"]) in plan(DESIRED, frozenset(), {"sql": failure}, 10.0).loads


def test_backoff_doubles_up_to_its_most():
    assert [backoff(n) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert backoff(50) == RETRY_MOST
    first = failed(None, "no files", 100.0)
    second = failed(first, "no files", 200.0)
    assert (first.attempts, first.retry_at, second.attempts, second.retry_at) == (1, 105.0, 2, 210.0)
    assert len(failed(None, "x" * 10000, 0.0).reason) <= 512


def test_the_engines_answers_are_read():
    assert already_loaded(400, "The lora adapter 'sql' has already been loaded.")
    assert not already_loaded(400, "No adapter found")
    assert engine_reason(400, '{"object": "error", "message": "No adapter found for /x"}') == \
        "the engine refused to load it (400): No adapter found for /x"
    assert engine_reason(404, '{"error": {"message": "no route"}}').endswith("(404): no route")
    assert engine_reason(500, "<html>oops</html>").endswith("(500): <html>oops</html>")
