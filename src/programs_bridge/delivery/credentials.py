"""SFTP credentials: read from AWS Secrets Manager, held in memory as secrets, never logged or saved.

The secret is JSON::

    {"username": "district-123",
     "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\\n...",   # or a PEM key; optional
     "passphrase": "...",                                        # only for an encrypted key
     "password": "..."}                                          # instead of (or as well as) a key

Values are wrapped in :class:`pydantic.SecretStr`, so ``repr``, ``str`` and validation errors print
``**********`` instead of them.  Powertools Parameters caches the secret for ``max_age`` seconds, so a
warm Lambda does not call Secrets Manager for every delivery, and rotation is still seen within
minutes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from programs_bridge.delivery.errors import DeliveryConfigError

#: How long a fetched secret is reused (seconds): short enough that rotation takes effect quickly.
DEFAULT_MAX_AGE = 300


class SftpCredentials(BaseModel):
    """Who we log in as and how: a private key (optionally encrypted), a password, or both."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    username: str = Field(min_length=1)
    private_key: SecretStr | None = None
    passphrase: SecretStr | None = None
    password: SecretStr | None = None

    @model_validator(mode="after")
    def _needs_a_credential(self) -> SftpCredentials:
        if self.private_key is None and self.password is None:
            raise ValueError("needs a private_key or a password")
        if self.passphrase is not None and self.private_key is None:
            raise ValueError("has a passphrase but no private_key")
        return self


def parse_credentials(data: Any) -> SftpCredentials:
    """Validate a decoded secret; errors name the offending fields, never their values."""
    try:
        return SftpCredentials.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'secret'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise DeliveryConfigError(f"the SFTP secret is not usable ({problems})") from None


def load_credentials(secret_id: str, *, max_age: int = DEFAULT_MAX_AGE) -> SftpCredentials:
    """Fetch and validate the feed's secret through Powertools Parameters (cached for ``max_age``)."""
    # Imported here: only functions that deliver pay for the Parameters utility.
    from aws_lambda_powertools.utilities.parameters import get_secret
    from aws_lambda_powertools.utilities.parameters.exceptions import (
        GetParameterError,
        TransformParameterError,
    )

    try:
        data = get_secret(secret_id, transform="json", max_age=max_age)
    except TransformParameterError:
        raise DeliveryConfigError(f"the SFTP secret {secret_id!r} is not a JSON object") from None
    except GetParameterError as exc:
        # The cause names the secret and the AWS error code, never the value.
        raise DeliveryConfigError(f"cannot read the SFTP secret {secret_id!r}: {exc}") from None
    return parse_credentials(data)
