from datetime import date, timedelta
from decimal import Decimal

from django import forms
from django.utils import timezone

from costs.models import ModelPrice
from costs.selectors import price_override
from optimizer.forms import DayField
from optimizer.llm.pricing import catalog_prices
from optimizer.models import Provider

FAR = Decimal(10)  # an override this many times off the reference price (either way) asks to be confirmed
PRICE_FIELDS = ("input", "output", "cached_input")  # on the form and on PricePerMillion alike


def times_off(price: Decimal, reference: Decimal) -> Decimal | None:
    """How many times ``price`` is above or below ``reference``; None when it cannot be said."""
    if reference <= 0:
        return None
    if price == 0:
        return Decimal("Infinity")
    ratio = price / reference
    return ratio if ratio >= 1 else 1 / ratio


def _plain(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


class ModelPriceForm(forms.ModelForm):
    """A dated price for a model. A price more than ten times off genai-prices' (or, for a model the
    package does not know, off the price in force) is refused until confirmed: a mistyped price is
    the usual cause of a false "budget exceeded"."""

    confirm = forms.BooleanField(
        label="This price is right",
        required=False,
        help_text="Tick to save a price far from the list price (prices are USD per million tokens).",
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
        listed = catalog_prices(choice.provider.price_catalog, choice.model_id)
        source = "genai-prices' list price"
        if listed is None:
            listed, source = price_override(model_id=choice.pk), "the price in force"
        if listed is None:
            return cleaned
        for name in PRICE_FIELDS:
            price, reference = cleaned.get(name), getattr(listed, name)
            if price is None or reference is None:
                continue
            ratio = times_off(price, reference)
            if ratio is not None and ratio > FAR:
                self.add_error(
                    name,
                    f"{price} is {'far' if ratio.is_infinite() else f'{ratio:.0f}×'} "  # noqa: RUF001
                    f"{'above' if price > reference else 'below'} {source} ({_plain(reference)} $/M tokens "
                    f"for {choice.model_id}). Check the unit (USD per million tokens), or tick "
                    "“This price is right” to save it anyway.",
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
