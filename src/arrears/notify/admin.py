"""What an operator does with a provider's templates besides saving one: list them, reset one.

Saving (checked against a sample first) and previewing are in `rendering`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.notify.rendering import check_target
from arrears.store.tables import ProviderRow, TemplateRow


def own_templates(session: Session, provider: ProviderRow) -> dict[tuple[str, str], TemplateRow]:
    """The provider's own templates, by (event, channel); the defaults apply to the rest."""
    rows = session.scalars(select(TemplateRow).where(TemplateRow.provider_id == provider.id))
    return {(row.event, row.channel): row for row in rows}


def own_template(session: Session, provider: ProviderRow, event: str, channel: str) -> TemplateRow | None:
    check_target(event, channel)
    return session.scalar(
        select(TemplateRow).where(
            TemplateRow.provider_id == provider.id, TemplateRow.event == event, TemplateRow.channel == channel
        )
    )


def reset_template(session: Session, provider: ProviderRow, event: str, channel: str) -> bool:
    """Delete the provider's own template for `event` and `channel`, so the default applies again.

    False when it had none (nothing changes). Raises ConfigError for an unknown event or channel.
    """
    row = own_template(session, provider, event, channel)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
