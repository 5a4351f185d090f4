from django import template

from costs.models import usd as usd_text

register = template.Library()


@register.filter
def usd(amount) -> str:
    """Dollars as people write them ("$1,234.50", "$0.0042"); a dash for no amount."""
    return "—" if amount is None or amount == "" else usd_text(amount)
