"""Identifiers, timestamps and money in the shapes Korus uses.

- `uuid7` gives RFC 9562 version-7 UUID strings (48-bit Unix milliseconds, then random
  bits), from a given `random.Random` when the result must be reproducible (the seeded
  catalog) or from the process-wide generator otherwise.
- `genid` gives a JSON-LD blank-node id `/.well-known/genid/<hex>`.
- `iso` formats a Unix time as ISO-8601 with a `+00:00` offset and whole seconds,
  rounding DOWN: a displayed `expiresAt` is never later than the real expiry.
- `money` formats a Decimal as a two-decimal string ("40.00").
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

# Runtime ids need uniqueness, not secrecy: a Mersenne Twister seeded from os.urandom is
# thread-safe under the GIL and avoids one urandom syscall per id (tokens use `secrets`).
_RUNTIME_RNG = random.Random()
_CENT = Decimal("0.01")
VAT_RATE = Decimal("1.20")


def uuid7(rng: random.Random | None = None, unix_ms: int | None = None) -> str:
    """A version-7 UUID string. Deterministic when both `rng` and `unix_ms` are given."""
    source = rng if rng is not None else _RUNTIME_RNG
    millis = unix_ms if unix_ms is not None else time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= source.getrandbits(12) << 64  # rand_a
    value |= 0b10 << 62  # RFC 4122/9562 variant
    value |= source.getrandbits(62)  # rand_b
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def genid() -> str:
    """A fresh blank-node id, as Korus gives embedded objects."""
    return f"/.well-known/genid/{_RUNTIME_RNG.getrandbits(80):020x}"


def iso(unix_time: float) -> str:
    """`2025-01-29T08:10:53+00:00` (whole seconds, rounded down)."""
    return datetime.fromtimestamp(int(unix_time), tz=UTC).isoformat()


def money(amount: Decimal) -> str:
    """A Korus money string: two decimals, dot separator."""
    return str(amount.quantize(_CENT, rounding=ROUND_HALF_UP))


def excl_tax(amount_incl_tax: Decimal) -> Decimal:
    """The sandbox applies one VAT rate (20 %) to every product."""
    return (amount_incl_tax / VAT_RATE).quantize(_CENT, rounding=ROUND_HALF_UP)


def random_hex(digits: int) -> str:
    """`digits` random upper-case hex digits (order references, signing secrets)."""
    return f"{_RUNTIME_RNG.getrandbits(digits * 4):0{digits}X}"


def random_digits(digits: int) -> str:
    """`digits` random decimal digits (vouchers)."""
    return "".join(str(_RUNTIME_RNG.randrange(10)) for _ in range(digits))
