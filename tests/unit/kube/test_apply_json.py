"""Server-side apply bodies are parsed as YAML: every string must come back exactly as sent."""

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_operator.kube.client import apply_json

EMOJI = "model \U0001f600 \U0010e3a0 \x85 \x0c \u202e 名前 \\ \" end"


def test_characters_beyond_the_basic_plane_survive_yaml():
    body = {"metadata": {"annotations": {"x": EMOJI}}, "data": [EMOJI, 1, None, True]}
    assert yaml.safe_load(apply_json(body)) == body


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=10),
                       st.text(max_size=30) | st.integers() | st.lists(st.text(max_size=8), max_size=3), max_size=5))
def test_any_text_round_trips(body):
    assert yaml.safe_load(apply_json(body)) == body
