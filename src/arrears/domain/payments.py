"""Allocating payments to invoices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal


@dataclass(frozen=True)
class OpenItem:
    id: str
    due: date
    issued_at: datetime
    balance: Decimal


def oldest_first(items: Sequence[OpenItem]) -> list[OpenItem]:
    """SPEC order: by due date, then issue instant, then id."""
    return sorted(items, key=lambda i: (i.due, i.issued_at, i.id))


def allocate(
    amount: Decimal, items: Sequence[OpenItem], first: Sequence[str] = ()
) -> list[tuple[str, Decimal]]:
    """Split `amount` over open items: the named ones first, in order, then oldest first.

    Returns (item id, amount) pairs; whatever is left over stays unallocated.
    """
    by_id = {i.id: i for i in items}
    named = list(dict.fromkeys(x for x in first if x in by_id))  # each invoice once, in order
    order = [by_id[x] for x in named]
    order += [i for i in oldest_first(items) if i.id not in set(named)]
    left = amount
    out: list[tuple[str, Decimal]] = []
    for item in order:
        if left <= 0:
            break
        part = min(left, item.balance)
        if part > 0:
            out.append((item.id, part))
            left -= part
    return out
