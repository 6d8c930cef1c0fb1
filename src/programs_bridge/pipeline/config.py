"""A feed's settings, read from ``config/<feed>.toml`` in the bucket and validated before any work starts.

An invalid config fails the run with every problem named by its dotted path (``sftp.known_hosts``), raises
the ConfigErrors alarm, and leaves the export where it was, so fixing the config and re-dropping (or
re-driving the queue) is all it takes.  Secrets never live here: the config names the Secrets Manager secret.
"""

from __future__ import annotations

import tomllib
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic import Field as Setting
from pydantic_core import PydanticCustomError

from programs_bridge.convert.codetable import CodeTable
from programs_bridge.convert.engine import DEFAULT_MAX_REJECT_SHARE, ConvertOptions
from programs_bridge.convert.mapping import Mapping, problem_line
from programs_bridge.convert.profiles import PROFILES
from programs_bridge.convert.reader import ReadLimits
from programs_bridge.delivery.retry import RetryPolicy
from programs_bridge.delivery.sftp import SftpTarget, Timeouts
from programs_bridge.ledger.model import ExportKind, Policy
from programs_bridge.ledger.shrink import DEFAULT_MAX_MISSING_SHARE, DEFAULT_MIN_MISSING, ShrinkRule
from programs_bridge.programs_txt.layout import LAYOUTS, Layout, custom_layout
from programs_bridge.programs_txt.render import OutputFormat


class ConfigError(Exception):
    """The feed's configuration cannot be used; the message names every problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SftpSettings(_Strict):
    host: str = Setting(min_length=1)
    port: Annotated[int, Setting(ge=1, le=65535)] = 22
    remote_dir: str = "."
    remote_name: str = "programs.txt"
    temp_rename: bool = True
    """Upload to a temporary name and rename (off only for servers that refuse renames)."""
    secret: str = Setting(min_length=1)
    """Secrets Manager secret (JSON: username, private_key or password, optional passphrase)."""
    known_hosts: tuple[str, ...] = Setting(min_length=1)
    """Pinned host key(s), as known_hosts lines: an unknown key aborts before any credential is sent."""
    attempts: Annotated[int, Setting(ge=1, le=10)] = 5
    """Connection attempts for transient failures (refused, reset, timeout), with capped backoff."""
    retry_base_seconds: Annotated[float, Setting(ge=0, le=60, allow_inf_nan=False)] = 1.0
    timeouts: Timeouts = Setting(default_factory=Timeouts)
    """``[sftp.timeouts]``: seconds for each phase of one attempt (docs/delivery.md).  Under the Lambda's
    time budget every one is cut further to the time left, so none can outlast the function."""


class ShrinkGuardSettings(_Strict):
    """``[shrink_guard]``: hold a full export that leaves out far more open records than the last one did
    (``ledger/shrink.py``; docs/ledger.md, "The shrink guard")."""

    enabled: bool = True
    max_missing_share: Annotated[float, Setting(gt=0, le=1, allow_inf_nan=False)] = DEFAULT_MAX_MISSING_SHARE
    """Hold above this share (strictly) of the open records the last delivered export listed ..."""
    min_missing: Annotated[int, Setting(ge=0)] = DEFAULT_MIN_MISSING
    """... and only when more records than this are left out (strictly): a small feed is never held."""

    def rule(self) -> ShrinkRule:
        return ShrinkRule(self.enabled, self.max_missing_share, self.min_missing)


class FeedConfig(_Strict):
    profile: str | None = None
    """A built-in profile by name (``convert.profiles.PROFILES``); a headerless export needs one, or a mapping."""
    mapping: Mapping | None = None
    """An inline mapping (the same settings as a --mapping file); leave out for a profile or detection."""
    code_table: str | None = None
    """Key of the code table CSV in the bucket, relative to ``config/``."""
    export: ExportKind = ExportKind.FULL
    duplicate_policy: Policy = Policy.HOLD
    unseeded: Literal["hold", "send"] = "hold"
    """What the first export of a feed whose ledger was never seeded nor committed to does: ``hold`` (the
    default: Illuminate may already hold years of records the ledger cannot check against; seed first) or
    ``send`` (Illuminate holds nothing for this feed yet: a new district)."""
    max_reject_share: Annotated[float, Setting(ge=0, le=1, allow_inf_nan=False)] = DEFAULT_MAX_REJECT_SHARE
    layout: Literal["standard", "legacy"] = "standard"
    columns: tuple[str, ...] | None = None
    line_ending: Literal["lf", "crlf"] = "lf"
    header: bool = True
    limits: ReadLimits = Setting(default_factory=ReadLimits)
    """``[limits]``: how large a file, a line, a value and a header may be (README: What it reads)."""
    shrink_guard: ShrinkGuardSettings = Setting(default_factory=ShrinkGuardSettings)
    """``[shrink_guard]``: whether a full export that leaves out far more open records than usual is held."""
    sftp: SftpSettings

    @field_validator("limits", mode="before")
    @classmethod
    def _whole_limits(cls, given: object) -> object:
        """A limit is a number as written: pydantic's lax mode would read ``true`` as 1 and ``"5"`` as 5, and a
        feed whose every file is then refused for 11 columns is worse than a config error.  A whole number in
        TOML's float form (``4e9``) is that number."""
        if not isinstance(given, dict):
            return given
        limits = dict(given)
        for name, value in given.items():
            if isinstance(value, float) and value.is_integer():
                limits[name] = int(value)
            elif isinstance(value, bool) or not isinstance(value, int):
                raise PydanticCustomError(
                    "limit_not_whole", "{name} must be a whole number, not text, true/false or a fraction",
                    {"name": name},
                )  # fmt: skip
        return limits

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, name: str | None) -> str | None:
        if name is not None and name not in PROFILES:
            raise PydanticCustomError(
                "unknown_profile",
                "unknown profile '{name}'; use one of: {known}",
                {"name": name, "known": ", ".join(PROFILES)},
            )
        return name

    @model_validator(mode="after")
    def _one_source(self) -> FeedConfig:
        if self.profile and self.mapping:
            raise ValueError("give either profile or mapping, not both")
        if self.columns is not None:
            if "layout" in self.model_fields_set:  # the CLI refuses --layout with --columns alike
                raise ValueError("give either layout or columns (a layout of your own), not both")
            custom_layout(self.columns)  # raises ValueError naming the bad column
        return self

    @field_validator("columns", mode="before")
    @classmethod
    def _a_list(cls, given: object) -> object:
        """``[columns]`` as a table is a mapping's, mistaken for the output layout's list."""
        if isinstance(given, dict):
            raise PydanticCustomError(
                "columns_table",
                'columns here is programs.txt\'s own column order, a list (columns = ["import_student_id", ...]); '
                "the export's columns, as in a mapping file, go under [mapping.columns]",
            )
        return given

    @property
    def output_layout(self) -> Layout:
        return custom_layout(self.columns) if self.columns else LAYOUTS[self.layout]

    def convert_options(self, code_table: CodeTable | None, today: date) -> ConvertOptions:
        return ConvertOptions(
            output=OutputFormat(self.output_layout, self.header, "\r\n" if self.line_ending == "crlf" else "\n"),
            mapping=self.mapping or (PROFILES[self.profile] if self.profile else None),
            code_table=code_table,
            max_reject_share=self.max_reject_share,
            delimiter=self.mapping.delimiter if self.mapping else None,
            encoding=self.mapping.encoding if self.mapping else None,
            today=today,
            keep_source_lines=True,
            read_limits=self.limits,
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.sftp.attempts, base_delay=self.sftp.retry_base_seconds)

    def sftp_target(self) -> SftpTarget:
        s = self.sftp
        return SftpTarget(
            host=s.host,
            known_hosts=s.known_hosts,
            port=s.port,
            remote_dir=s.remote_dir,
            remote_name=s.remote_name,
            use_temp_rename=s.temp_rename,
            timeouts=s.timeouts,
        )


def parse_feed_config(text: str, source: str) -> FeedConfig:
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    try:
        return FeedConfig.model_validate(data, context={"profiles": PROFILES})
    except ValidationError as exc:
        problems = "; ".join(
            problem_line(e, whole="config") for e in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigError(f"{source} is not a valid feed configuration: {problems}") from None
