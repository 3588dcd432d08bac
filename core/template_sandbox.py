"""The Jinja2 sandbox templates run in, and the budget that bounds one render.

Jinja's immutable sandbox keeps templates away from internals (no ``__class__``, no
``list.append``); it does not bound what they compute. A template is operator-written text that
runs inside the receiver's event loop, so every render gets a budget (``render_budget``):

- no value a template handles (a filter's or a method's input or output, an operand, a macro's
  argument, a namespace's value, a printed value) is over ``MAX_OUTPUT`` characters (a list: its
  items together), and the operations that expand (``replace``, ``join``, ``center``,
  ``indent``, ``wordwrap``, ``format``, ``%``, ``*``, ``~``…) are refused *before* they compute
  a larger one;
- ``MAX_STEPS`` loop iterations and calls (macros, methods, ``loop(…)``) per render, all
  together: nested loops and recursive macros stop there;
- ``MAX_WORK`` characters handled per render: what filters, methods and operators take and
  give, and what is printed, so a loop cannot redo a large operation thousands of times;
- ``range()`` yields ``MAX_ITEMS`` numbers per render in all.

Exceeding any of them raises ``TemplateBudgetError`` (a ``SecurityError``): a template error,
so the default text at runtime and a failure with the line in ``anomaly-desk check``.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import date, time, timedelta
from itertools import islice
from typing import Any, cast

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame, operators, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

MAX_OUTPUT = 32_767  # characters of one value or one rendered text (Jira's description limit)
MAX_ITEMS = 100_000  # range() numbers per render, all loops together
MAX_STEPS = 10_000  # loop iterations and calls per render
MAX_WORK = 1_000_000  # characters handled per render (taken and given by filters, methods…)
_ITEM_COST = 8  # what an item of a list costs of MAX_WORK, besides its characters
_MAX_BITS = 4_096  # an integer product or power: more bits than any text needs

# str methods a template may not call: padding to a width (the filters are budgeted instead),
# str.format (Jinja's own wrapper would bypass the sizes) and encode (bytes have no budget).
_UNSAFE_STR = frozenset(
    {"ljust", "rjust", "center", "zfill", "expandtabs", "format", "format_map", "encode"}
)
# A %-format width or precision of a million characters or more, or taken from the arguments
# (``%*s``, ``%.*d``), after an optional mapping key (``%(a)0999999d``).
_WIDE = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d{6,}|\d*\.(?:\*|\d{6,}))")
# One %-directive: its width and precision.
_DIRECTIVE = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d*)(?:\.(\d*))?[hlL]?[a-zA-Z%]")


class TemplateBudgetError(SecurityError):
    """A template asked for more than a text can hold (huge loops, padding, repetition)."""


class TemplateView:
    """Base of the read-only values templates see: an empty (None) field is ``Missing``; in a
    list it shows as it prints (a dataclass repr would show every field, long texts included)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


class Missing(Undefined):
    """A value the anomaly or the note does not have: prints as nothing, is false in
    ``{% if %}``, ``|default`` replaces it, filters see an empty text (``|upper`` gives "").
    Using it as an object (``anomaly.created.year``) is an error naming it."""

    __slots__ = ()


def missing(name: str, owner: str | None = None) -> Missing:
    """The stand-in for an empty value, named for the error if it is used as an object."""
    where = f" of {owner}" if owner else ""
    return Missing(hint=f"{name!r}{where} is empty here")


# -- sizes ---------------------------------------------------------------------------------------


def size(value: Any, limit: int = MAX_OUTPUT) -> int:
    """About the characters ``value`` prints as (a list: its items', at least 1 each); stops
    counting past ``limit``, so it costs at most ``limit`` steps whatever the value."""
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    if value is None or isinstance(value, Undefined):
        return 0
    if isinstance(value, bool | float):
        return len(repr(value))
    if isinstance(value, date | time | timedelta):
        return 64  # about its longest repr (a datetime with a timezone, in a list)
    if isinstance(value, int):
        return value.bit_length() // 3 + 1
    if isinstance(value, TemplateView):
        return len(str(value))
    if isinstance(value, Namespace):
        attrs: dict[str, Any] = object.__getattribute__(value, "_Namespace__attrs")
        return size(attrs, limit)
    if isinstance(value, range):
        return 1  # lazy: its numbers are paid for when made (MAX_ITEMS)
    if isinstance(value, Mapping):
        items: Iterable[Any] = (part for pair in value.items() for part in pair)
    elif isinstance(value, Collection):
        items = value
    else:
        return 1  # a datetime, a macro, a generator (paid for as it yields)
    total = 0
    for item in items:
        total += max(1, size(item, limit - total))
        if total > limit:
            break
    return total


# -- the budget of one render --------------------------------------------------------------------


class RenderBudget:
    """What one render may still do; a template error as soon as any runs out."""

    __slots__ = ("numbers", "steps", "work")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.work = MAX_WORK
        self.numbers = MAX_ITEMS

    def step(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise TemplateBudgetError(f"more than {MAX_STEPS:,} loop iterations and calls")

    def charge(self, characters: int) -> None:
        self.work -= characters
        if self.work < 0:
            raise TemplateBudgetError(f"more than {MAX_WORK:,} characters handled in one text")

    def take(self, value: Any) -> int:
        """A value going into an operation: refused over the cap, else paid for (a list's items
        cost more than characters: sorting or mapping them is Python work per item)."""
        n = size(value)
        if n > MAX_OUTPUT:
            raise TemplateBudgetError(f"a value of more than {MAX_OUTPUT:,} characters or items")
        items = 0
        if isinstance(value, Collection) and not isinstance(value, str | bytes | range | Undefined):
            items = len(value)
        self.charge(n + _ITEM_COST * items)
        return n

    def give(self, value: Any) -> Any:
        """A value an operation made: refused over the cap, else paid for; an iterator (map,
        select…) is paid for item by item as it is consumed."""
        if isinstance(value, Iterator):
            return self._stream(value)
        self.take(value)
        return value

    def _stream(self, items: Iterator[Any]) -> Iterator[Any]:
        for item in items:
            self.charge(max(1, size(item)))
            yield item


_budget: ContextVar[RenderBudget | None] = ContextVar("template_budget", default=None)


def budget() -> RenderBudget:
    """The running render's budget. Outside a render (Jinja folding constants while compiling)
    nothing is computed: the error makes Jinja leave it to the render."""
    current = _budget.get()
    if current is None:
        raise TemplateBudgetError("templates compute only while rendering")
    return current


@contextlib.contextmanager
def render_budget() -> Iterator[RenderBudget]:
    """A fresh budget for the render inside the ``with``."""
    fresh = RenderBudget()
    token = _budget.set(fresh)
    try:
        yield fresh
    finally:
        _budget.reset(token)


def refuse_over(estimate: int, what: str) -> None:
    """Refuse an operation whose result (estimated before computing it) is over the cap."""
    if estimate > MAX_OUTPUT:
        raise TemplateBudgetError(f"{what} would make more than {MAX_OUTPUT:,} characters")


def small(value: Any) -> None:
    """Refuse a size a text cannot hold: a number over the cap, a format width of millions."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT:
        raise TemplateBudgetError(f"{value} is more than a template may ask for ({MAX_OUTPUT})")
    if isinstance(value, str) and _WIDE.search(value):
        raise TemplateBudgetError("a format width over the output cap")


def format_size(template: str, args: Any) -> int:
    """An upper bound of ``template % args``: the text, every width and precision, the values."""
    small(template)
    widths = sum(int(w or 0) + int(p or 0) for w, p in _DIRECTIVE.findall(template))
    values = size(list(args.values()) if isinstance(args, Mapping) else args)
    return len(template) + widths + values


def bounded_items(value: Any) -> tuple[Any, ...]:
    """An iterable's items, at most ``MAX_OUTPUT`` of them (``join`` multiplies by their count)."""
    if isinstance(value, str):
        items: tuple[Any, ...] = tuple(value)
    else:
        items = tuple(islice(value, MAX_OUTPUT + 1))
    if len(items) > MAX_OUTPUT:
        raise TemplateBudgetError(f"joining more than {MAX_OUTPUT:,} items")
    return items


def join_size(separator: str, items: Iterable[Any]) -> int:
    """The size of ``separator.join(items)``, counted until it passes the cap."""
    total = 0
    for count, item in enumerate(items):
        total += size(item) + (len(separator) if count else 0)
        if total > MAX_OUTPUT:
            break
    return total


def replace_size(text: str, old: str, new: str, count: int = -1) -> int:
    """The size of ``text.replace(old, new, count)``, from the count of ``old`` (C speed)."""
    hits = len(text) + 1 if not old else text.count(old)
    if count is not None and 0 <= count < hits:
        hits = count
    return len(text) + hits * (len(new) - len(old))


# -- filters -------------------------------------------------------------------------------------


def _estimate_replace(s: Any, old: Any, new: Any, count: int | None = None) -> int:
    return replace_size(str(s), str(old), str(new), -1 if count is None else count)


def _estimate_center(value: Any, width: int = 80) -> int:
    return max(size(value), width)


def _estimate_indent(s: Any, width: int | str = 4, *_: Any, **__: Any) -> int:
    text = str(s)
    step = len(width) if isinstance(width, str) else int(width)
    return len(text) + (text.count("\n") + 1) * step


def _estimate_wordwrap(
    s: Any, width: int = 79, _long: bool = True, wrapstring: str | None = None, *_: Any, **__: Any
) -> int:
    text = str(s)
    lines = len(text) // max(1, int(width)) + text.count("\n") + 1
    return len(text) + lines * len(wrapstring or "\n")


def _estimate_format(value: Any, *args: Any, **kwargs: Any) -> int:
    return format_size(str(value), kwargs or args)


_ESTIMATES: dict[str, Callable[..., int]] = {
    "replace": _estimate_replace,
    "center": _estimate_center,
    "indent": _estimate_indent,
    "wordwrap": _estimate_wordwrap,
    "format": _estimate_format,
}
# Filters whose number arguments are sizes (the format filter: widths in its text).
_SIZED_FILTERS = frozenset(
    {"center", "indent", "wordwrap", "slice", "batch", "truncate", "tojson", "format"}
)


def _budgeted_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose inputs and output are within the cap and paid for; an expanding one is
    refused before it computes (``replace("x", "x"*32000)``, ``center(10**9)``)."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) else 0  # the context or environment
    estimate = _ESTIMATES.get(name)

    @functools.wraps(func)  # keeps jinja_pass_arg (pass_context / pass_environment)
    def budgeted(*args: Any, **kwargs: Any) -> Any:
        work = budget()
        data = list(args[skip:])
        if name == "format":
            small(str(data[0]) if data else "")
        elif name in _SIZED_FILTERS:
            for value in (*data[1:], *kwargs.values()):
                small(value)
        if name == "join" and data:  # d.join(items): its size needs the items first
            items = bounded_items(data[0])
            attribute = kwargs.get("attribute", data[2] if len(data) > 2 else None)
            if attribute is not None:
                getter = make_attrgetter(args[0].environment, attribute)
                items = tuple(getter(item) for item in items)
                kwargs.pop("attribute", None)
                data = data[:2]
            data[0] = items
            separator = str(kwargs.get("d", data[1] if len(data) > 1 else ""))
            refuse_over(join_size(separator, items), "join")
        if name == "sum":
            start = kwargs.get("start", data[2] if len(data) > 2 else 0)
            if not isinstance(start, int | float):
                raise TemplateBudgetError("sum adds numbers")
        for value in (*data, *kwargs.values()):
            work.take(value)
        if estimate is not None and data:
            refuse_over(estimate(*data, **kwargs), name)
        return work.give(func(*args[:skip], *data, **kwargs))

    return budgeted


def _budgeted_test(func: Callable[..., Any]) -> Callable[..., Any]:
    """A test (``is eq``, ``is in``, ``is sameas``…) whose operands are paid for."""

    @functools.wraps(func)  # keeps jinja_pass_arg
    def budgeted(*args: Any, **kwargs: Any) -> Any:
        work = budget()
        skip = 1 if getattr(func, "jinja_pass_arg", None) else 0
        for value in (*args[skip:], *kwargs.values()):
            work.take(value)
        return func(*args, **kwargs)

    return budgeted


# -- code generation: loops and ~ go through the budget -------------------------------------------


class _Generator(CodeGenerator):
    """Jinja's code generator, with ``~`` sized (``environment.joined``), list, tuple and dict
    displays sized as they are made (``environment.made``) and every operand of a comparison
    paid for (``environment.compared``): ``[l, l, l…]`` nests cost nothing to write, and
    ``==``, ``<`` or ``in`` on them (or hashing one as a dict key) walk every item."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.joined((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.made(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        # keys are hashed as the display is built: each is paid for first
        self.write("environment.made({")
        for idx, item in enumerate(node.items):
            if idx:
                self.write(", ")
            self.write("environment.compared(")
            self.visit(item.key, frame)
            self.write("): ")
            self.visit(item.value, frame)
        self.write("})")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment's targets (``{% for a, b in … %}``)
            super().visit_Tuple(node, frame)
            return
        self.write("environment.made(")
        super().visit_Tuple(node, frame)
        self.write(")")

    @optimizeconst
    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("(environment.compared(")
        self.visit(node.expr, frame)
        self.write(")")
        for op in node.ops:
            self.visit(op, frame)
        self.write(")")

    def visit_Operand(self, node: nodes.Operand, frame: Frame) -> None:
        self.write(f" {operators[node.op]} environment.compared(")
        self.visit(node.expr, frame)
        self.write(")")


class Counted:
    """An iterable whose items each cost a step; keeps ``len`` for ``loop.length``."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        if isinstance(self.items, Collection):
            return len(self.items)
        raise TypeError("no length")

    def __iter__(self) -> Iterator[Any]:
        work = budget()
        for item in self.items:
            work.step()
            yield item


def _range(*args: int) -> range:
    """``range``, sharing ``MAX_ITEMS`` numbers per render among all its calls."""
    numbers = range(*args)
    work = budget()
    work.numbers -= len(numbers)
    if work.numbers < 0:
        raise TemplateBudgetError(f"range() over more than {MAX_ITEMS:,} numbers in one text")
    return numbers


class _Namespace(Namespace):
    """``namespace()`` whose values stay under the cap (``{% set ns.s = ns.s ~ ns.s %}``)."""

    def __setitem__(self, name: str, value: Any) -> None:
        budget().take(value)
        super().__setitem__(name, value)


def _finalize(value: Any) -> Any:
    """Every printed value: none over the cap, each paid for (a macro printing in a loop)."""
    if value is None:
        return ""
    budget().take(value)
    return value


def _is_none(value: Any) -> bool:
    """``is none`` stays true for a missing value."""
    return value is None or isinstance(value, Missing)


class TextSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the render budget on every filter, call, operator, loop,
    concatenation and printed value (see the module's docstring)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _Generator

    def __init__(self) -> None:
        super().__init__(
            autoescape=False,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=_finalize,
        )
        self.globals.pop("lipsum", None)
        self.globals["namespace"] = _Namespace
        self.globals["range"] = _range
        self.tests["none"] = _is_none
        for name, func in list(self.filters.items()):
            self.filters[name] = _budgeted_filter(name, func)
        for name, test in list(self.tests.items()):  # ``is eq``, ``is in``: compare too
            self.tests[name] = _budgeted_test(cast(Callable[..., Any], test))

    # -- the code generator's hooks --

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):  # for x in environment.loop_items(…)
            counted = nodes.EnvironmentAttribute("loop_items", lineno=loop.iter.lineno)
            loop.iter = nodes.Call(counted, [loop.iter], [], None, None, lineno=loop.iter.lineno)
            loop.iter.set_environment(self)
        return tree

    loop_items = staticmethod(Counted)

    @staticmethod
    def made(value: Any) -> Any:
        """A list, tuple or dict the template wrote out: within the cap, paid for."""
        budget().take(value)
        return value

    @staticmethod
    def compared(value: Any) -> Any:
        """An operand of ``==``, ``<``, ``in``… (or a dict key, hashed): paid for, as comparing
        or hashing it may walk all of it."""
        budget().take(value)
        return value

    @staticmethod
    def joined(parts: tuple[Any, ...]) -> str:
        """``a ~ b``: no part and no result over the cap."""
        work = budget()
        total = sum(work.take(part) for part in parts)
        refuse_over(total, "~")
        text = "".join(map(str, parts))
        work.give(text)
        return text

    @staticmethod
    def concat(parts: Iterable[str]) -> str:
        """The text of a macro, ``{% set %}`` or ``{% filter %}`` block, refused over the cap."""
        kept: list[str] = []
        total = 0
        for part in parts:
            total += len(part)
            refuse_over(total, "a block")
            kept.append(part)
        return "".join(kept)

    # -- attributes --

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, bytes | bytearray):
            return False
        if isinstance(obj, str) and attr in _UNSAFE_STR:
            return False
        return bool(super().is_safe_attribute(obj, attr, value))

    def wrap_str_format(self, value: Any) -> None:
        """``str.format`` is refused (``is_safe_attribute``), never wrapped past it."""
        return None

    def getattr(self, obj: Any, attribute: str) -> Any:
        value = super().getattr(obj, attribute)
        if value is None and isinstance(obj, TemplateView):
            return missing(attribute, _owner(obj))
        return value

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        if value is None and isinstance(obj, TemplateView):
            return missing(str(argument), _owner(obj))
        if isinstance(argument, slice):
            budget().give(value)
        return value

    # -- operators and calls --

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        work = budget()
        if operator_ == "**":
            ints = isinstance(left, int) and isinstance(right, int)
            if ints and (abs(right) > 64 or left.bit_length() * abs(right) > _MAX_BITS):
                raise TemplateBudgetError(f"a power of more than {_MAX_BITS:,} bits")
            return left**right
        if operator_ == "%":
            if isinstance(left, str):
                work.take(left)
                refuse_over(format_size(left, right), "%")
            return work.give(left % right)
        if operator_ == "+":
            if not isinstance(left, int | float) or not isinstance(right, int | float):
                refuse_over(work.take(left) + work.take(right), "+")
            return work.give(operator.add(left, right))
        # "*"
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                refuse_over(size(seq) * times, "repetition")
        ints = isinstance(left, int) and isinstance(right, int)
        if ints and left.bit_length() + right.bit_length() > _MAX_BITS:
            raise TemplateBudgetError(f"a product of more than {_MAX_BITS:,} bits")
        return work.give(operator.mul(left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Every call (macros, methods, ``loop(…)``) is a step; its arguments and result are
        within the cap and paid for; ``str.join`` / ``replace`` / ``translate`` are sized
        first."""
        if __obj is Counted:  # a loop's iterable (``_parse``): its items are the steps
            return Counted(*args)
        work = budget()
        work.step()
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level
            args = (Counted(args[0]), *args[1:])
        receiver = getattr(__obj, "__self__", None)
        if isinstance(receiver, str):
            work.take(receiver)
            args = _sized_str_call(receiver, getattr(__obj, "__name__", ""), args, kwargs)
        for value in (*args, *kwargs.values()):
            if not isinstance(value, Counted):
                work.take(value)
        return work.give(super().call(__context, __obj, *args, **kwargs))


def _sized_str_call(
    text: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Refuse a str method that would expand past the cap; ``join``'s items, bounded."""
    if method == "join" and args:
        items = bounded_items(args[0])
        refuse_over(join_size(text, items), "join")
        return (items, *args[1:])
    if method == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        refuse_over(replace_size(text, str(args[0]), str(args[1]), count), "replace")
    if method == "translate" and args and isinstance(args[0], Mapping):
        longest = max((size(v) for v in args[0].values()), default=1)
        refuse_over(len(text) * max(1, longest), "translate")
    return args


OWNERS = {
    "AnomalyVars": "anomaly",
    "RefVars": "datastore/container",
    "CheckVars": "failed check",
    "NamedVars": "platform/rule/ticket",
    "TextList": "list",
}


def _owner(obj: object) -> str:
    return OWNERS.get(type(obj).__name__, type(obj).__name__)
