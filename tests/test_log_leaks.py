"""The suite-wide check for student data in logs (tests/conftest.py) catches a planted leak, wherever our
code can put one, and does not mistake what ``logging`` itself fills in for one."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from support.log_leaks import LeakWatch, leaked

STUDENT_ID = "918273645"
NAME = "Quillfeather"
BIRTH_DATE = "03/04/2012"


@pytest.fixture
def watch() -> Iterator[tuple[logging.Logger, LeakWatch]]:
    log = logging.getLogger("programs_bridge.test_log_leaks")
    handler = LeakWatch()
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False  # the planted leaks must not reach the suite-wide check itself
    try:
        yield log, handler
    finally:
        log.removeHandler(handler)


def test_a_leak_in_the_message_its_arguments_its_extra_fields_or_an_exception_is_caught(
    watch: tuple[logging.Logger, LeakWatch],
) -> None:
    log, handler = watch
    log.warning("row for %s rejected", STUDENT_ID)
    log.info("converted", extra={"student": {"last": NAME}})
    try:
        raise ValueError(f"bad birth date {BIRTH_DATE}.")
    except ValueError:
        log.exception("conversion failed")
    assert len(handler.texts) == 3
    assert leaked(handler.texts[:1], [STUDENT_ID]) == [STUDENT_ID]
    assert leaked(handler.texts[1:2], [NAME]) == [NAME]
    assert leaked(handler.texts[2:], [BIRTH_DATE]) == [BIRTH_DATE]


def test_what_logging_fills_in_itself_is_not_searched(watch: tuple[logging.Logger, LeakWatch]) -> None:
    log, handler = watch
    record = log.makeRecord(log.name, logging.INFO, __file__, 645, "run finished", (), None)
    record.msecs, record.thread, record.process = 645.0, 918273645, 918273645  # a 3-digit ID's collision
    handler.handle(record)
    assert leaked(handler.texts, ["645", STUDENT_ID]) == []


def test_values_match_as_whole_tokens_only() -> None:
    assert leaked(["seconds 1.24443, bytes 124443, path /tmp/24443-x"], ["24443"]) == []
    assert leaked(["ID 24443.", "(24443)", '"24443"'], ["24443"]) == ["24443"]
