"""Class names: one rule, wherever a name comes in (the `classes` parameter, the teaching services,
teach by click, the Python API, merges).

    clean_name("  Mug ")                         # 'Mug': surrounding whitespace goes
    same_name("mug", " MUG")                     # True: names compare without case
    check_new_names(["cup", "Mug"], ["mug"])     # ValueError: 'Mug' is the existing 'mug'
    describe_names(many)                         # "'a', 'b', ... and 12 more", long names shortened

The rule: a name is stripped of surrounding whitespace, must not be empty, and may hold at most
MAX_NAME_CHARS characters; two names are the same class when they are equal ignoring case
(`str.casefold`), so 'Mug', ' mug ' and 'mug' are one class and the first spelling taught is the
one kept. Lookups (remove a class, add an exemplar to one) find a class by any spelling of its
name. Messages never print a name list in full: `describe_names` shows the first few, each
shortened to SHOWN_NAME_CHARS characters. Memories saved before this rule are loaded as they are.
"""
from __future__ import annotations

from typing import Iterable, Sequence

MAX_NAME_CHARS = 128  # longest class name accepted (after stripping)
SHOWN_NAME_CHARS = 40  # a name in a message is shortened past this
SHOWN_NAMES = 8  # a list of names in a message shows this many, then "and N more"


def shorten(name: str, max_chars: int = SHOWN_NAME_CHARS) -> str:
    """`name` as a message shows it: quoted, cut with an ellipsis past `max_chars` characters."""
    if len(name) <= max_chars:
        return repr(name)
    return repr(name[:max_chars - 1] + "…") + f" ({len(name)} characters)"


def describe_names(names: Iterable[str], limit: int = SHOWN_NAMES) -> str:
    """A list of names for a message: the first `limit`, each shortened, then "and N more"."""
    names = list(names)
    shown = ", ".join(shorten(n) for n in names[:limit])
    more = len(names) - limit
    return (shown + (f" and {more} more" if more > 0 else "")) if names else "none"


def name_key(name: str) -> str:
    """What two names are compared by: stripped, case folded."""
    return name.strip().casefold()


def same_name(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and name_key(a) == name_key(b)


def clean_name(name, what: str = "class name") -> str:
    """`name` stripped; ValueError naming the rule when it is not a string, empty, or too long."""
    if not isinstance(name, str):
        raise ValueError(f"a {what} must be a string, got {type(name).__name__}")
    cleaned = name.strip()
    if not cleaned:
        raise ValueError(f"a {what} must not be empty or blank, got {shorten(name)}")
    if len(cleaned) > MAX_NAME_CHARS:
        raise ValueError(f"the {what} {shorten(cleaned)} is longer than {MAX_NAME_CHARS} characters; "
                         "give a shorter name (a longer description can go in the class's description)")
    return cleaned


def check_new_names(names: Sequence, existing: Iterable[str | None] = ()) -> list[str]:
    """`names` cleaned (clean_name); ValueError when one of them is listed twice or is already an
    existing name, in any spelling."""
    cleaned = [clean_name(n) for n in names]
    taken = {name_key(n): (n, "already exists as") for n in existing if n is not None}
    for name in cleaned:
        other, how = taken.get(name_key(name), (None, ""))
        if other is not None:
            raise ValueError(f"class {shorten(name)} {how} {shorten(other)}; names are unique, compared "
                             "without case and surrounding blanks")
        taken[name_key(name)] = (name, "is listed twice, also as")
    return cleaned


def find_name(wanted: str, names: Iterable[str | None]) -> str | None:
    """The name among `names` that `wanted` refers to: the exact one, else the one equal without
    case and blanks; None when there is none."""
    names = [n for n in names if n is not None]
    if wanted in names:
        return wanted
    return next((n for n in names if same_name(n, wanted)), None)
