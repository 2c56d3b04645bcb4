"""``flask seats check-config``: catch a price that cannot bill a plan before a customer does.

``init_app`` checks the catalog's shape offline; only the provider knows whether a price exists,
is active, recurs at the plan's interval, is in the product's currency, and (for a seat price)
is billed per unit. A wrong seat price otherwise surfaces as a failed checkout or a refused
quantity update in production.
"""

from __future__ import annotations

from ..errors import PermanentProviderError
from ..plans import Plan, Product
from ..providers.base import RemotePrice
from ..state import SeatBillingState
from .errors import CommandError


def check_config(state: SeatBillingState) -> list[str]:
    """One line per problem, empty when every configured price is usable as configured."""
    problems: list[str] = []
    fetched: dict[str, RemotePrice | str] = {}
    for product in state.catalog.products:
        for plan in product.plans:
            for price_id, seat in _prices(plan):
                if price_id not in fetched:
                    fetched[price_id] = _fetch(state, price_id)
                found = fetched[price_id]
                role = "seat price" if seat else "price"
                if isinstance(found, str):
                    problems.append(f"plan {plan.name}: {role} {price_id} {found}")
                    continue
                problems.extend(
                    f"plan {plan.name}: {role} {price_id} {p}"
                    for p in _problems(found, plan, product, seat)
                )
    return problems


def _prices(plan: Plan) -> list[tuple[str, bool]]:
    if plan.seat_only:
        return [(plan.plan_id, True)]
    prices = [(plan.plan_id, False)]
    if plan.seat_price_id:
        prices.append((plan.seat_price_id, True))
    return prices


def _fetch(state: SeatBillingState, price_id: str) -> RemotePrice | str:
    try:
        return state.provider.retrieve_price(price_id)
    except NotImplementedError as error:
        raise CommandError(f"check-config is not available for {state.provider.name}.") from error
    except PermanentProviderError as error:
        if error.status in (401, 403):
            raise  # bad credentials: the whole command fails, not this one price
        return "does not exist" if error.status == 404 else f"cannot be read: {error.message}"


def _problems(price: RemotePrice, plan: Plan, product: Product, seat: bool) -> list[str]:
    found: list[str] = []
    if not price.active:
        found.append("is archived (inactive)")
    if price.product_active is False:
        found.append(f"belongs to archived product {price.product_id}")
    if not price.recurring:
        found.append("is not recurring (one-time)")
    elif price.interval != plan.interval or price.interval_count != 1:
        every = f"{price.interval_count} {price.interval}" if price.interval_count != 1 else (
            price.interval)
        found.append(f"bills every {every}, plan interval is {plan.interval}")
    if (price.currency or "").lower() != product.currency.lower():
        found.append(f"is in {price.currency}, product {product.id} is in {product.currency}")
    if seat and price.billing_scheme != "per_unit":
        found.append(f"is not per-unit (billing_scheme {price.billing_scheme})")
    if seat and price.usage_type not in (None, "licensed"):
        found.append(f"is metered (usage_type {price.usage_type}), seats need licensed")
    return found
