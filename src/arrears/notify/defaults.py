"""The default notice templates: polite, short, and valid for their event's variables.

Templates render with trim_blocks and lstrip_blocks, so a `{% ... %}` tag on a
line of its own leaves no blank line behind. SMS bodies stay under 160 GSM-7
characters for typical data (an AUD account in en_AU with a short payment link).
"""

from __future__ import annotations

_STYLE = """<style>
body { font-family: Arial, Helvetica, sans-serif; color: #222222; line-height: 1.5; }
.card { max-width: 560px; padding: 16px; border: 1px solid #dddddd; }
.figure { font-weight: bold; }
.button { display: inline-block; padding: 8px 16px; background: #1a5fb4; color: #ffffff; text-decoration: none; }
.small { color: #666666; font-size: 12px; }
</style>"""


def _html(body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        + _STYLE
        + '\n</head>\n<body>\n<div class="card">\n'
        + body
        + "</div>\n</body>\n</html>\n"
    )


_PAY_TEXT = """{% if payment_link %}

You can pay online at {{ payment_link }}
{% endif %}
"""

_PAY_HTML = """{% if payment_link %}
<p><a class="button" href="{{ payment_link }}">Pay now</a></p>
{% endif %}
"""

_SIGN_TEXT = """
Kind regards,
{{ provider.name }}
"""

_SIGN_HTML = """<p>Kind regards,<br>{{ provider.name }}</p>
<p class="small">Account {{ account.id }}</p>
"""

# invoice_due -------------------------------------------------------------

INVOICE_DUE_SUBJECT = "Invoice {{ invoice.id }} is due on {{ invoice.due_date }}"

INVOICE_DUE_TEXT = (
    """Dear {{ contact.name }},

This is a friendly reminder that invoice {{ invoice.id }} for {{ invoice.amount }} is due on {{ invoice.due_date }}. The balance to pay is {{ invoice.balance }}.
"""
    + _PAY_TEXT
    + """
If you have already paid, thank you, and please disregard this message.
"""
    + _SIGN_TEXT
)

INVOICE_DUE_HTML = _html(
    """<p>Dear {{ contact.name }},</p>
<p>This is a friendly reminder that invoice {{ invoice.id }} for {{ invoice.amount }} is due on
<span class="figure">{{ invoice.due_date }}</span>. The balance to pay is
<span class="figure">{{ invoice.balance }}</span>.</p>
"""
    + _PAY_HTML
    + """<p>If you have already paid, thank you, and please disregard this message.</p>
"""
    + _SIGN_HTML
)

INVOICE_DUE_SMS = (
    "{{ provider.name }}: invoice {{ invoice.id }} ({{ invoice.balance }}) is due {{ invoice.due_date }}."
    "{% if payment_link %} Pay: {{ payment_link }}{% endif %}"
)

# invoice_overdue ---------------------------------------------------------

INVOICE_OVERDUE_SUBJECT = "Invoice {{ invoice.id }} is overdue"

INVOICE_OVERDUE_TEXT = (
    """Dear {{ contact.name }},

Invoice {{ invoice.id }} was due on {{ invoice.due_date }} and {{ invoice.balance }} of it is still unpaid. Please pay it at your earliest convenience.
"""
    + _PAY_TEXT
    + """
If you have already paid, thank you, and please disregard this message. If you would like to talk about it, simply reply to this email.
"""
    + _SIGN_TEXT
)

INVOICE_OVERDUE_HTML = _html(
    """<p>Dear {{ contact.name }},</p>
<p>Invoice {{ invoice.id }} was due on {{ invoice.due_date }} and
<span class="figure">{{ invoice.balance }}</span> of it is still unpaid.
Please pay it at your earliest convenience.</p>
"""
    + _PAY_HTML
    + """<p>If you have already paid, thank you, and please disregard this message.
If you would like to talk about it, simply reply to this email.</p>
"""
    + _SIGN_HTML
)

INVOICE_OVERDUE_SMS = (
    "{{ provider.name }}: invoice {{ invoice.id }} is overdue, {{ invoice.balance }} unpaid."
    "{% if payment_link %} Pay: {{ payment_link }}{% endif %}"
)

# suspension_warning ------------------------------------------------------

SUSPENSION_WARNING_SUBJECT = "Your services will be suspended on {{ projected_suspension }} unless paid"

SUSPENSION_WARNING_TEXT = (
    """Dear {{ contact.name }},

Account {{ account.id }} has an overdue balance of {{ account.overdue_balance }}, now {{ account.days_overdue }} days overdue. Unless it is paid, your services will be suspended from {{ projected_suspension }}.
"""
    + _PAY_TEXT
    + """
If you have already paid, thank you, and please disregard this message. If you need more time, please contact us before then.
"""
    + _SIGN_TEXT
)

SUSPENSION_WARNING_HTML = _html(
    """<p>Dear {{ contact.name }},</p>
<p>Account {{ account.id }} has an overdue balance of <span class="figure">{{ account.overdue_balance }}</span>,
now {{ account.days_overdue }} days overdue. Unless it is paid, your services will be suspended from
<span class="figure">{{ projected_suspension }}</span>.</p>
"""
    + _PAY_HTML
    + """<p>If you have already paid, thank you, and please disregard this message.
If you need more time, please contact us before then.</p>
"""
    + _SIGN_HTML
)

SUSPENSION_WARNING_SMS = (
    "{{ provider.name }}: {{ account.overdue_balance }} overdue. Your services will be suspended "
    "{{ projected_suspension }} unless paid.{% if payment_link %} {{ payment_link }}{% endif %}"
)

# auto_suspend ------------------------------------------------------------

AUTO_SUSPEND_SUBJECT = "Your {{ service.type }} service {{ service.id }} has been suspended"

AUTO_SUSPEND_TEXT = (
    """Dear {{ contact.name }},

We have suspended your {{ service.type }} service {{ service.id }} because account {{ account.id }} has an overdue balance of {{ account.overdue_balance }}. It will be restored automatically once the overdue balance is paid.
"""
    + _PAY_TEXT
    + """
If you have already paid, thank you: the service will come back shortly. If you have any questions, simply reply to this email.
"""
    + _SIGN_TEXT
)

AUTO_SUSPEND_HTML = _html(
    """<p>Dear {{ contact.name }},</p>
<p>We have suspended your {{ service.type }} service {{ service.id }} because account {{ account.id }}
has an overdue balance of <span class="figure">{{ account.overdue_balance }}</span>.
It will be restored automatically once the overdue balance is paid.</p>
"""
    + _PAY_HTML
    + """<p>If you have already paid, thank you: the service will come back shortly.
If you have any questions, simply reply to this email.</p>
"""
    + _SIGN_HTML
)

AUTO_SUSPEND_SMS = (
    "{{ provider.name }}: service {{ service.id }} is suspended, {{ account.overdue_balance }} overdue. "
    "Pay to restore it.{% if payment_link %} {{ payment_link }}{% endif %}"
)

# auto_unsuspend ----------------------------------------------------------

AUTO_UNSUSPEND_SUBJECT = "Your {{ service.type }} service {{ service.id }} has been restored"

AUTO_UNSUSPEND_TEXT = (
    """Dear {{ contact.name }},

Thank you for your payment. Your {{ service.type }} service {{ service.id }} has been restored and is ready to use.
"""
    + _SIGN_TEXT
)

AUTO_UNSUSPEND_HTML = _html(
    """<p>Dear {{ contact.name }},</p>
<p>Thank you for your payment. Your {{ service.type }} service {{ service.id }} has been restored
and is ready to use.</p>
"""
    + _SIGN_HTML
)

AUTO_UNSUSPEND_SMS = (
    "{{ provider.name }}: thank you for your payment. Your {{ service.type }} service {{ service.id }} "
    "has been restored."
)

# event -> (subject, text, html)
EMAIL: dict[str, tuple[str, str, str]] = {
    "invoice_due": (INVOICE_DUE_SUBJECT, INVOICE_DUE_TEXT, INVOICE_DUE_HTML),
    "invoice_overdue": (INVOICE_OVERDUE_SUBJECT, INVOICE_OVERDUE_TEXT, INVOICE_OVERDUE_HTML),
    "suspension_warning": (SUSPENSION_WARNING_SUBJECT, SUSPENSION_WARNING_TEXT, SUSPENSION_WARNING_HTML),
    "auto_suspend": (AUTO_SUSPEND_SUBJECT, AUTO_SUSPEND_TEXT, AUTO_SUSPEND_HTML),
    "auto_unsuspend": (AUTO_UNSUSPEND_SUBJECT, AUTO_UNSUSPEND_TEXT, AUTO_UNSUSPEND_HTML),
}

# event -> SMS body
SMS: dict[str, str] = {
    "invoice_due": INVOICE_DUE_SMS,
    "invoice_overdue": INVOICE_OVERDUE_SMS,
    "suspension_warning": SUSPENSION_WARNING_SMS,
    "auto_suspend": AUTO_SUSPEND_SMS,
    "auto_unsuspend": AUTO_UNSUSPEND_SMS,
}
