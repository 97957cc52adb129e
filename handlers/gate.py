"""One gate for every route that touches a subscription (PRODUCT.md capability 4).

A route declares the permission it needs, between `@bp.route` and the view:

    @bp.route(route="v1/subscriptions/{subscription_id}/licenses", methods=["GET"], ...)
    @gate.api(access.SUBSCRIPTION_VIEW)
    def api_list_licenses(req: func.HttpRequest, person: Person, subscription: Subscription): ...

    @bp.route(route="subscriptions/{subscription_id}/licenses", methods=["POST"], ...)
    @gate.page(access.LICENSES_ASSIGN, form=True)
    def assign_form(web: WebRequest, person: Person, subscription: Subscription): ...

Every request then passes the same steps, in this order, and every refusal looks the same:

1. settings: invalid settings answer 503 (JSON `misconfigured`), on pages and the API alike;
2. the caller: a bearer token for the JSON API (else 401 with the RFC 6750 challenge), the
   dashboard session for pages (else a redirect to sign-in, coming back afterwards);
3. the route's subscription, loaded once: 404 when it is unknown or the caller may not see it
   (the same answer for both: ids are never confirmed to strangers);
4. the route's permission: 403 when the caller may see the subscription but lacks it;
5. on state-changing forms (`form=True`), the CSRF token: 403.

Only then does the view run, with the caller and the subscription. The declared permission is kept
on the function (`required_permission`; `gate` = "api" or "page"; `checks_csrf`) so a test can check
that no subscription route goes without one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func

from adapters.stripe_gateway import StripeUnavailable
from adapters.table_storage import ConcurrencyConflict
from handlers import bearer
from handlers.inputs import InvalidBody, InvalidInput
from handlers.responses import error, when_configured
from handlers.web import WebRequest, csrf_refused
from services import access, bootstrap
from services.csrf import CsrfRejected
from services.i18n import translator
from services.identity import InvalidToken, Principal
from services.subscription import Subscription
from services.unit_of_work import Refused
from services.web_session import Person

log = logging.getLogger(__name__)

Handler = Callable[[func.HttpRequest], func.HttpResponse]
# Views get the caller (the person with what they hold on this subscription) and the subscription.
ApiView = Callable[[func.HttpRequest, access.Caller, Subscription], func.HttpResponse]
PageView = Callable[[WebRequest, access.Caller, Subscription], func.HttpResponse]

API = "api"
PAGE = "page"


def refused(exc: Refused) -> func.HttpResponse:
    """A rule's refusal in the API's error shape: its status, code and message."""
    return error(exc.status, exc.code, str(exc))


def api(permission: str, refusal: Callable[[Refused], func.HttpResponse] = refused) -> Callable[[ApiView], Handler]:
    """Gate a JSON API route (`v1/subscriptions/{subscription_id}...`): bearer token, subscription,
    `permission`; the view gets `(req, person, subscription)`.

    Errors the view lets through are answered in the API's error shape: a rule's refusal (Refused) by
    `refusal` (a module's own answer, with the fields its refusals carry); InvalidInput (an input
    checked at the edge, handlers/inputs.py) 400 naming its `field`; ValueError 400 `invalid_request`;
    a storage conflict 503 `busy` with Retry-After. A storage outage anywhere (the subscription's load
    included) is 503 `unavailable` with Retry-After (handlers/responses.when_configured).
    """
    _check(permission)

    def decorate(view: ApiView) -> Handler:
        def handler(req: func.HttpRequest) -> func.HttpResponse:
            settings = bootstrap.settings()  # first: invalid settings are a 503, never a 500
            try:
                principal = bearer.authenticate(req, settings)
            except InvalidToken as exc:
                return bearer.unauthorized(exc)
            person = _person(principal)
            subscription_id = req.route_params.get("subscription_id", "")
            storage = bootstrap.storage()
            try:
                caller, subscription = access.authorize(storage, access.load(storage, subscription_id), person,
                                                        permission)
            except access.NotVisible:
                return error(404, "subscription_not_found", f"no subscription {subscription_id} that you may manage")
            except access.Forbidden as exc:
                return error(403, "forbidden", str(exc), permission=exc.permission)
            try:
                return view(req, caller, subscription)
            except Refused as exc:
                return refusal(exc)
            except StripeUnavailable as exc:
                return stripe_unavailable(exc)
            except InvalidInput as exc:
                return error(400, exc.code, str(exc), field=exc.field)
            except InvalidBody as exc:
                return error(400, exc.code, str(exc), **exc.answer())
            except ValueError as exc:
                return error(400, "invalid_request", str(exc))
            except ConcurrencyConflict as exc:
                log.warning("%s: %s", view.__name__, exc)
                return error(503, "busy", "the subscription is changing right now; retry with the same request_id",
                             headers={"Retry-After": "2"})

        return _declare(handler, view, permission, API)

    return decorate


def page(
    permission: str, *, form: bool = False, not_found: str = "subscription.not_found"
) -> Callable[[PageView], Handler]:
    """Gate a dashboard page (`subscriptions/{subscription_id}...`): session, subscription,
    `permission`, and the CSRF token when `form` is set (a state-changing POST); the view gets
    `(web, person, subscription)`. `not_found` is the text of the 404 page."""
    _check(permission)

    def decorate(view: PageView) -> Handler:
        def handler(req: func.HttpRequest) -> func.HttpResponse:
            web = WebRequest.of(req)  # reads the settings first: invalid settings are a 503
            person = web.person
            if person is None:
                return web.sign_in_redirect()
            t = translator(web.language)
            storage = bootstrap.storage()
            subscription_id = req.route_params.get("subscription_id", "")
            try:
                caller, subscription = access.authorize(storage, access.load(storage, subscription_id), person,
                                                        permission)
            except access.NotVisible:
                return web.error_page(404, t("error.not_found.title"), t(not_found))
            except access.Forbidden:
                return web.error_page(403, t("error.forbidden.title"), t("error.forbidden.permission"))
            if form:
                try:
                    web.check_csrf()
                except CsrfRejected as exc:
                    return csrf_refused(web, exc)
            return view(web, caller, subscription)

        return _declare(handler, view, permission, PAGE, checks_csrf=form)

    return decorate


def stripe_unavailable(exc: StripeUnavailable) -> func.HttpResponse:
    """503 `stripe_unavailable`: Stripe could not be reached (a retry with the same key is safe)."""
    log.warning("Stripe unavailable: %s", exc)
    return error(503, "stripe_unavailable", "the payment provider cannot be reached right now; nothing was charged "
                 "twice: retry later (a change with the same Idempotency-Key)", headers={"Retry-After": "5"})


def _check(permission: str) -> None:
    if permission not in access.PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; one of {', '.join(access.PERMISSIONS)}")


def _declare(handler: Handler, view: Callable[..., func.HttpResponse], permission: str, kind: str,
             checks_csrf: bool = False) -> Handler:
    # The host binds parameters by the function's signature, so the handler keeps its own `(req)`
    # (no functools.wraps, whose __wrapped__ would show the view's) and only takes the view's name,
    # which is the function's name in the app.
    handler.__name__ = handler.__qualname__ = view.__name__
    handler.__doc__ = view.__doc__
    handler.__module__ = view.__module__
    guarded = when_configured(handler)
    guarded.required_permission = permission  # type: ignore[attr-defined]
    guarded.gate = kind  # type: ignore[attr-defined]
    guarded.checks_csrf = checks_csrf  # type: ignore[attr-defined]
    return guarded


def _person(principal: Principal) -> Person:
    return bearer.person(principal)
