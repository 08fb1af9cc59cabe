"""Allocating payments to invoices, oldest first (SPEC §2)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from arrears.domain.payments import OpenItem, allocate, oldest_first

from .strategies import fast, to_cents

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def open_items(draw: st.DrawFn) -> list[OpenItem]:
    n = draw(st.integers(0, 7))
    ids = draw(st.lists(st.sampled_from([f"I{i}" for i in range(12)]), min_size=n, max_size=n, unique=True))
    return [
        OpenItem(
            id,
            date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 3))),  # ties on due dates are common
            T0 + timedelta(hours=draw(st.integers(0, 2))),  # ...and on issue instants
            D(draw(st.integers(0, 50_000))).scaleb(-2),
        )
        for id in ids
    ]


amounts = st.integers(0, 150_000).map(lambda c: D(c).scaleb(-2))


def spec_order(items: list[OpenItem]) -> list[OpenItem]:
    return sorted(items, key=lambda i: (i.due.toordinal(), i.issued_at.timestamp(), i.id))


@given(items=open_items(), amount=amounts)
@fast(200)
def test_allocation_pays_oldest_first_and_never_too_much(items: list[OpenItem], amount: Decimal) -> None:
    out = allocate(amount, items)
    by_id = {i.id: i for i in items}
    total = sum((part for _, part in out), D(0))
    owed = sum((i.balance for i in items if i.balance > 0), D(0))
    assert total == min(amount, owed), "everything that can be allocated is, and no more than the payment"
    assert all(part > 0 and part <= by_id[id].balance for id, part in out)
    assert len({id for id, _ in out}) == len(out), "each invoice at most once"
    # Oldest first (due, then issue instant, then id): the invoices paid are a prefix of
    # that order (skipping those with nothing owing), all fully paid but maybe the last.
    owing = [i for i in spec_order(items) if i.balance > 0]
    assert [id for id, _ in out] == [i.id for i in owing[: len(out)]]
    for id, part in out[:-1]:
        assert part == by_id[id].balance
    assert to_cents(total) == sum(to_cents(p) for _, p in out)


@given(items=open_items(), amount=amounts, data=st.data())
@fast(200)
def test_allocation_to_named_invoices_never_pays_an_invoice_more_than_its_balance(
    items: list[OpenItem], amount: Decimal, data: st.DataObject
) -> None:
    ids = [i.id for i in items] + ["I99"]  # an unknown id is ignored
    first = data.draw(st.lists(st.sampled_from(ids), max_size=4))
    out = allocate(amount, items, first)
    by_id = {i.id: i for i in items}
    paid: dict[str, Decimal] = defaultdict(lambda: D(0))
    for id, part in out:
        paid[id] += part
    assert sum(paid.values(), D(0)) <= amount
    for id, total in paid.items():
        assert total <= by_id[id].balance, (
            f"{id} paid {total} on a balance of {by_id[id].balance} (first={first})"
        )
    # The named ones come first, in the order named.
    named = list(dict.fromkeys(x for x in first if x in by_id and by_id[x].balance > 0))
    assert [id for id, _ in out][: len(named)] == named[: len(out)]


def test_allocate_to_the_same_invoice_named_twice_pays_it_once() -> None:
    """`allocate_to: [I1, I1]` (scenario) or a repeated id from the API: the second mention
    is allocated the full balance again, since `allocate` never lowers what is left on an item
    (payments.py kept duplicates in `order` and never lowered what is left on an item; fixed
    in 2e249b6)."""
    items = [
        OpenItem("I1", date(2026, 1, 1), T0, D("30.00")),
        OpenItem("I2", date(2026, 2, 1), T0, D("50.00")),
    ]
    out = allocate(D("100.00"), items, first=["I1", "I1"])
    assert out == [("I1", D("30.00")), ("I2", D("50.00"))]


def test_oldest_first_breaks_ties_by_issue_instant_then_id() -> None:
    a = OpenItem("B", date(2026, 1, 1), T0 + timedelta(hours=1), D("1"))
    b = OpenItem("A", date(2026, 1, 1), T0 + timedelta(hours=1), D("1"))
    c = OpenItem("Z", date(2026, 1, 1), T0, D("1"))
    d = OpenItem("0", date(2026, 1, 2), T0 - timedelta(days=30), D("1"))
    assert [i.id for i in oldest_first([d, a, b, c])] == ["Z", "A", "B", "0"]


def test_partial_payment_and_leftover() -> None:
    items = [
        OpenItem("I1", date(2026, 1, 1), T0, D("30.00")),
        OpenItem("I2", date(2026, 2, 1), T0, D("50.00")),
    ]
    assert allocate(D("40.00"), items) == [("I1", D("30.00")), ("I2", D("10.00"))]
    assert allocate(D("100.00"), items) == [("I1", D("30.00")), ("I2", D("50.00"))]  # 20.00 stays unallocated
    assert allocate(D("0"), items) == []
    assert allocate(D("40.00"), items, first=["I2"]) == [("I2", D("40.00"))]
