"""Personal data from the owner's chat, found and recognised however the model respells it."""

from __future__ import annotations

import pytest

from crt_loops.heartbeat.private_data import (
    PrivateKind,
    allowed_kinds,
    find_leak,
    find_private,
    luhn_ok,
)

OWNER = (
    "my bank pin is 4821, the card is 4111 1111 1111 1111 and you can call me on "
    "+1 (555) 010-9999 or mail alice.smith@example.org. We moved in 2024."
)


@pytest.fixture(scope="module")
def items() -> frozenset[object]:
    return find_private([OWNER])


def test_the_four_kinds_are_found_in_the_owners_words() -> None:
    found = {(i.kind, i.value) for i in find_private([OWNER])}
    assert found == {
        (PrivateKind.PIN, "4821"),
        (PrivateKind.CARD, "4111111111111111"),
        (PrivateKind.PHONE, "15550109999"),
        (PrivateKind.EMAIL, "alice.smith@example.org"),
    }


def test_a_year_is_a_pin_only_when_the_owner_calls_it_a_code() -> None:
    assert not find_private(["we met in 1987, in Paris"])
    assert {i.value for i in find_private(["the door code is 1987."])} == {"1987"}


def test_dates_versions_and_short_numbers_are_not_personal() -> None:
    assert not find_private(["on 2024-05-01 I ran v1.2.3 for 12 minutes, 3 times"])


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    # 16 digits that fail Luhn are not a card; too long for a phone either.
    assert not find_private(["order 4111 1111 1111 1112"])


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("sure, it is 4821", PrivateKind.PIN),
        ("4 8 2 1", PrivateKind.PIN),
        ("4-8-2-1", PrivateKind.PIN),
        ("four eight two one", PrivateKind.PIN),
        ("\uff14\uff18\uff12\uff11", PrivateKind.PIN),  # fullwidth digits
        ("48\u200b21", PrivateKind.PIN),  # zero-width space
        ("code: 1 4821 9", PrivateKind.PIN),
        ("4111-1111-1111-1111", PrivateKind.CARD),
        ("card 4111 and then 1111 1111 and 1111", PrivateKind.CARD),
        ("ring 555 010 9999", PrivateKind.PHONE),
        ("+15550109999", PrivateKind.PHONE),
        ("ALICE.SMITH@EXAMPLE.ORG", PrivateKind.EMAIL),
        ("alice.smith (at) example (dot) org", PrivateKind.EMAIL),
        ("alice smith at example dot org", PrivateKind.EMAIL),
    ],
)
def test_respelled_values_are_recognised(
    items: frozenset[object], text: str, kind: PrivateKind
) -> None:
    leak = find_leak(text, items)  # type: ignore[arg-type]
    assert leak is not None and leak.kind is kind


@pytest.mark.parametrize(
    "text",
    [
        "I think 2024 was a good year for agents",
        "48210 people read this",
        "a post about cards and phones in general",
        "mail bob@example.org",
    ],
)
def test_other_text_passes(items: frozenset[object], text: str) -> None:
    assert find_leak(text, items) is None  # type: ignore[arg-type]


def test_describe_never_shows_the_value(items: frozenset[object]) -> None:
    leak = find_leak("4821", items)  # type: ignore[arg-type]
    assert leak is not None
    assert "4821" not in leak.describe()


def test_the_opt_in_line_of_heartbeat_md() -> None:
    assert allowed_kinds("## Rules\n- Allow private data: email, phones\n") == {
        PrivateKind.EMAIL,
        PrivateKind.PHONE,
    }
    assert allowed_kinds("allow-private-data: all") == frozenset(PrivateKind)
    assert allowed_kinds("Allow private data: nothing, really") == frozenset()
    # Only a line of its own counts: prose mentioning the phrase is not an opt-in.
    assert allowed_kinds("Never allow private data: email to leave.") == frozenset()
    assert allowed_kinds("") == frozenset()
