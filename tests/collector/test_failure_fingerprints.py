"""Failure fingerprints (event_collector/failures.py): pure, no services."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from event_collector.failures import (
    _HAS_DIGIT,
    _IN_WORD,
    FINGERPRINT_PATTERN,
    UNKNOWN_TYPE,
    _mask,
    _masked_word,
    exception_type,
    failure_of,
    normalise_message,
)


def test_the_same_message_with_different_ids_is_one_fingerprint() -> None:
    a = failure_of("KeyError('invoice 4711 of 2f1e0c52-9a43-4b6e-8d43-1c2b3a4d5e6f missing')")
    b = failure_of("KeyError('invoice 88 of 7d9b8f2e-0000-4c1d-9e8f-aaaaaaaaaaaa missing')")
    assert a.fingerprint == b.fingerprint
    assert a.message == "invoice <num> of <uuid> missing"


def test_a_different_exception_type_is_another_fingerprint() -> None:
    assert failure_of("KeyError('x 1')").fingerprint != failure_of("ValueError('x 1')").fingerprint


def test_a_different_message_is_another_fingerprint() -> None:
    assert failure_of("ValueError('no such user')") != failure_of("ValueError('no such bill')")


def test_quoted_strings_inside_the_message_are_masked() -> None:
    assert normalise_message("no user 'bob' in \"eu-1\"") == "no user <str> in <str>"


def test_hex_addresses_and_hashes_are_masked() -> None:
    assert normalise_message("object at 0x7f3a2b1c dead beef deadbeef12") == (
        "object at <hex> dead beef <hex>"
    )


def test_numbers_and_decimals_are_masked() -> None:
    assert normalise_message("took 3.25s over 30 tries") == "took <num>s over <num> tries"


def test_several_arguments_are_joined_unquoted() -> None:
    assert failure_of("OSError(2, 'No such file')").message == "<num>, No such file"


def test_an_object_repr_argument_is_masked_as_text() -> None:
    f = failure_of("RuntimeError(<Conn object at 0xdeadbeef>)")
    assert f.exception_type == "RuntimeError"
    assert f.message == "<Conn object at <hex>>"


def test_type_is_read_from_repr_dotted_name_and_colon_form() -> None:
    assert exception_type("ValueError('boom')") == "ValueError"
    assert exception_type("celery.exceptions.TimeLimitExceeded(60)") == (
        "celery.exceptions.TimeLimitExceeded"
    )
    assert exception_type("ZeroDivisionError: division by zero") == "ZeroDivisionError"
    assert exception_type("something odd happened") == UNKNOWN_TYPE


def test_fingerprint_is_sixteen_hex_characters() -> None:
    assert re.match(FINGERPRINT_PATTERN, failure_of("ValueError()").fingerprint)


@given(
    st.one_of(
        st.integers(0, 10**40).map(str),
        st.integers(0, 10**12).map(lambda n: str(n).zfill(8)),
        st.uuids().map(str),
        st.uuids().map(lambda u: str(u).upper()),
        st.uuids().map(lambda u: u.hex),
        st.text("0123456789abcdefxX-+.e:()_", min_size=1, max_size=40),
    )
)
def test_the_fast_paths_for_id_words_mask_as_the_regex_does(word: str) -> None:
    """_masked_word skips the regex for all-digit words and canonical UUIDs: same result."""
    if _HAS_DIGIT(word):
        assert _masked_word(word) == _IN_WORD.sub(_mask, word)
