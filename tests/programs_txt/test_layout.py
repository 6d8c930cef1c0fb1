import pytest

from programs_bridge.programs_txt.layout import LEGACY, STANDARD, custom_layout, record_key


def test_the_standard_header_numbers_labels_by_position() -> None:
    assert STANDARD.header[0] == "01 Import Student ID"
    assert STANDARD.header[14] == "15 Site ID"
    assert LEGACY.header[-1] == "12 Academic Year"


def test_a_custom_order_numbers_its_own_positions() -> None:
    layout = custom_layout(["program_id", "import_student_id", "last_name", "first_name", "birth_date",
                            "program_start_date"])  # fmt: skip
    assert layout.header[:2] == ["01 Program ID", "02 Import Student ID"]


def test_a_custom_layout_without_a_required_column_names_it() -> None:
    with pytest.raises(ValueError, match=r"leaves out required column\(s\): birth_date"):
        custom_layout(["import_student_id", "last_name", "first_name", "program_id", "program_start_date"])


def test_an_unknown_column_name_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown column name\(s\) program;"):
        custom_layout(["import_student_id", "program"])


def test_eligibility_start_stands_in_for_an_empty_program_start_in_the_key() -> None:
    row = ["004521", "", "Lee", "Ann", "", "03/04/2012", "144", "08/01/2025", "", "", "", "", "", "", ""]
    assert record_key(row, STANDARD) == ("004521", "144", "08/01/2025", "")
    assert record_key(row[:12], LEGACY) == ("004521", "144", "08/01/2025", "")
