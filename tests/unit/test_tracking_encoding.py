"""The Tracking API's Content-Encoding: a body comes plain or gzip; gzip is inflated
to at most the request limit (a small bomb never fills the memory), and what is
not whole gzip is refused with the reason, in the words the SDK's log shows."""

import gzip
import tracemalloc
import zlib

import pytest

from destinations.services.ingest import InvalidPayload, PayloadTooLarge
from destinations.services.tracking import decompress

LIMIT = 1000


@pytest.mark.parametrize("encoding", ["", "identity", " Identity ", "IDENTITY"])
def test_a_body_without_an_encoding_is_taken_as_sent(encoding):
    # Even when it looks like gzip: only the header says it is.
    body = gzip.compress(b"{}")

    assert decompress(body, encoding, LIMIT) == body


def test_a_gzip_body_of_exactly_the_limit_is_inflated():
    body = b"x" * LIMIT

    assert decompress(gzip.compress(body), " GZip ", LIMIT) == body


def test_a_gzip_body_one_byte_over_the_limit_is_too_large():
    with pytest.raises(PayloadTooLarge) as error:
        decompress(gzip.compress(b"x" * (LIMIT + 1)), "gzip", LIMIT)

    assert str(error.value) == "The request body is larger than 1000 bytes."


def test_a_gzip_bomb_is_never_inflated_beyond_the_limit():
    bomb = gzip.compress(bytes(32 * 2**20))  # 32 MiB of zeros in 32 KiB
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge):
            decompress(bomb, "gzip", LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 2**20


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not gzip at all", "The body is not valid gzip."),
        # zlib's own format (what Content-Encoding: deflate names) is not gzip.
        (zlib.compress(b"{}"), "The body is not valid gzip."),
        (gzip.compress(b'{"batch": []}')[:-12], "The gzip body is cut short."),
    ],
    ids=["garbage", "zlib", "truncated"],
)
def test_a_body_that_is_not_whole_gzip_is_refused_with_the_reason(body, message):
    with pytest.raises(InvalidPayload) as error:
        decompress(body, "gzip", LIMIT)

    assert str(error.value) == message


def test_another_encoding_is_refused_naming_its_first_40_characters():
    with pytest.raises(InvalidPayload) as error:
        decompress(b"{}", "X-" + "z" * 60, LIMIT)

    assert str(error.value) == (
        f"Content-Encoding 'x-{'z' * 38}' is not supported: send gzip or plain JSON."
    )
