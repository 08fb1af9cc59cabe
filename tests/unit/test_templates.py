"""Tenant-authored templates: defaults, errors with lines, the sandbox, limits, escaping, CSS."""

from __future__ import annotations

import gc
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.domain.events import EventKind
from arrears.notify import defaults
from arrears.notify.context import ProviderFacts, build_context, sample_facts
from arrears.notify.sms_text import sms_length
from arrears.notify.templates import (
    MAX_SMS_SEGMENTS,
    RENDER_TIME_LIMIT,
    Rendered,
    TemplateError,
    TemplateSource,
    default_template,
    render,
    validate,
)

NOW = datetime(2025, 4, 1, 23, 0, tzinfo=UTC)
EVENTS = [e.value for e in EventKind]
PROVIDERS = {
    "sydney": ProviderFacts(
        "Acme Internet",
        "Australia/Sydney",
        "AUD",
        "en_AU",
        "https://pay.example.com/{account}?invoice={invoice}",
    ),
    "berlin": ProviderFacts("Netz GmbH", "Europe/Berlin", "EUR", "de_DE"),
    "tokyo": ProviderFacts("Hikari", "Asia/Tokyo", "JPY", "ja_JP", "https://pay.example.jp/{account}"),
}


def sample(event: str = "invoice_due", provider: str = "sydney") -> dict[str, Any]:
    return build_context(sample_facts(event, provider=PROVIDERS[provider], now=NOW))


def text(body: str, event: str = "invoice_due") -> TemplateSource:
    return TemplateSource(event=event, channel="email", subject="S", text=body)


def sms(body: str, event: str = "invoice_due") -> TemplateSource:
    return TemplateSource(event=event, channel="sms", subject=None, text=body)


def html(body: str, event: str = "invoice_due") -> TemplateSource:
    return TemplateSource(event=event, channel="email", subject="S", text="T", html=body)


def error_of(source: TemplateSource, context: dict[str, Any] | None = None) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        render(source, sample() if context is None else context)
    return info.value


# --- defaults -----------------------------------------------------------------------


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("event", EVENTS)
def test_every_default_email_validates_for_its_event(event: str, provider: str) -> None:
    out = validate(default_template(event, "email"), sample=sample(event, provider))
    assert out.subject and "\n" not in out.subject
    assert out.text.startswith("Dear Jordan Example,")
    assert PROVIDERS[provider].name in out.text
    assert out.html is not None
    assert "<style" not in out.html  # inlined, then dropped
    assert 'style="' in out.html
    assert out.sms is None
    assert "{{" not in out.text + out.html + out.subject


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("event", EVENTS)
def test_every_default_sms_validates_for_its_event(event: str, provider: str) -> None:
    out = validate(default_template(event, "sms"), sample=sample(event, provider))
    assert out.sms is not None and out.sms.segments >= 1
    assert out.text.startswith(PROVIDERS[provider].name + ":")
    assert out.html is None and out.subject == ""


@pytest.mark.parametrize("event", EVENTS)
def test_default_sms_is_one_gsm7_segment_for_typical_data(event: str) -> None:
    out = render(default_template(event, "sms"), sample(event, "sydney"))
    assert out.sms is not None
    assert (out.sms.encoding, out.sms.segments) == ("GSM-7", 1), out.text
    assert out.sms.units < 160


def test_sms_no_break_spaces_become_plain_spaces() -> None:
    # Babel's "12:00 pm" has a narrow no-break space, which GSM-7 cannot carry.
    out = render(sms("{{ projected_suspension }}", "suspension_warning"), sample("suspension_warning"))
    assert out.sms is not None and out.sms.encoding == "GSM-7"
    assert "\u202f" not in out.text


def test_defaults_cover_every_event_and_channel() -> None:
    assert set(defaults.EMAIL) == set(defaults.SMS) == set(EVENTS)
    with pytest.raises(ValueError):
        default_template("invoice_due", "webhook")
    with pytest.raises(ValueError):
        default_template("invoice_paid", "email")


def test_default_invoice_email_reads_well() -> None:
    out = render(default_template("invoice_due", "email"), sample())
    assert out.subject == "Invoice INV-3017 is due on 9 Apr 2025"
    assert "invoice INV-3017 for $182.50 is due on 9 Apr 2025" in out.text
    assert "You can pay online at https://pay.example.com/ACME-10042?invoice=INV-3017" in out.text
    assert "\n\n\n" not in out.text  # {% if %} lines leave no gaps
    assert out.html is not None and 'href="https://pay.example.com/ACME-10042?invoice=INV-3017"' in out.html


def test_default_without_payment_link_says_nothing_about_paying_online() -> None:
    out = render(default_template("invoice_due", "email"), sample(provider="berlin"))
    assert "pay online" not in out.text
    assert out.html is not None and "Pay now" not in out.html


# --- errors name field and line ------------------------------------------------------


def test_undefined_attribute_names_field_line_and_variable() -> None:
    err = error_of(text("Dear {{ contact.name }},\n\n{{ account.nmae }}"))
    assert (err.field, err.line) == ("text", 3)
    assert str(err) == "text, line 3: 'account' has no attribute 'nmae'"


def test_undefined_variable_in_subject_and_html() -> None:
    source = TemplateSource("invoice_due", "email", subject="Hi {{ acount.id }}", text="T")
    err = error_of(source)
    assert (err.field, err.line, err.reason) == ("subject", 1, "'acount' is undefined")
    err = error_of(html("<p>\n{% if x %}\n</p>{% endif %}"))
    assert (err.field, err.line) == ("html", 2)


def test_undefined_inside_a_loop_and_a_macro() -> None:
    body = "a\n{% macro m(n) %}\n{% for i in range(n) %}\n{{ i }} {{ invoice.nope }}\n{% endfor %}\n{% endmacro %}\n{{ m(2) }}"
    err = error_of(text(body))
    assert (err.field, err.line) == ("text", 4)
    assert "'invoice' has no attribute 'nope'" in err.reason


def test_invoice_variables_only_for_invoice_events() -> None:
    assert render(text("{{ invoice.amount }}"), sample("invoice_due")).text == "$182.50"
    err = error_of(text("{{ invoice.amount }}", "auto_suspend"), sample("auto_suspend"))
    assert err.line == 1 and "None has no attribute 'amount'" in err.reason
    # ... which a template can test for.
    assert render(text("{% if invoice %}x{% else %}none{% endif %}"), sample("auto_suspend")).text == "none"


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("line 1\n{% if %}", 2),
        ("a\nb\n{{ account.name ", 3),
        ("{% for x in y %}\n\n", 1),  # Jinja2 points at the block left open
        ("{% endif %}", 1),
        ("x\n{{ 1 + }}", 2),
    ],
)
def test_syntax_error_gives_the_line(body: str, line: int) -> None:
    err = error_of(text(body))
    assert (err.field, err.line) == ("text", line)
    assert str(err).startswith(f"text, line {line}: ")


def test_missing_or_misplaced_fields_are_refused() -> None:
    with pytest.raises(TemplateError) as info:
        TemplateSource("invoice_due", "email", subject=None, text="T")
    assert info.value.field == "subject"
    with pytest.raises(TemplateError):
        TemplateSource("invoice_due", "email", subject="  ", text="T")
    with pytest.raises(TemplateError) as info:
        TemplateSource("invoice_due", "sms", subject=None, text="T", html="<p>")
    assert info.value.field == "html"
    with pytest.raises(TemplateError):
        TemplateSource("invoice_due", "sms", subject="S", text="T")
    with pytest.raises(TemplateError):
        TemplateSource("invoice_due", "fax", subject=None, text="T")
    with pytest.raises(TemplateError):
        TemplateSource("invoice_paid", "sms", subject=None, text="T")


def test_empty_results_are_refused() -> None:
    assert error_of(sms("{% if false %}x{% endif %}  ")).reason == "the SMS is empty"
    assert error_of(TemplateSource("invoice_due", "email", subject="{{ '' }}", text="T")).field == "subject"


def test_runtime_errors_become_template_errors() -> None:
    err = error_of(text("a\n{{ 1 / 0 }}"))
    assert (err.line, err.reason) == (2, "ZeroDivisionError: division by zero")
    assert error_of(text("{{ account.name + 1 }}")).reason.startswith("TypeError")
    assert "No filter named" in error_of(text("{{ 'x'|nosuchfilter }}")).reason


# --- the sandbox ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ namespace.__init__.__globals__['os'] }}",
        "{{ self.__init__.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ account._path }}",
        "{{ account.__class__ }}",
        "{{ account|attr('__class__') }}",
        "{{ dict.mro() }}",
        "{{ '{0.__class__}'.format(account) }}",
        "{{ '{0.__init__.__globals__}'.format(cycler) }}",
        "{{ '{x}'.format_map(account) }}",
        "{{ account.pop('name') }}",
        "{{ account.update(name='x') }}",
        "{% set x = account.clear() %}",
        "{{ lipsum() }}",
        "{% include 'secrets.txt' %}",
        "{% extends 'base.html' %}",
        "{% import 'macros' as m %}",
        "{{ 'x'|safe }}",
        "{% autoescape false %}{{ contact.name }}{% endautoescape %}",
        "{{ config }}",
        "{{ request }}",
    ],
)
def test_sandbox_escapes_are_refused(body: str) -> None:
    err = error_of(text(body))
    assert err.field == "text" and err.line == 1
    assert "Python" not in err.reason and "<class" not in err.reason and "object at 0x" not in err.reason


def test_harmless_templates_still_work() -> None:
    body = (
        "{% for i in range(3) %}{{ i }}{% if not loop.last %},{% endif %}{% endfor %} "
        "{{ account.name|upper }} {{ account.name ~ '!' }} {{ 2 ** 10 }} {{ 'a-b'.split('-')|join('+') }} "
        "{{ [3, 1, 2]|sort|join }} {% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}"
        "{% endfor %}{{ ns.n }} {{ 'x' * 3 }} {{ contact.name|truncate(9, leeway=0) }} {{ account.days_overdue + 1 }}"
    )
    assert render(text(body), sample("invoice_overdue")).text == (
        "0,1,2 JORDAN EXAMPLE Jordan Example! 1024 a+b 123 6 xxx Jordan... 8"
    )


def test_none_prints_as_nothing() -> None:
    no_link = sample(provider="berlin")
    assert no_link["payment_link"] is None
    assert render(text("[{{ payment_link }}]"), no_link).text == "[]"


# --- limits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{{ 'x' * 10**9 }}",
        "{{ 10 ** (10 ** 10) }}",
        "{{ 2 ** 100000 }}",
        "{{ (10 ** 1000) * (10 ** 1000) * (10 ** 1000) * (10 ** 1000) * (10 ** 1000) }}",
        "{{ [0] * 10**6 }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ 'x'|center(10**9) }}",
        "{{ 'x'|indent(10**9) }}",
        "{{ ('x' * 60000)|replace('x', 'x' * 60000) }}",
        "{{ range(100)|join('x' * 60000) }}",
        "{{ 'a b c'|wordwrap(1, wrapstring='x' * 60000) }}",
        "{{ range(3)|batch(10**9, 0)|list }}",
        "{{ range(3)|slice(10**9)|list }}",
        "{% set s = 'x' * 60000 %}{{ s ~ s }}",
        "{% set s = 'x' * 60000 %}{{ s + s }}",
        "{{ 'x'.center(10**9) }}",
        "{{ (1).to_bytes(10**9, 'big') }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{% for i in range(10**6) %}{% endfor %}",
    ],
)
def test_size_limits(body: str) -> None:
    started = time.monotonic()
    err = error_of(text(body))
    assert err.field == "text"
    assert time.monotonic() - started < 5


def test_a_slow_garbage_collection_during_a_render_is_not_the_templates_time() -> None:
    """A full collection of a big process can outlast the render budget; it is not the template's doing."""

    def slow_collection(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            spent = time.thread_time()
            while time.thread_time() - spent < RENDER_TIME_LIMIT * 1.5:
                pass  # CPU, in this thread, while "collecting"

    class CollectsWhenShown:
        def __str__(self) -> str:
            gc.collect()  # as an allocation can trigger one, mid-render
            return "shown"

    context = sample()
    context["account"] = {**context["account"], "name": CollectsWhenShown()}
    gc.callbacks.append(slow_collection)
    try:
        rendered = render(text("Dear {{ account.name }}"), context)
    finally:
        gc.callbacks.remove(slow_collection)
    assert rendered.text == "Dear shown"


def test_output_size_limit() -> None:
    err = error_of(text("{% for i in range(1000) %}{{ 'x' * 100 }}{% endfor %}"))
    assert "longer than" in err.reason
    assert render(text("{% for i in range(100) %}{{ 'x' * 100 }}{% endfor %}"), sample()).text == "x" * 10_000


def test_output_buffered_in_a_block_counts_too() -> None:
    body = "{% set big %}{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}{% endset %}{{ big|length }}"
    err = error_of(text(body))
    assert "more than" in err.reason or "longer than" in err.reason


def test_subject_limit_and_single_line() -> None:
    source = TemplateSource("invoice_due", "email", subject="{{ 'x' * 2000 }}", text="T")
    assert error_of(source).field == "subject"
    source = TemplateSource("invoice_due", "email", subject="Invoice\n{{ invoice.id }}\r\n\n", text="T")
    assert render(source, sample()).subject == "Invoice INV-3017"


def test_sms_segment_limit() -> None:
    assert render(sms("{{ 'x' * 1530 }}"), sample()).sms == sms_length("x" * 1530)
    err = error_of(sms("{{ 'x' * 1531 }}"))
    assert err.field == "text" and f"at most {MAX_SMS_SEGMENTS}" in err.reason
    assert error_of(sms("{{ '€' * 800 }}")).field == "text"


def test_nested_huge_loops_fail_fast() -> None:
    started = time.monotonic()
    body = "{% for i in range(10**6) %}{% for j in range(10**6) %}{{ i }}{% endfor %}{% endfor %}"
    error_of(text(body))
    assert time.monotonic() - started < 5  # generous: it fails in milliseconds


@pytest.mark.parametrize(
    "body",
    [
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
        "{% set s = 'x' * 10000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{% for i in range(10000) %}{% for j in range(10000) %}{% set x = account.name %}{% endfor %}{% endfor %}",
    ],
)
def test_time_limit(body: str) -> None:
    started = time.monotonic()
    err = error_of(text(body))
    assert err.field == "text"
    assert "took longer" in err.reason or "recursion" in err.reason or "more than" in err.reason
    assert time.monotonic() - started < 5  # the limit is 200 ms; generous for slow machines


# --- HTML: escaping and CSS -------------------------------------------------------------


def test_customer_data_is_escaped_in_html_but_not_in_text() -> None:
    ctx = sample()
    ctx["contact"] = dict(ctx["contact"], name='<script>alert("x")</script> & Co')
    source = TemplateSource(
        "invoice_due",
        "email",
        subject="For {{ contact.name }}",
        text="Dear {{ contact.name }}",
        html="<p>Dear {{ contact.name }}</p>",
    )
    out = render(source, ctx)
    assert out.text == 'Dear <script>alert("x")</script> & Co'
    assert out.subject == 'For <script>alert("x")</script> & Co'
    assert out.html is not None
    assert "<script>" not in out.html
    assert "&lt;script&gt;" in out.html and "&amp; Co" in out.html


def test_html_escapes_inside_attributes() -> None:
    ctx = sample()
    ctx["account"] = dict(ctx["account"], id='x" onmouseover="evil()')
    out = render(html('<a title="{{ account.id }}">x</a>'), ctx)
    assert out.html is not None and 'onmouseover="evil' not in out.html


def test_css_is_inlined_and_style_blocks_removed() -> None:
    body = (
        "<html><head><style>p { color: #123456; } .big { font-size: 20px; }</style></head>"
        '<body><p class="big">Hi {{ contact.name }}</p></body></html>'
    )
    out = render(html(body), sample())
    assert out.html is not None
    assert "<style" not in out.html
    assert 'style="color: #123456;font-size: 20px;"' in out.html
    assert "Hi Jordan Example" in out.html


def test_stylesheet_links_are_dropped_not_fetched() -> None:
    body = '<link rel="stylesheet" href="https://example.com/x.css"><p>Hi</p>'
    out = render(html(body), sample())
    assert out.html is not None and "<link" not in out.html and "Hi" in out.html


def test_html_body_is_optional() -> None:
    out = render(text("Hello"), sample())
    assert out == Rendered(subject="S", text="Hello", html=None, sms=None)


# --- properties --------------------------------------------------------------------------


@settings(derandomize=True, max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_values_are_data_never_template_code(name: str) -> None:
    ctx = sample()
    ctx["contact"] = dict(ctx["contact"], name=name)
    out = render(text("[{{ contact.name }}]"), ctx)
    assert out.text == f"[{name}]"


@settings(derandomize=True, max_examples=50, deadline=None)
@given(st.text(alphabet=st.sampled_from("<>&\"'ab"), max_size=50))
def test_html_never_contains_a_raw_customer_tag(name: str) -> None:
    ctx = sample()
    ctx["contact"] = dict(ctx["contact"], name=name)
    out = render(html("<p>{{ contact.name }}</p>"), ctx)
    assert out.html is not None
    body = out.html.split("<p>", 1)[1].rsplit("</p>", 1)[0]
    assert "<" not in body and ">" not in body.replace("&gt;", "")


def test_sample_context_is_not_modified_by_rendering() -> None:
    ctx = sample()
    before = repr(ctx)
    render(replace(default_template("invoice_due", "email")), ctx)
    assert repr(ctx) == before
