from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django import forms
from django.utils import timezone

from costs.models import ModelPrice
from optimizer.forms import DayField
from optimizer.llm.pricing import catalog_prices
from optimizer.llm.seed import KNOWN_PROVIDERS
from optimizer.models import Provider

FAR = Decimal(10)  # a price this many times off its reference (either way) asks to be confirmed
PRICE_FIELDS = ("input", "output", "cached_input")  # on the form and on PricePerMillion alike
UNITS = {"input": "input", "output": "output", "cached_input": "cached input"}


def times_off(price: Decimal, low: Decimal, high: Decimal | None = None) -> Decimal | None:
    """How many times ``price`` is above ``high`` or below ``low`` (1 inside them; ``high`` defaults
    to ``low``, one reference price); None when it cannot be said."""
    high = low if high is None else high
    if low <= 0:
        return None
    if price == 0:
        return Decimal("Infinity")
    if price > high:
        return price / high
    return low / price if price < low else Decimal(1)


def _plain(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


@dataclass(frozen=True)
class Reference:
    """What a new price is compared with: one model's list price, or the range of its tier's."""

    low: Decimal
    high: Decimal
    source: str  # "genai-prices' list price (... for gpt-5-nano)", in the sentence the error makes


def _tier_reference(tier: str, field: str) -> Reference | None:
    """The range of the list prices of the models the product seeds for ``tier``: its usual range."""
    listed = {}
    for known in KNOWN_PROVIDERS:
        for model_id, model_tier in known.models:
            prices = catalog_prices(known.catalog, model_id) if model_tier == tier else None
            if prices is not None and getattr(prices, field) is not None:
                listed[model_id] = getattr(prices, field)
    if not listed:
        return None
    low, high = min(listed.values()), max(listed.values())
    source = (
        f"the usual {UNITS[field]} price of {tier} models ({_plain(low)} to {_plain(high)} $/M tokens, "
        f"genai-prices' list prices of {', '.join(listed)})"
    )
    return Reference(low, high, source)


def _reference(choice, field: str) -> Reference | None:
    listed = catalog_prices(choice.provider.price_catalog, choice.model_id)
    if listed is None:  # a model the package does not know: its tier's usual range, not a price in force
        return _tier_reference(choice.tier, field)
    price = getattr(listed, field)
    if price is None:
        return None
    return Reference(
        price, price, f"genai-prices' list price ({_plain(price)} $/M tokens for {choice.model_id})"
    )


class ModelPriceForm(forms.ModelForm):
    """A dated price for a model. A price more than ten times off genai-prices' list price, or, for a
    model the package does not list, outside ten times the range of its tier's list prices, is
    refused until confirmed: a mistyped price is the usual cause of a false "budget exceeded". The
    price in force is no reference: it may be the mistake being corrected."""

    confirm = forms.BooleanField(
        label="This price is right",
        required=False,
        help_text="Tick to save a price far from the list prices (prices are USD per million tokens).",
    )

    class Meta:
        model = ModelPrice
        fields = ["model", "valid_from", "input", "output", "cached_input", "note"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "model" in self.fields:  # the built-in engine costs nothing: it has no price to set
            models = self.fields["model"].queryset.exclude(provider__kind=Provider.Kind.BUILTIN)
            self.fields["model"].queryset = models.select_related("provider")

    def clean(self):
        cleaned = super().clean()
        choice = cleaned.get("model") or getattr(self.instance, "model", None)
        if choice is None or cleaned.get("confirm"):
            return cleaned
        for name in PRICE_FIELDS:
            price, reference = cleaned.get(name), _reference(choice, name)
            if price is None or reference is None:
                continue
            ratio = times_off(price, reference.low, reference.high)
            if ratio is not None and ratio > FAR:
                self.add_error(
                    name,
                    f"{price} is {'far' if ratio.is_infinite() else f'{ratio:.0f}×'} "  # noqa: RUF001
                    f"{'above' if price > reference.high else 'below'} {reference.source}. Check the unit "
                    "(USD per million tokens), or tick “This price is right” to save it anyway.",
                )
        return cleaned


class DateRangeForm(forms.Form):
    """The dashboard's range, in the site's time zone: the last 30 days by default, a year at most."""

    MAX_DAYS = 366

    start = DayField(required=False)
    end = DayField(required=False)

    def clean(self):
        cleaned = super().clean()
        if self.errors:  # a date that is not one, or out of bounds, has its own message
            return cleaned
        today = timezone.localdate()
        end = cleaned.get("end") or today
        start = cleaned.get("start") or end - timedelta(days=29)
        if start > end:
            raise forms.ValidationError("The start date is after the end date: swap them.")
        if (end - start).days + 1 > self.MAX_DAYS:
            raise forms.ValidationError(f"Pick a range of at most {self.MAX_DAYS} days.")
        cleaned["start"], cleaned["end"] = start, end
        return cleaned

    def range(self) -> tuple[date, date]:
        """The valid range asked for, or the default one when the form is not valid."""
        if self.is_valid():
            return self.cleaned_data["start"], self.cleaned_data["end"]
        today = timezone.localdate()
        return today - timedelta(days=29), today
