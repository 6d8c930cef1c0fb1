"""Dates as SIS exports write them, read into the one spelling programs.txt uses."""

from __future__ import annotations

from datetime import date

import pytest

from programs_bridge.convert.dates import DateOrder, DateParser, DateResult, parse_date


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1/5/2024", "01/05/2024"),
        ("01/05/2024", "01/05/2024"),
        ("12/31/2024", "12/31/2024"),
        ("1/5/24", "01/05/2024"),
        ("1-5-2024", "01/05/2024"),
        ("2024-01-05", "01/05/2024"),
        ("2024/1/5", "01/05/2024"),
        ("2003-11-11T00:00:00", "11/11/2003"),
        ("2003-11-11T00:00:00.123", "11/11/2003"),
        ("2003-11-11T00:00:00Z", "11/11/2003"),
        ("2003-11-11T23:30:00-05:00", "11/11/2003"),
        ("2003-11-11 00:00:00", "11/11/2003"),
        ("01-JAN-2024", "01/01/2024"),
        ("1-Jan-24", "01/01/2024"),
        ("01-jan-24", "01/01/2024"),
        ("15-September-2024", "09/15/2024"),
        ("05-JAN-24 12.00.00.000000 AM", "01/05/2024"),
        ("20240105", "01/05/2024"),
        ("1/5/2024 12:00:00 AM", "01/05/2024"),
        ("1/5/2024 3:45 PM", "01/05/2024"),
        ("  1/5/2024\t", "01/05/2024"),
    ],
)
def test_every_accepted_form_becomes_zero_padded_mm_dd_yyyy(raw: str, expected: str) -> None:
    result = parse_date(raw)
    assert result.text == expected
    assert result.code is None and result.message is None
    assert result.day is not None and f"{result.day:%m/%d/%Y}" == expected


@pytest.mark.parametrize("raw", ["", "   ", "\t"])
def test_an_empty_value_is_empty_not_an_error(raw: str) -> None:
    assert parse_date(raw) == DateResult("", None, None, None)


@pytest.mark.parametrize(
    ("raw", "order", "expected"),
    [
        ("03/04/2025", DateOrder.MDY, date(2025, 3, 4)),
        ("03/04/2025", DateOrder.DMY, date(2025, 4, 3)),
        ("03/04/2025", DateOrder.YMD, date(2025, 3, 4)),
        ("03.04.2025", DateOrder.DMY, date(2025, 4, 3)),
        ("03/04/25", DateOrder.MDY, date(2025, 3, 4)),
        ("03/04/25", DateOrder.DMY, date(2025, 4, 3)),
        ("25/03/04", DateOrder.YMD, date(2025, 3, 4)),
        # A leading four-digit year and a month name fix the reading whatever the order.
        ("2025-03-04", DateOrder.DMY, date(2025, 3, 4)),
        ("04-MAR-2025", DateOrder.MDY, date(2025, 3, 4)),
        ("20250304", DateOrder.DMY, date(2025, 3, 4)),
    ],
)
def test_the_date_order_decides_only_ambiguous_numeric_forms(raw: str, order: DateOrder, expected: date) -> None:
    assert parse_date(raw, order).day == expected


def test_a_two_digit_year_form_that_does_not_fit_year_first_is_rejected_under_ymd() -> None:
    assert parse_date("1/5/24", DateOrder.YMD).code == "bad_date"


@pytest.mark.parametrize(
    ("raw", "year"),
    [("1/1/00", 2000), ("1/1/69", 2069), ("1/1/70", 1970), ("1/1/99", 1999), ("01-JAN-69", 2069)],
)
def test_two_digit_years_pivot_at_70(raw: str, year: int) -> None:
    result = parse_date(raw)
    assert result.day is not None and result.day.year == year


@pytest.mark.parametrize(
    "raw", ["02/30/2024", "2/29/2023", "04/31/2024", "1/0/2024", "2024-13-45", "31-FEB-2024", "0000-01-01"]
)
def test_a_date_that_is_not_on_the_calendar_is_impossible_and_names_neither_value_nor_month(raw: str) -> None:
    """The year and month would narrow a birth date down, so the message says only what to do."""
    result = parse_date(raw)
    assert result[:3] == ("", None, "impossible_date")
    assert result.message == "The value is not a calendar date: correct it in the SIS and re-export"


def test_an_impossible_date_that_fits_the_other_order_says_to_change_the_order() -> None:
    us = parse_date("13/01/2024", DateOrder.MDY)
    assert us.code == "impossible_date"
    assert us.message is not None and "set the date order to DMY" in us.message
    european = parse_date("01/13/2024", DateOrder.DMY)
    assert european.message is not None and "set the date order to MDY" in european.message
    assert "date order" not in (parse_date("02/30/2024").message or "")


def test_leap_days_follow_the_gregorian_rules() -> None:
    assert parse_date("2/29/2024").text == "02/29/2024"
    assert parse_date("2/29/2000").text == "02/29/2000"
    assert parse_date("2/29/1900").code == "impossible_date"
    assert parse_date("2100-02-29").code == "impossible_date"


@pytest.mark.parametrize(
    "raw",
    ["N/A", "yesterday", "1/5-2024", "1//2024", "2024-01-05 later", "01-FOO-2024", "123", "12345678", "5"],
)
def test_values_that_are_not_dates_are_bad_dates(raw: str) -> None:
    result = parse_date(raw)
    assert result[:3] == ("", None, "bad_date")
    assert result.message is not None and "MM/DD/YYYY" in result.message


def test_a_bad_date_message_describes_the_value_and_says_what_to_send() -> None:
    assert parse_date("N/A").message == (
        "The value is not a date: send dates as MM/DD/YYYY or YYYYMMDD (for example 08/05/2014 or 20140805), "
        "or leave the field empty"
    )
    assert (parse_date("123456").message or "").startswith("A 6-digit number is not a date")
    assert (parse_date("12345678").message or "").startswith("An 8-digit number is not a date")


def test_a_year_9999_end_date_says_how_to_read_it_as_still_open() -> None:
    """CALPADS-style YYYYMMDD is read for 1900-2099; 99991231 is the "no end yet" some systems write."""
    message = parse_date("99991231").message or ""
    assert "year 9999" in message and "open_end_dates under [dates]" in message
    assert DateParser(open_sentinels=["99991231"]).parse_end("99991231").code is None


@pytest.mark.parametrize("raw", ["Garcia", "Mary Ann", "00123456", "9876543", "1/5/2024 Lopez"])
def test_a_value_that_may_be_a_name_or_student_id_is_never_quoted(raw: str) -> None:
    message = parse_date(raw).message
    assert message is not None
    assert raw not in message and raw.split()[-1] not in message


def test_an_eight_digit_impossible_date_is_not_quoted_as_it_may_be_a_student_id() -> None:
    result = parse_date("20231399")
    assert result.code == "impossible_date"
    assert result.message is not None and "20231399" not in result.message
    assert result.message.startswith("The value is not a calendar date")


def test_an_excel_serial_number_is_reported_with_the_date_it_means() -> None:
    """The day is kept for the caller (``day``), never put in the message: it may be a birth date."""
    result = parse_date("41856")
    assert result == DateResult(
        "",
        date(2014, 8, 5),
        "excel_serial_date",
        "The value is an Excel serial number, not a date: the file was opened and saved "
        "in Excel; re-export it from the SIS or format the column as a date before saving",
    )


@pytest.mark.parametrize(
    ("raw", "meant"),
    [("41856.0", date(2014, 8, 5)), ("45658", date(2025, 1, 1)), ("10959", date(1930, 1, 1))],
)
def test_excel_serials_follow_the_1900_date_system(raw: str, meant: date) -> None:
    result = parse_date(raw)
    assert (result.code, result.day) == ("excel_serial_date", meant)


@pytest.mark.parametrize("raw", ["10958", "99999", "-41856"])
def test_numbers_outside_the_plausible_serial_range_are_not_taken_for_dates(raw: str) -> None:
    assert parse_date(raw).code == "bad_date"


@pytest.mark.parametrize(
    ("raw", "code"),
    [("41856", "excel_serial_date"), ("02/30/2010", "impossible_date"), ("1/5-2010", "bad_date")],
)
def test_no_value_or_date_appears_in_a_message(raw: str, code: str) -> None:
    """Birth dates are personal: the parser must not echo them, nor the year or day they mean."""
    result = parse_date(raw)
    assert result.code == code
    assert result.message is not None and result.message.startswith("The value ")
    assert raw not in result.message and "2010" not in result.message and "it means" not in result.message


@pytest.mark.parametrize(
    "raw",
    ["1/1/1900", "01/01/1900", "1900-01-01", "1900-01-01T00:00:00", "01-JAN-1900", "1-jan-1900", "19000101"],
)
def test_parse_end_reads_every_spelling_of_1_1_1900_as_still_open(raw: str) -> None:
    parser = DateParser()
    assert parser.parse_end(raw) == DateResult("", None, None, None)
    assert parser.parse(raw).text == "01/01/1900"


def test_parse_end_keeps_real_end_dates_and_problems() -> None:
    parser = DateParser()
    assert parser.parse_end("6/30/2025").text == "06/30/2025"
    assert parser.parse_end("1/2/1900").text == "01/02/1900"
    assert parser.parse_end("N/A").code == "bad_date"
    assert parser.parse_end("").text == ""


def test_configured_sentinels_may_be_dates_in_any_spelling_or_words() -> None:
    parser = DateParser(open_sentinels=("12/31/2099", "NULL"))
    assert parser.parse_end("2099-12-31").text == ""
    assert parser.parse_end(" null ").text == ""
    assert parser.parse_end("1/1/1900").text == "01/01/1900"
    assert parser.parse("NULL").code == "bad_date"


def test_the_parser_uses_its_date_order() -> None:
    assert DateParser(DateOrder.DMY).parse("03/04/2025").day == date(2025, 4, 3)


def test_a_cache_hit_returns_the_same_result() -> None:
    parser = DateParser()
    first = parser.parse("1/5/2024")
    assert parser.parse("1/5/2024") is first
    assert parser.parse_end("1/5/2024") is parser.parse_end("1/5/2024")


def test_the_cache_is_cleared_when_full_and_results_stay_right() -> None:
    parser = DateParser(cache_size=2)
    first = parser.parse("1/5/2024")
    parser.parse("1/6/2024")
    parser.parse("1/7/2024")  # the cache was full: it starts again
    again = parser.parse("1/5/2024")
    assert again == first
    assert again is not first
