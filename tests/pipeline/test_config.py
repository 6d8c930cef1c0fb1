"""config/<feed>.toml: what a district writes, and the errors it gets when it is wrong."""

from datetime import date

import pytest

from programs_bridge.ledger.model import ExportKind, Policy
from programs_bridge.pipeline.config import ConfigError, parse_feed_config
from programs_bridge.programs_txt.layout import LEGACY, Field

SFTP = """
[sftp]
host = "sftp.illuminate.example"
secret = "programs-bridge/district/sftp"
known_hosts = ["sftp.illuminate.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"]
"""


def test_a_minimal_config_detects_the_profile_and_holds_duplicate_risks() -> None:
    config = parse_feed_config(SFTP, "config/district.toml")
    assert config.export is ExportKind.FULL and config.duplicate_policy is Policy.HOLD
    options = config.convert_options(None, date(2026, 9, 1))
    assert options.mapping is None and options.keep_source_lines
    target = config.sftp_target()
    assert (target.host, target.port, target.remote_name, target.use_temp_rename) == (
        "sftp.illuminate.example", 22, "programs.txt", True,
    )  # fmt: skip


def test_an_inline_mapping_layout_and_line_ending_reach_the_converter() -> None:
    text = (
        'layout = "legacy"\nline_ending = "crlf"\nexport = "delta"\nduplicate_policy = "repair"\n'
        "[mapping]\n[mapping.columns]\nimport_student_id = 'Perm'\nlast_name = 'Last'\nfirst_name = 'First'\n"
        "birth_date = 'Born'\nprogram_id = 'Program'\nprogram_start_date = 'From'\n" + SFTP
    )
    config = parse_feed_config(text, "config/district.toml")
    options = config.convert_options(None, date(2026, 9, 1))
    assert options.output.layout == LEGACY and options.output.newline == "\r\n"
    assert options.mapping is not None and options.mapping.sources(Field.IMPORT_STUDENT_ID) == ("Perm",)
    assert config.export is ExportKind.DELTA and config.duplicate_policy is Policy.REPAIR


def test_read_limits_are_set_per_feed_and_reach_the_converter() -> None:
    config = parse_feed_config("[limits]\nmax_columns = 40\n" + SFTP, "config/district.toml")
    limits = config.convert_options(None, date(2026, 9, 1)).read_limits
    assert (limits.max_columns, limits.max_line_bytes) == (40, 1 << 20)
    # A whole number in TOML's float form is that number; a fraction is not.
    config = parse_feed_config("[limits]\nmax_bytes = 4e9\n" + SFTP, "config/district.toml")
    assert config.limits.max_bytes == 4_000_000_000 and isinstance(config.limits.max_bytes, int)
    with pytest.raises(ConfigError, match="max_bytes must be a whole number, not text, true/false or a fraction"):
        parse_feed_config("[limits]\nmax_bytes = 1.5\n" + SFTP, "config/district.toml")


def test_the_shrink_guard_is_on_by_default_and_a_feed_may_set_or_turn_it_off() -> None:
    default = parse_feed_config(SFTP, "config/district.toml").shrink_guard.rule()
    assert (default.enabled, default.max_missing_share, default.min_missing) == (True, 0.2, 50)
    text = "[shrink_guard]\nmax_missing_share = 0.5\nmin_missing = 10\n" + SFTP
    rule = parse_feed_config(text, "config/district.toml").shrink_guard.rule()
    assert (rule.enabled, rule.max_missing_share, rule.min_missing) == (True, 0.5, 10)
    off = parse_feed_config("[shrink_guard]\nenabled = false\n" + SFTP, "config/district.toml")
    assert not off.shrink_guard.rule().enabled


def test_sftp_timeouts_are_set_per_feed_and_the_others_keep_their_defaults() -> None:
    config = parse_feed_config(SFTP + "[sftp.timeouts]\nconnect = 5\nio = 20.5\n", "config/district.toml")
    timeouts = config.sftp_target().timeouts
    assert (timeouts.connect, timeouts.io, timeouts.handshake) == (5.0, 20.5, 30.0)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (SFTP.replace("host =", "hots ="), "sftp.host: Field required; sftp.hots: unknown setting"),
        (SFTP + 'duplicate_policy = "ignore"', "sftp.duplicate_policy: unknown setting"),
        ('duplicate_policy = "ignore"\n' + SFTP, "duplicate_policy: Input should be 'hold', 'send' or 'repair'"),
        ('profile = "sims"\n' + SFTP, "profile: unknown profile 'sims'; use one of: illuminate, powerschool"),
        ("max_reject_share = 5\n" + SFTP, "max_reject_share: Input should be less than or equal to 1"),
        ("max_reject_share = nan\n" + SFTP, "max_reject_share: Input should be a finite number"),
        ('layout = "legacy"\ncolumns = ["import_student_id"]\n' + SFTP, "give either layout or columns"),
        ("[columns]\nlast_name = 'Surname'\n" + SFTP, "go under [mapping.columns]"),
        ("[mapping.columns]\nsite_id = 5\nlastname = 'x'\n" + SFTP, "mapping.columns.lastname: not a programs.txt"),
        ('columns = ["import_student_id"]\n' + SFTP, "leaves out required column(s)"),
        (
            SFTP.replace('known_hosts = ["sftp.illuminate.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"]', ""),
            "sftp.known_hosts: Field required",
        ),
        ("[sftp\n", "is not valid TOML"),
        (SFTP + "[sftp.timeouts]\nio = 0\n", "sftp.timeouts"),
        (SFTP + "[sftp.timeouts]\nread = 5\n", "sftp.timeouts.read: unknown setting"),
        ("[limits]\nmax_rows = 5\n" + SFTP, "limits.max_rows: unknown setting"),
        ("[limits]\nmax_field_bytes = 10\n" + SFTP, "max_field_bytes must be a whole number from 1,024 to"),
        ("[limits]\nmax_columns = true\n" + SFTP, "limits: max_columns must be a whole number, not text"),
        ('[limits]\nmax_columns = "5"\n' + SFTP, "limits: max_columns must be a whole number, not text"),
        ("[limits]\nmax_field_bytes = 99999999999999999\n" + SFTP, "max_field_bytes must be a whole number from"),
        ("[shrink_guard]\nmax_missing_share = 20\n" + SFTP, "shrink_guard.max_missing_share: Input should be less"),
        ("[shrink_guard]\nmin_missing = -1\n" + SFTP, "shrink_guard.min_missing: Input should be greater"),
        ("[shrink_guard]\nshare = 0.3\n" + SFTP, "shrink_guard.share: unknown setting"),
    ],
)
def test_every_problem_is_named_by_its_path(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_feed_config(text, "config/district.toml")
    assert "config/district.toml" in str(caught.value)
    assert problem in str(caught.value)
    assert "Value error" not in str(caught.value)  # the rule's own sentence, not pydantic's wrapping
