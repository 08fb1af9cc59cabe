"""Tenant-authored notice templates, rendered in a sandbox with size and time limits.

A provider writes the subject, text, HTML and SMS bodies of its notices in Jinja2.
Those templates are untrusted: they run in an ImmutableSandboxedEnvironment with
StrictUndefined, a reduced set of filters and string methods, and limits on what
they may build and for how long. The limits are enforced without threads or
signals: the template's syntax tree is rewritten so every loop step, call,
operator, concatenation and output goes through a check of a per-render budget
(a deadline and a count of characters produced).
"""

from __future__ import annotations

import functools
import gc
import re
import threading
import time
import traceback
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

import css_inline
from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.environment import Template
from jinja2.filters import (
    FILTERS,
    do_batch,
    do_center,
    do_indent,
    do_replace,
    do_slice,
    do_wordwrap,
    make_attrgetter,
    sync_do_join,
)
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_environment, pass_eval_context
from jinja2.visitor import NodeTransformer
from markupsafe import soft_str

from arrears.domain.events import EventKind
from arrears.notify import defaults
from arrears.notify.sms_text import SmsLength, sms_length

CHANNELS = ("email", "sms")
FIELDS = ("subject", "text", "html")

MAX_SOURCE_CHARS = 64 * 1024  # per template field
MAX_BODY_BYTES = 64 * 1024  # text and html (after CSS inlining), UTF-8
MAX_SUBJECT_BYTES = 1024  # after joining lines, UTF-8
MAX_SMS_SEGMENTS = 10
MAX_PRODUCED_CHARS = 1024 * 1024  # everything a render outputs, including macro and {% set %} buffers
MAX_ITEMS = 10_000  # range(), list repetition and concatenation, batch/slice counts
MAX_INT_BITS = 4096  # results of * and ** on integers
# CPU seconds of the rendering thread for one render() call, all fields together. CPU time,
# not wall-clock: a runaway template burns CPU, while a busy host or another thread holding
# the GIL only delays it, and must not fail a customer's notice for good.
RENDER_TIME_LIMIT = 0.2

# str methods a template may call: all linear in the string, none builds a large one.
_STR_METHODS = frozenset(
    {
        "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha",
        "isascii", "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper",
        "lower", "lstrip", "partition", "removeprefix", "removesuffix", "rfind", "rindex",
        "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase",
        "title", "upper",
    }
)  # fmt: skip

# Filters kept as Jinja2 has them: bounded by their input. Left out: format (printf
# widths), pprint, tojson (indent), urlize (per-link attributes), random (not
# reproducible), safe (would let customer data through unescaped).
_PLAIN_FILTERS = (
    "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape",
    "filesizeformat", "first", "float", "forceescape", "groupby", "int", "items", "last",
    "length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "reverse", "round",
    "select", "selectattr", "sort", "string", "striptags", "sum", "title", "trim", "truncate",
    "unique", "upper", "urlencode", "wordcount", "xmlattr",
)  # fmt: skip

_TEMPLATE_FILENAME = "<template>"


class TemplateError(ValueError):
    """A template that cannot be rendered: which field, which line (when known), and why."""

    def __init__(self, field: str, line: int | None, reason: str) -> None:
        self.field = field
        self.line = line
        self.reason = reason
        where = field if line is None else f"{field}, line {line}"
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class TemplateSource:
    """A provider's template for one event and channel."""

    event: str  # an EventKind value
    channel: str  # "email" or "sms"
    subject: str | None  # email only, required there
    text: str  # plain-text email body, or the SMS body
    html: str | None = None  # email only, optional

    def __post_init__(self) -> None:
        if self.event not in {e.value for e in EventKind}:
            raise TemplateError("text", None, f"unknown event {self.event!r}")
        if self.channel not in CHANNELS:
            raise TemplateError("text", None, f"unknown channel {self.channel!r} (email or sms)")
        if self.channel == "email" and not (self.subject and self.subject.strip()):
            raise TemplateError("subject", None, "an email template needs a subject")
        if self.channel == "sms":
            if self.subject is not None:
                raise TemplateError("subject", None, "an SMS template has no subject")
            if self.html is not None:
                raise TemplateError("html", None, "an SMS template has no HTML body")
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None and len(value) > MAX_SOURCE_CHARS:
                raise TemplateError(name, None, f"template is longer than {MAX_SOURCE_CHARS} characters")


@dataclass(frozen=True)
class Rendered:
    subject: str  # "" for SMS
    text: str
    html: str | None  # CSS inlined, <style> blocks removed
    sms: SmsLength | None  # for SMS


def render(source: TemplateSource, context: Mapping[str, Any]) -> Rendered:
    """Render `source` with the template variables `context` (see context.build_context)."""
    compiled = {name: _compile_field(name, text) for name, text in _fields(source)}
    variables = {key: _named(value, key) for key, value in context.items()}
    run = _Run(_render_cpu() + RENDER_TIME_LIMIT)
    token = _RUN.set(run)
    try:
        out = {name: _render_field(name, template, variables, run) for name, template in compiled.items()}
    finally:
        _RUN.reset(token)

    if source.channel == "sms":
        body = _SMS_SPACES.sub(" ", out["text"]).strip()
        if not body:
            raise TemplateError("text", None, "the SMS is empty")
        length = sms_length(body)
        if length.segments > MAX_SMS_SEGMENTS:
            raise TemplateError(
                "text", None, f"the SMS is {length.segments} segments long (at most {MAX_SMS_SEGMENTS})"
            )
        return Rendered(subject="", text=body, html=None, sms=length)

    # One line: a template's trailing newline, or a line break in a value, must not
    # end up as a broken (or injected) mail header.
    subject = " ".join(part.strip() for part in out["subject"].splitlines() if part.strip())
    if not subject:
        raise TemplateError("subject", None, "the subject is empty")
    _check_bytes("subject", subject, MAX_SUBJECT_BYTES)
    text = out["text"].strip()
    if not text:
        raise TemplateError("text", None, "the text body is empty")
    _check_bytes("text", text, MAX_BODY_BYTES)
    html: str | None = None
    if "html" in out:
        try:
            html = _INLINER.inline(out["html"])
        except ValueError as exc:  # css_inline.InlineError
            raise TemplateError("html", None, f"CSS could not be inlined: {exc}") from exc
        _check_bytes("html", html, MAX_BODY_BYTES)
    return Rendered(subject=subject, text=text, html=html, sms=None)


def validate(source: TemplateSource, *, sample: Mapping[str, Any]) -> Rendered:
    """Check `source` when it is saved: it must render for the `sample` context of its event.

    `sample` is normally build_context(sample_facts(source.event, ...)). Raises
    TemplateError naming the field and, when known, the line.
    """
    return render(source, sample)


def default_template(event: str, channel: str) -> TemplateSource:
    """arrears' own template for `event` on `channel` (defaults.py)."""
    kind = EventKind(event).value
    if channel == "email":
        subject, text, html = defaults.EMAIL[kind]
        return TemplateSource(event=kind, channel="email", subject=subject, text=text, html=html)
    if channel == "sms":
        return TemplateSource(event=kind, channel="sms", subject=None, text=defaults.SMS[kind])
    raise ValueError(f"unknown channel {channel!r} (email or sms)")


# --- rendering --------------------------------------------------------------

# No-break and thin spaces (Babel puts them in amounts and times) are not GSM-7:
# one would turn a whole SMS into UCS-2, with less than half the room per segment.
_SMS_SPACES = re.compile("[\u00a0\u2007\u2009\u202f]")

# No remote or local stylesheet is ever loaded: <link> tags are dropped, not fetched.
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False, keep_link_tags=False)


def _fields(source: TemplateSource) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if source.subject is not None:
        out.append(("subject", source.subject))
    out.append(("text", source.text))
    if source.html is not None:
        out.append(("html", source.html))
    return out


def _check_bytes(field: str, value: str, limit: int) -> None:
    size = len(value.encode("utf-8"))
    if size > limit:
        raise TemplateError(field, None, f"the rendered {field} is {size} bytes (at most {limit})")


def _compile_field(field: str, text: str) -> Template:
    try:
        return _compile(field == "html", text)
    except TemplateSyntaxError as exc:
        raise TemplateError(field, exc.lineno, exc.message or "syntax error") from exc
    except _Refused as exc:
        raise TemplateError(field, exc.line, str(exc)) from exc


def _render_field(field: str, template: Template, variables: dict[str, Any], run: _Run) -> str:
    limit = MAX_SUBJECT_BYTES * 4 if field == "subject" else MAX_BODY_BYTES
    parts: list[str] = []
    size = 0
    chunks = template.generate(variables)
    try:
        for chunk in chunks:
            run.tick()
            size += len(chunk)  # characters <= UTF-8 bytes: stops early, checked exactly later
            if size > limit:
                run.refuse(f"the rendered {field} is longer than {limit} characters")
            parts.append(chunk)
        run.tick()  # a refusal swallowed by a filter on the way still counts
    except Exception as exc:
        raise TemplateError(field, _template_line(exc), _reason(exc)) from exc
    finally:
        if isinstance(chunks, Generator):
            chunks.close()
    return "".join(parts)


def _template_line(exc: BaseException) -> int | None:
    # Jinja2 rewrites the traceback so template frames carry template line numbers;
    # the innermost one is where it failed.
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == _TEMPLATE_FILENAME:
            line = frame.lineno
    return line


def _reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "too much recursion"
    if isinstance(exc, MemoryError):
        return "the template needs too much memory"
    message = str(exc)
    if isinstance(exc, (_Refused,)) or type(exc).__module__.startswith("jinja2"):
        return message  # UndefinedError, SecurityError, ...: already phrased for the author
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# --- the budget of one render -----------------------------------------------


class _Refused(Exception):
    """A limit was reached. Deliberately not a ValueError/TypeError/LookupError,
    which some filters and the sandbox catch and turn into `undefined`."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.line = line


class _Run:
    """Deadline and output count of one render() call."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.produced = 0
        self.refused: str | None = None

    def tick(self) -> None:
        if self.refused is not None:
            raise _Refused(self.refused)
        if _render_cpu() > self.deadline:
            self.refuse(f"rendering took longer than {int(RENDER_TIME_LIMIT * 1000)} ms of CPU")

    def refuse(self, reason: str) -> None:
        # Remembered, so a refusal swallowed by template machinery is raised again.
        self.refused = reason
        raise _Refused(reason)

    def produce(self, chars: int) -> None:
        self.produced += chars
        if self.produced > MAX_PRODUCED_CHARS:
            self.refuse(f"the template produces more than {MAX_PRODUCED_CHARS} characters")
        self.tick()


# The garbage collector runs in whichever thread allocates when a collection is
# due, and a full collection of a large process can take longer than the whole
# render budget: its CPU time is the process's, not the template's, so it is
# counted apart (per thread) and left out.
_collecting = threading.local()


def _count_collection(phase: str, _info: dict[str, int]) -> None:
    if phase == "start":
        _collecting.started = time.thread_time()
    elif getattr(_collecting, "started", None) is not None:
        _collecting.total = getattr(_collecting, "total", 0.0) + time.thread_time() - _collecting.started
        _collecting.started = None


gc.callbacks.append(_count_collection)


def _render_cpu() -> float:
    """This thread's CPU time, less what the garbage collector spent in it."""
    return time.thread_time() - getattr(_collecting, "total", 0.0)


# A ContextVar rather than an attribute of the shared environment: renders in
# different threads or tasks each keep their own budget.
_RUN: ContextVar[_Run | None] = ContextVar("arrears_template_run", default=None)


def _tick() -> None:
    run = _RUN.get()
    if run is not None:
        run.tick()


def _refuse(reason: str) -> None:
    run = _RUN.get()
    if run is not None:
        run.refuse(reason)
    raise _Refused(reason)


def _check_chars(chars: int, what: str) -> None:
    if chars > MAX_BODY_BYTES:
        _refuse(f"{what} would be {chars} characters long (at most {MAX_BODY_BYTES})")


def _check_items(count: int, what: str) -> None:
    if count > MAX_ITEMS:
        _refuse(f"{what} would have {count} items (at most {MAX_ITEMS})")


# --- guarded globals and filters ----------------------------------------------


def _bounded_range(*args: int) -> range:
    """range() as templates see it: at most MAX_ITEMS steps; loops over it check the deadline."""
    _tick()
    rng = range(*args)
    _check_items(len(rng), "range()")
    return rng


def _center(value: Any, width: int = 80) -> str:
    _check_chars(int(width), "center()")
    return do_center(value, width)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    pad = len(width) if isinstance(width, str) else int(width)
    text = soft_str(s)
    _check_chars(len(text) + (text.count("\n") + 1) * max(pad, 0), "indent()")
    return do_indent(s, width, first, blank)


@pass_eval_context
def _replace(eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old_s, new_s = soft_str(s), soft_str(old), soft_str(new)
    hits = text.count(old_s) if old_s else len(text) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    _check_chars(len(text) + hits * max(len(new_s) - len(old_s), 0), "replace()")
    return do_replace(eval_ctx, s, old, new, count)


@pass_eval_context
def _join(
    eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: str | int | None = None
) -> str:
    items = list(value)
    if attribute is not None:
        items = list(map(make_attrgetter(eval_ctx.environment, attribute), items))
    _check_chars(sum(len(soft_str(i)) for i in items) + len(soft_str(d)) * max(len(items) - 1, 0), "join()")
    return sync_do_join(eval_ctx, items, d)


@pass_environment
def _wordwrap(
    environment: Any,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    text = soft_str(s)
    sep = len(wrapstring) if wrapstring is not None else 2
    lines = len(text) // max(int(width), 1) + text.count("\n") + 1
    _check_chars(len(text) + lines * sep, "wordwrap()")
    return do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    _check_items(int(linecount), "batch()")
    return do_batch(value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
    _check_items(int(slices), "slice()")
    return iter(do_slice(value, slices, fill_with))


def _with_tick(f: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that first checks the deadline (filters are not calls the sandbox sees)."""

    @functools.wraps(f)  # keeps the pass_* marker Jinja2 reads from the function
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _tick()
        return f(*args, **kwargs)

    return wrapper


_FILTERS: dict[str, Callable[..., Any]] = {name: FILTERS[name] for name in _PLAIN_FILTERS}
_FILTERS.update(
    center=_center,
    indent=_indent,
    replace=_replace,
    join=_join,
    wordwrap=_wordwrap,
    batch=_batch,
    slice=_slice,
)
_FILTERS = {name: _with_tick(f) for name, f in _FILTERS.items()}


def _finalize(value: Any) -> Any:
    # A missing phone number or an absent payment link prints as nothing, not "None".
    return "" if value is None else value


# --- the environment ----------------------------------------------------------


class _Named(dict[str, Any]):
    """A dict of template variables that knows its name, for error messages."""

    __slots__ = ("_path",)

    def __init__(self, items: Mapping[str, Any], path: str) -> None:
        super().__init__(items)
        self._path = path


def _named(value: Any, path: str) -> Any:
    if isinstance(value, Mapping):
        return _Named({str(k): _named(v, f"{path}.{k}") for k, v in value.items()}, path)
    if isinstance(value, (list, tuple)):
        return [_named(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


class _Undefined(StrictUndefined):
    """StrictUndefined that names the variable: "'account' has no attribute 'nmae'"."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
        if self._undefined_hint is None and isinstance(obj, _Named) and isinstance(self._undefined_name, str):
            return f"{obj._path!r} has no attribute {self._undefined_name!r}"
        if self._undefined_hint is None and obj is None and isinstance(self._undefined_name, str):
            return f"None has no attribute {self._undefined_name!r}"
        return str(super()._undefined_message)


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(
            autoescape=autoescape,
            undefined=_Undefined,
            finalize=_finalize,
            trim_blocks=True,
            lstrip_blocks=True,
            # Constant folding would run operators and filters at compile time,
            # outside the budget; a notice template gains nothing from it.
            optimized=False,
            cache_size=0,
            auto_reload=False,
        )
        # lipsum() is dropped (it builds text of any size); range() is bounded.
        self.globals = {name: self.globals[name] for name in ("cycler", "joiner", "namespace", "dict")}
        self.globals["range"] = _bounded_range
        self.filters = dict(_FILTERS)

    # Attributes and calls ------------------------------------------------------

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, str):
            return attr in _STR_METHODS
        if isinstance(obj, int):
            return attr not in ("to_bytes", "from_bytes")
        return True

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # str.format is refused outright (is_safe_attribute leaves it out): even
        # sandboxed, a format spec such as {:>999999999} builds a string of any size.
        return None

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()  # macros and caller() come through here: recursion is bounded in time
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_product(left, right)
        elif operator == "+":
            _check_sum(left, right)
        elif operator == "%" and isinstance(left, str):
            _refuse("printf-style formatting with % is not available")
        return super().call_binop(context, operator, left, right)

    # Helpers the rewritten syntax tree calls (as environment.<name>) ----------------

    def checked_iter(self, iterable: Any) -> Iterator[Any]:
        for item in iterable:
            _tick()
            yield item

    @pass_eval_context
    def checked_concat(self, eval_ctx: EvalContext, *parts: Any) -> str:
        strings = [soft_str(p) for p in parts]
        _check_chars(sum(map(len, strings)), "the ~ concatenation")
        return markup_join(parts) if eval_ctx.autoescape else str_join(parts)

    def produced(self, value: Any) -> Any:
        run = _RUN.get()
        if run is not None and value is not None:
            run.produce(len(soft_str(value)))
        return value

    def produced_literal(self, chars: int) -> str:
        run = _RUN.get()
        if run is not None:
            run.produce(chars)
        return ""


def _is_int(x: Any) -> bool:
    return isinstance(x, int)


def _check_power(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right) and right > 0 and abs(left).bit_length() * right > MAX_INT_BITS + 1:
        _refuse(f"{left} ** {right} is too large")


def _check_product(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right):
        if abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
            _refuse("the product is too large")
        return
    seq, n = (left, right) if _is_int(right) else (right, left)
    if _is_int(n) and isinstance(seq, (str, list, tuple)):
        if isinstance(seq, str):
            _check_chars(len(seq) * max(n, 0), "the repeated string")
        else:
            _check_items(len(seq) * max(n, 0), "the repeated list")


def _check_sum(left: Any, right: Any) -> None:
    if isinstance(left, str) and isinstance(right, str):
        _check_chars(len(left) + len(right), "the sum of strings")
    elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        _check_items(len(left) + len(right), "the sum of lists")


class _Guard(NodeTransformer):
    """Rewrites a parsed template so loops, concatenations and output report to the budget."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _env_call("checked_iter", [cast(nodes.Expr, node.iter)], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _env_call("checked_concat", list(node.nodes), node.lineno)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        literal = sum(len(n.data) for n in node.nodes if isinstance(n, nodes.TemplateData))
        guarded: list[nodes.Expr] = [
            n if isinstance(n, nodes.TemplateData) else _env_call("produced", [n], n.lineno)
            for n in node.nodes
        ]
        if literal:
            # Literal text inside a loop or macro is produced again on every pass.
            guarded.insert(
                0, _env_call("produced_literal", [nodes.Const(literal, lineno=node.lineno)], node.lineno)
            )
        node.nodes = guarded
        return node

    def visit_ScopedEvalContextModifier(self, node: nodes.ScopedEvalContextModifier) -> nodes.Node:
        # {% autoescape false %} would print customer data into HTML unescaped.
        raise _Refused("autoescape blocks are not available in notice templates", node.lineno)

    def visit_Include(self, node: nodes.Include) -> nodes.Node:
        raise _Refused("include is not available in notice templates", node.lineno)

    def visit_Extends(self, node: nodes.Extends) -> nodes.Node:
        raise _Refused("extends is not available in notice templates", node.lineno)

    def visit_Import(self, node: nodes.Import) -> nodes.Node:
        raise _Refused("import is not available in notice templates", node.lineno)

    def visit_FromImport(self, node: nodes.FromImport) -> nodes.Node:
        raise _Refused("import is not available in notice templates", node.lineno)


def _env_call(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    return nodes.Call(nodes.EnvironmentAttribute(name, lineno=lineno), args, [], None, None, lineno=lineno)


_TEXT_ENV = _Sandbox(autoescape=False)
_HTML_ENV = _Sandbox(autoescape=True)


@functools.lru_cache(maxsize=256)
def _compile(html: bool, text: str) -> Template:
    env = _HTML_ENV if html else _TEXT_ENV
    tree = env.parse(text)
    tree = _Guard().visit(tree)
    tree.set_environment(env)
    code = env.compile(tree, filename=_TEMPLATE_FILENAME)
    return env.template_class.from_code(env, code, env.make_globals(None))
