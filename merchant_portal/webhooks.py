"""`/portal/webhooks`: the merchant's own systems that Kassa tells about payments, refunds,
settlement and alerts. Managers and owners add an endpoint (its signing secret is shown once),
pause, resume or delete it, send it a test event, read each delivery's attempts and send a
delivery again (gateway.services.webhooks). Adding an endpoint issues a signing secret, as
rotating a till's key does, so it needs a recent second factor (step-up) like that."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as Redirect

from gateway.adapters.i18n import gettext as _
from gateway.domain import webhooks as rules
from gateway.errors import Conflict, InvalidInput
from gateway.services.webhooks import endpoints, outbox
from merchant_portal.identity import step_up_redirect
from merchant_portal.views import database, signed_in_manager, staff_session

bp = Blueprint("webhooks", __name__)
FAMILIES = tuple(f"{family}.*" for family in rules.FAMILIES)


@bp.route("/webhooks", methods=["GET", "POST"])
def endpoints_page() -> Any:
    """The list, and the form that adds an endpoint (its secret is on the answer, once)."""
    staff = signed_in_manager()
    error: str | None = None
    secret: str | None = None
    form: Mapping[str, Any] = {}
    if request.method == "POST" and (step_up := step_up_redirect()) is not None:
        return step_up
    if request.method == "POST":
        form = request.form
        chosen = [f for f in request.form.getlist("event_types") if f in FAMILIES]
        chosen += request.form.get("more_types", "").replace(",", " ").split()
        try:
            with database().unit_of_work() as uow:
                made = endpoints.create_endpoint(
                    uow,
                    staff.merchant_id,
                    url=request.form.get("url", ""),
                    event_types=chosen,
                    description=request.form.get("description"),
                    actor=staff.actor,
                )
                uow.commit()
                secret = made.secret
        except InvalidInput as exc:
            error = exc.message
        else:
            form = {}
    with database().unit_of_work(readonly=True) as uow:
        listed = endpoints.list_endpoints(uow, staff.merchant_id)
        page = render_template(
            "portal/webhooks.html",
            staff=staff,
            merchant=staff_session.merchant_of(staff),
            endpoints=listed,
            families=FAMILIES,
            error=error,
            secret=secret,
            form=form,
        )
    return page, 422 if error else 200


@bp.get("/webhooks/<int:endpoint_id>")
def endpoint_detail(endpoint_id: int) -> Any:
    """One endpoint and its delivery log, newest first."""
    staff = signed_in_manager()
    with database().unit_of_work(readonly=True) as uow:
        endpoint = endpoints.get_endpoint(uow, staff.merchant_id, endpoint_id)
        return render_template(
            "portal/webhook_endpoint.html",
            staff=staff,
            merchant=staff_session.merchant_of(staff),
            endpoint=endpoint,
            deliveries=endpoints.deliveries(uow, staff.merchant_id, endpoint_id),
        )


@bp.post("/webhooks/<int:endpoint_id>/pause")
def pause_endpoint(endpoint_id: int) -> Redirect:
    return _change(endpoint_id, endpoints.pause, _("Paused: no events are sent to it."))


@bp.post("/webhooks/<int:endpoint_id>/resume")
def resume_endpoint(endpoint_id: int) -> Redirect:
    return _change(endpoint_id, endpoints.resume, _("Resumed: new events are sent to it again."))


@bp.post("/webhooks/<int:endpoint_id>/delete")
def delete_endpoint(endpoint_id: int) -> Redirect:
    return _change(
        endpoint_id, endpoints.delete, _("Deleted: it gets nothing more; its log stays here.")
    )


@bp.post("/webhooks/<int:endpoint_id>/test")
def test_endpoint(endpoint_id: int) -> Redirect:
    return _change(
        endpoint_id,
        outbox.send_test,
        _("A test event is on its way; its delivery appears below."),
    )


@bp.get("/webhooks/deliveries/<int:delivery_id>")
def delivery_detail(delivery_id: int) -> Any:
    """A delivery's body as sent and every attempt at it."""
    staff = signed_in_manager()
    with database().unit_of_work(readonly=True) as uow:
        delivery = endpoints.get_delivery(uow, staff.merchant_id, delivery_id)
        return render_template(
            "portal/webhook_delivery.html",
            staff=staff,
            merchant=staff_session.merchant_of(staff),
            delivery=delivery,
            endpoint=delivery.endpoint,
            attempts=endpoints.attempts(uow, delivery),
        )


@bp.post("/webhooks/deliveries/<int:delivery_id>/send")
def send_delivery(delivery_id: int) -> Redirect:
    """Send the delivery (again) now, under its own webhook-id."""
    staff = signed_in_manager()
    try:
        with database().unit_of_work() as uow:
            outbox.send_now(uow, staff.merchant_id, delivery_id, actor=staff.actor)
            uow.commit()
        flash(_("Queued: the worker sends it within seconds."), "ok")
    except (Conflict, InvalidInput) as exc:
        flash(_("Could not send it: %(reason)s.", reason=exc.message))
    return redirect(url_for(".delivery_detail", delivery_id=delivery_id), 303)


def _change(endpoint_id: int, action: Any, done: str) -> Redirect:
    staff = signed_in_manager()
    try:
        with database().unit_of_work() as uow:
            action(uow, staff.merchant_id, endpoint_id, staff.actor)
            uow.commit()
        flash(done, "ok")
    except (Conflict, InvalidInput) as exc:
        flash(_("Could not do that: %(reason)s.", reason=exc.message))
    return redirect(url_for(".endpoint_detail", endpoint_id=endpoint_id), 303)
