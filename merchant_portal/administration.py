"""`/portal/staff`: staff, stores, tills and till API keys for managers and owners.

Creating staff, resetting passwords or second factors and issuing or rotating keys need a
recent second factor (:func:`merchant_portal.identity.step_up_required`). Passwords and keys
are shown once, on the answer to the form, and never again. Every action is audited by the
services in :mod:`gateway.services.staff.admin`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as Redirect

from gateway.adapters.i18n import gettext as _
from gateway.entrypoints import staff_session
from gateway.entrypoints.staff_session import current_staff, database
from gateway.errors import Conflict, InvalidInput, NotFound, Unauthorised
from gateway.services.staff import admin
from gateway.services.staff.auth import StaffContext
from gateway.services.staff.stores import merchant_stores
from merchant_portal.identity import step_up_required

bp = Blueprint("staff_admin", __name__)


def _staff() -> StaffContext:
    staff = current_staff()
    if staff is None:
        raise Unauthorised("sign in first")
    return staff


def _page(
    error: str | None = None, status: int = 200, shown: dict[str, str] | None = None
) -> tuple[str, int]:
    staff = _staff()
    with database().unit_of_work(readonly=True) as uow:
        stores = merchant_stores(uow, staff.merchant_id)

        def mine(store_id: int | None) -> bool:
            return staff.store_id is None or store_id == staff.store_id

        page = render_template(
            "portal/staff.html",
            staff=staff,
            merchant=staff_session.merchant_of(staff),
            people=[p for p in admin.list_staff(uow, staff.merchant_id) if mine(p.store_id)],
            stores=[store for store in stores if mine(store.id)],
            store_names={store.id: store.name for store in stores},
            tills=[
                (t, t.store.name)
                for t in admin.list_tills(uow, staff.merchant_id)
                if mine(t.store_id)
            ],
            roles=admin.grantable_roles(staff.role),
            error=error,
            shown=shown or {},
        )
    return page, status


def _show_once(value: str, what: str, whom: str) -> tuple[str, int]:
    """The answer to a form that made a password or key: shown now, never again."""
    return _page(shown={"value": value, "what": what, "whom": whom})


@bp.get("/staff")
def staff_page() -> Any:
    return _page()


def _scoped(staff: StaffContext, store_id: int | None) -> None:
    """A store's manager acts on their own store's people and tills only (404 otherwise, so
    ids elsewhere are not confirmed)."""
    if staff.store_id is not None and store_id != staff.store_id:
        raise NotFound("there is no such staff member or till in your store")


def _person_in_scope(staff: StaffContext, staff_id: int) -> None:
    with database().unit_of_work(readonly=True) as uow:
        _scoped(staff, admin.staff_member(uow, staff.merchant_id, staff_id).store_id)


def _till_in_scope(staff: StaffContext, till_id: int) -> None:
    with database().unit_of_work(readonly=True) as uow:
        tills = {t.id: t.store_id for t in admin.list_tills(uow, staff.merchant_id)}
    if till_id not in tills:
        raise NotFound(f"no till {till_id} here")
    _scoped(staff, tills[till_id])


def _store_choice(value: str) -> int | None:
    return int(value) if value.isdigit() else None


@bp.post("/staff")
@step_up_required
def create_staff() -> Any:
    staff, form = _staff(), request.form
    store_id = _store_choice(form.get("store", ""))
    if staff.store_id is not None and store_id != staff.store_id:
        return _page(_("You can add staff to your own store only."), 422)
    try:
        with database().unit_of_work() as uow:
            created = admin.create_staff(
                uow,
                staff.merchant_id,
                username=form.get("username", ""),
                display_name=form.get("display_name", ""),
                role=form.get("role", ""),
                store_id=store_id,
                granted_by_role=staff.role,
            )
            uow.commit()
            name = created.user.username
    except (InvalidInput, Conflict, NotFound) as exc:
        return _page(exc.message, exc.status)
    return _show_once(created.password, _("temporary password"), name)


def _done(message: str) -> Redirect:
    flash(message)
    return redirect(url_for(".staff_page"), 303)


@bp.post("/staff/<int:staff_id>/deactivate")
def deactivate_staff(staff_id: int) -> Any:
    staff = _staff()
    _person_in_scope(staff, staff_id)
    if staff_id == staff.user_id:
        return _page(_("You cannot deactivate yourself."), 409)
    with database().unit_of_work() as uow:
        user = admin.set_active(uow, staff.merchant_id, staff_id, False)
        uow.commit()
        return _done(_("%(name)s is deactivated and signed out everywhere.", name=user.username))


@bp.post("/staff/<int:staff_id>/reactivate")
@step_up_required
def reactivate_staff(staff_id: int) -> Any:
    staff = _staff()
    _person_in_scope(staff, staff_id)
    with database().unit_of_work() as uow:
        user = admin.set_active(uow, staff.merchant_id, staff_id, True)
        uow.commit()
        return _done(_("%(name)s can sign in again.", name=user.username))


@bp.post("/staff/<int:staff_id>/language")
def set_staff_language(staff_id: int) -> Any:
    staff = _staff()
    _person_in_scope(staff, staff_id)
    with database().unit_of_work() as uow:
        user = admin.set_language(uow, staff.merchant_id, staff_id, request.form.get("language"))
        uow.commit()
        return _done(_("%(name)s's language is saved.", name=user.username))


@bp.post("/staff/<int:staff_id>/reset-password")
@step_up_required
def reset_password(staff_id: int) -> Any:
    staff = _staff()
    _person_in_scope(staff, staff_id)
    with database().unit_of_work() as uow:
        password = admin.reset_password(uow, staff.merchant_id, staff_id)
        name = admin.staff_member(uow, staff.merchant_id, staff_id).username
        uow.commit()
    return _show_once(password, _("temporary password"), name)


@bp.post("/staff/<int:staff_id>/reset-mfa")
@step_up_required
def reset_second_factor(staff_id: int) -> Any:
    staff = _staff()
    _person_in_scope(staff, staff_id)
    with database().unit_of_work() as uow:
        user = admin.reset_second_factor(uow, staff.merchant_id, staff_id)
        uow.commit()
        return _done(
            _("%(name)s sets up a new second factor at their next sign-in.", name=user.username)
        )


@bp.post("/stores")
@step_up_required
def create_store() -> Any:
    staff, form = _staff(), request.form
    if staff.store_id is not None:
        return _page(_("Only a manager of every store can add a store."), 403)
    try:
        with database().unit_of_work() as uow:
            store = admin.create_store(
                uow,
                staff.merchant_id,
                name=form.get("name", ""),
                city=form.get("city", ""),
                timezone=form.get("timezone", "").strip() or "UTC",
            )
            uow.commit()
            return _done(_("Store %(name)s created.", name=store.name))
    except InvalidInput as exc:
        return _page(exc.message, exc.status)


@bp.post("/tills")
@step_up_required
def create_till() -> Any:
    staff, form = _staff(), request.form
    store_id = _store_choice(form.get("store", ""))
    try:
        if store_id is None:
            raise InvalidInput("choose the till's store")
        _scoped(staff, store_id)
        with database().unit_of_work() as uow:
            made = admin.create_till(
                uow, staff.merchant_id, store_id, label=form.get("label", ""),
                name=form.get("name", ""),
            )  # fmt: skip
            uow.commit()
            label = made.till.label
    except (InvalidInput, Conflict, NotFound) as exc:
        return _page(exc.message, exc.status)
    return _show_once(made.key.key, _("API key"), _("till %(label)s", label=label))


@bp.post("/tills/<int:till_id>/rotate-key")
@step_up_required
def rotate_key(till_id: int) -> Any:
    staff = _staff()
    _till_in_scope(staff, till_id)
    grace = timedelta(seconds=staff_session.settings().security.key_grace_seconds)
    with database().unit_of_work() as uow:
        key = admin.rotate_key(uow, staff.merchant_id, till_id, grace=grace)
        uow.commit()
    note = f"the old key works for {grace} more" if grace else "the old key stopped"
    return _show_once(key.key, _("API key"), _("till %(id)s (%(note)s)", id=till_id, note=note))


@bp.post("/tills/<int:till_id>/revoke-key")
def revoke_key(till_id: int) -> Any:
    staff = _staff()
    _till_in_scope(staff, till_id)
    with database().unit_of_work() as uow:
        till = admin.revoke_key(uow, staff.merchant_id, till_id)
        uow.commit()
        return _done(
            _("Till %(label)s's keys stopped working; the till is deactivated.", label=till.label)
        )


@bp.post("/tills/<int:till_id>/reactivate")
@step_up_required
def reactivate_till(till_id: int) -> Any:
    staff = _staff()
    _till_in_scope(staff, till_id)
    with database().unit_of_work() as uow:
        key = admin.reactivate_till(uow, staff.merchant_id, till_id)
        uow.commit()
    return _show_once(key.key, _("API key"), _("till %(id)s", id=till_id))
