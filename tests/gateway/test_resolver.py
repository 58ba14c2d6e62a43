"""--resolve NAME=ADDRESS answers upstream names without DNS."""

import socket

import pytest

from inference_operator.gateway.resolver import StaticResolver, parse_overrides


async def test_override_answers_without_dns():
    resolver = StaticResolver({"model.test": "127.0.0.1"})
    (answer,) = await resolver.resolve("model.test", 8080)
    assert (answer["host"], answer["port"], answer["family"]) == ("127.0.0.1", 8080, socket.AF_INET)
    await resolver.close()


def test_parse_overrides():
    assert parse_overrides(["a.test=127.0.0.1", "b.test=::1"]) == {"a.test": "127.0.0.1", "b.test": "::1"}
    with pytest.raises(ValueError, match="NAME=ADDRESS"):
        parse_overrides(["nonsense"])
