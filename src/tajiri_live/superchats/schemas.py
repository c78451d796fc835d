"""Super chat bodies: the REST form of the fuller spec and the client's socket message."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tajiri_live.core.text import Text

MIN_TZS = 1000  # the low tier's floor: less is refused


MAX_AMOUNT_TZS = 10**12
# Longer text is no amount anyone means; and a huge exponent ("1e600000") would make the
# conversion to an integer take seconds of the event loop, so both are refused first.
MAX_AMOUNT_CHARS = 40


def whole_tzs(value: Any) -> int:
    """An amount in TZS as the client sends it (a double such as 1000.0, an int, or a form
    string), as a whole number; NaN, infinities, fractions and non-numbers are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("The amount must be a number.")
    text = str(value).strip()
    if len(text) > MAX_AMOUNT_CHARS:
        raise ValueError("The amount must be a number of at most 40 characters.")
    if "_" in text:  # Python's digit grouping ("1_000") is no number a client sends
        raise ValueError("The amount must be a number.")
    try:
        number = Decimal(text)
    except InvalidOperation as error:
        raise ValueError("The amount must be a number.") from error
    if not number.is_finite():
        raise ValueError("The amount must be a finite number.")
    if number.adjusted() > len(str(MAX_AMOUNT_TZS)):  # checked exactly by the field's limit
        raise ValueError(f"The amount may not be greater than {MAX_AMOUNT_TZS}.")
    if number != number.to_integral_value():
        raise ValueError("The amount must be a whole number of TZS.")
    if number < MIN_TZS:
        raise ValueError(f"The amount must be at least {MIN_TZS} TZS.")
    return int(number)


class SuperChatCreate(BaseModel):
    """`message` and `amount` (TZS; its upper limit is a setting, checked by the service);
    `payment_method` and `payment_reference` are recorded as sent (coins always pay)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    message: Text = Field(min_length=1, max_length=5000)
    # The setting `SUPER_CHAT_MAX_TZS` is the real ceiling; this one keeps any setting's
    # amount, times `COINS_PER_TZS`, within the ledger's 64-bit columns.
    amount: int = Field(le=MAX_AMOUNT_TZS)
    payment_method: Text | None = Field(default=None, max_length=50)
    payment_reference: Text | None = Field(default=None, max_length=100)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, value: Any) -> int:
        return whole_tzs(value)
