"""The console's pages: each asks the services (``client.py``) as the signed-in person, and
shows what they answer; each form is one call, and what a service refuses is shown on the form
it came from, with the service's reason.

A GET shows a page. A POST checks the form (CSRF, origin), makes one call, and on success sends
the browser back to the page (303) with a notice; on a refusal it shows the page again with the
form as it was filled in and the reason beside it, under the service's status code. htmx
(``hx-boost``) makes these whole-page round trips partial ones where the browser runs scripts;
without scripts every page works the same.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.console import forms, views
from services.console.auth import LOGIN_COOKIE, SESSION_COOKIE, Issuer, Session, Sessions
from services.console.client import (
    NotFoundError,
    RefusedError,
    ServiceError,
    Services,
    SignedOutError,
)
from services.console.i18n import LANGUAGES, N_
from services.console.settings import SERVICES, ConsoleSettings
from services.console.web import (
    LANGUAGE_COOKIE,
    BadFormError,
    Form,
    NotSignedInError,
    Page,
    Renderer,
    language_of,
    local_path,
    origin_of,
    read_form,
    redirect,
    session_of,
)
from shared.actor import Role
from shared.edge import DOCUMENT_CSP
from shared.logging import get_logger

log = get_logger(__name__)

Errors = dict[str, ServiceError]


def router(
    settings: ConsoleSettings,
    services: Services,
    sessions: Sessions,
    issuer: Issuer,
    renderer: Renderer,
) -> APIRouter:
    api = APIRouter(include_in_schema=False)
    origin = origin_of(settings.console_url)

    # -- the plumbing ----------------------------------------------------------------------
    def signed_in(request: Request) -> Session:
        session = session_of(request, sessions)
        if session is None:
            raise NotSignedInError
        return session

    def page(request: Request, session: Session | None) -> Page:
        notices: list[str] = []
        if session is not None:
            notices, session.notices = session.notices, []
        return Page(request, session, language_of(request), notices)

    async def posted(request: Request) -> tuple[Session, Form]:
        session = signed_in(request)
        return session, await read_form(request, session, origin)

    def done(session: Session, notice: str, target: str) -> Response:
        session.notices.append(notice)
        return redirect(target)

    async def attempt(
        session: Session,
        form: Form,
        name: str,
        call: Callable[[], Awaitable[Any]],
        show: Callable[..., Awaitable[Response]],
        notice: str,
        target: str,
    ) -> Response:
        """One form's call: back to the page with a notice, or the page again with the
        service's reason on the form."""
        try:
            await call()
        except SignedOutError:
            raise  # sign in again (bootstrap's handler)
        except ServiceError as error:
            if isinstance(error, RefusedError):
                log.info("console.refused", form=name, service=error.service)
            return await show(form=form, errors={name: error}, status=error.status)
        return done(session, notice, target)

    # -- signing in and out ----------------------------------------------------------------
    @api.get("/login")
    async def login(request: Request, next: str = "/") -> Response:
        attempt_ = sessions.start_login(local_path(next))
        response = RedirectResponse(await issuer.authorize_url(attempt_), status_code=303)
        response.set_cookie(
            LOGIN_COOKIE,
            attempt_.state,
            max_age=600,
            path="/auth",
            httponly=True,
            secure=settings.secure_cookies,
            samesite="lax",
        )
        return response

    @api.get("/auth/callback")
    async def callback(request: Request) -> Response:
        query = request.query_params
        state = query.get("state", "")
        bound = request.cookies.get(LOGIN_COOKIE, "")
        shown = page(request, None)
        if query.get("error"):
            return renderer.render(
                shown, "signed_out.html", 400, problem=N_("The sign-in was cancelled or refused.")
            )
        if not state or not bound or not secrets.compare_digest(state, bound):
            return renderer.render(
                shown,
                "signed_out.html",
                400,
                problem=N_("This sign-in was not started in this browser. Please sign in again."),
            )
        attempt_ = sessions.take_login(state)
        if attempt_ is None:
            return renderer.render(
                shown,
                "signed_out.html",
                400,
                problem=N_("This sign-in has expired or was used already. Please sign in again."),
            )
        returned_by = query.get("iss")
        if returned_by is not None and returned_by != settings.oidc_issuer:
            return renderer.render(
                shown,
                "signed_out.html",
                400,
                problem=N_("The sign-in came back from another issuer. Please sign in again."),
            )
        principal, token, expires = await issuer.sign_in(query.get("code", ""), attempt_)
        session = sessions.create(principal, token, expires)
        log.info("console.signed_in", roles=sorted(r.value for r in principal.roles))
        response = redirect(attempt_.next_path)
        response.set_cookie(
            SESSION_COOKIE,
            session.id,
            httponly=True,
            secure=settings.secure_cookies,
            samesite="lax",
            path="/",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/auth")
        return response

    @api.post("/logout")
    async def logout(request: Request) -> Response:
        session, _ = await posted(request)
        sessions.end(session.id)
        response = renderer.render(page(request, None), "signed_out.html", 200, problem=None)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @api.get("/language/{language}")
    async def choose_language(language: str, next: str = "/") -> Response:
        response = redirect(local_path(next))
        if language in LANGUAGES:
            response.set_cookie(
                LANGUAGE_COOKIE,
                language,
                max_age=365 * 86400,
                httponly=True,
                secure=settings.secure_cookies,
                samesite="lax",
            )
        return response

    # -- home ------------------------------------------------------------------------------
    @api.get("/")
    async def home(request: Request) -> Response:
        session = session_of(request, sessions)
        if session is None:
            return renderer.render(page(request, None), "welcome.html")
        return renderer.render(page(request, session), "home.html")

    @api.get("/go")
    async def go(request: Request, case: str = "") -> Response:
        session = signed_in(request)
        try:
            case_id = UUID(case.strip())
        except ValueError:
            return renderer.render(
                page(request, session),
                "home.html",
                422,
                problem=N_("That is not a case id: a case id looks like 3f1c2b4e-…"),
            )
        return redirect(f"/cases/{case_id}")

    # -- the regional manager: the board ---------------------------------------------------
    @api.get("/board")
    async def case_board(
        request: Request,
        stage: str = "",
        model: str = "",
        region: str = "",
        coordinator: str = "",
        overdue: str = "",
    ) -> Response:
        session = signed_in(request)
        lists: dict[str, list[dict[str, Any]]] = {}
        refusals = []
        for service, read in (
            ("intake", services.requests),
            ("coordination", services.coordination_cases),
            ("plans", services.plan_cases),
            ("followup", services.follow_ups),
        ):
            try:
                lists[service] = await read(session.token)
            except RefusedError as error:
                refusals.append(error)
        filters = {
            "stage": stage,
            "model": model,
            "region": region,
            "coordinator": coordinator,
            "overdue": overdue,
        }
        shown = views.board(lists, filters)
        return renderer.render(
            page(request, session), "board.html", board=shown, filters=filters, refusals=refusals
        )

    # -- the regional manager: requests ----------------------------------------------------
    @api.get("/requests")
    async def new_requests(request: Request) -> Response:
        session = signed_in(request)
        rows = await services.requests(session.token)
        waiting = [r for r in rows if r.get("stage") in ("submitted", "clarified")]
        return renderer.render(page(request, session), "requests.html", rows=waiting)

    async def show_new_request(
        request: Request,
        session: Session,
        form: Form | None = None,
        errors: Errors | None = None,
        status: int = 200,
    ) -> Response:
        return renderer.render(
            page(request, session),
            "request_new.html",
            status,
            # The key makes a second click (or a retry) the same request, not a second one.
            values=form.flat() if form else {"languages": "nl", "key": secrets.token_urlsafe(16)},
            errors=errors or {},
        )

    @api.get("/requests/new")
    async def request_form(request: Request) -> Response:
        return await show_new_request(request, signed_in(request))

    @api.post("/requests/new")
    async def submit_request(request: Request) -> Response:
        session, form = await posted(request)
        key = form.one("key") or secrets.token_urlsafe(16)

        async def show(**kw: Any) -> Response:
            return await show_new_request(request, session, **kw)

        try:
            created = await services.submit(session.token, forms.request_body(form), key)
        except SignedOutError:
            raise
        except ServiceError as error:
            return await show(form=form, errors={"submit": error}, status=error.status)
        target = f"/cases/{created['case_id']}"
        if Role.REGIONAL_MANAGER in session.principal.roles:
            target += "/request"
        return done(session, N_("The request was submitted."), target)

    async def show_request(
        request: Request,
        session: Session,
        case_id: UUID,
        form: Form | None = None,
        errors: Errors | None = None,
        status: int = 200,
    ) -> Response:
        case = await services.request(session.token, case_id)
        questions = case.get("conference_questions") or []
        requirements = case.get("minimum_requirements") or []
        return renderer.render(
            page(request, session),
            "request.html",
            status,
            case=case,
            case_id=case_id,
            form=form,
            errors=errors or {},
            question_rows=forms.rows(form, "q", len(questions)),
            requirement_rows=forms.rows(form, "m", len(requirements)),
        )

    @api.get("/cases/{case_id}/request")
    async def request_page(request: Request, case_id: UUID) -> Response:
        return await show_request(request, signed_in(request), case_id)

    @api.post("/cases/{case_id}/request/{action}")
    async def request_action(request: Request, case_id: UUID, action: str) -> Response:
        session, form = await posted(request)

        async def show(**kw: Any) -> Response:
            return await show_request(request, session, case_id, **kw)

        target = f"/cases/{case_id}/request"
        if action == "clarify":
            if form.one("more"):
                return await show(form=form)
            body = forms.clarification_body(form)
            return await attempt(
                session,
                form,
                "clarify",
                lambda: services.clarify(session.token, case_id, body),
                show,
                N_("The clarification was saved."),
                target,
            )
        if action == "accept":
            return await attempt(
                session,
                form,
                "accept",
                lambda: services.accept(session.token, case_id),
                show,
                N_("The request was accepted: coordination looks for a coordinator."),
                target,
            )
        if action == "talk":
            talk = {
                "held_on": form.one("held_on") or date.today().isoformat(),
                "outcome": form.one("outcome"),
            }
            return await attempt(
                session,
                form,
                "talk",
                lambda: services.informational_talk(session.token, case_id, talk),
                show,
                N_("The informational talk was recorded."),
                target,
            )
        if action == "withdraw":
            return await attempt(
                session,
                form,
                "withdraw",
                lambda: services.withdraw(session.token, case_id, form.one("reason")),
                show,
                N_("The request was withdrawn."),
                target,
            )
        raise NotFoundError("console", 404, "no such action")

    # -- the regional manager: assignment and the pool -------------------------------------
    @api.get("/unassigned")
    async def unassigned(request: Request) -> Response:
        session = signed_in(request)
        rows = await services.unassigned(session.token)
        return renderer.render(page(request, session), "unassigned.html", rows=rows)

    async def show_assign(
        request: Request,
        session: Session,
        case_id: UUID,
        chosen: list[str],
        form: Form | None = None,
        errors: Errors | None = None,
        status: int = 200,
    ) -> Response:
        case = await services.coordination_case(session.token, case_id)
        pool = await services.coordinators(session.token)
        check = None
        if chosen:
            try:
                check = await services.check_assignment(session.token, case_id, chosen)
            except SignedOutError:
                raise
            except ServiceError as error:
                errors = {**(errors or {}), "check": error}
                status = max(status, error.status)
        return renderer.render(
            page(request, session),
            "assign.html",
            status,
            case=case,
            case_id=case_id,
            pool=pool,
            chosen=chosen,
            check=check,
            form=form,
            errors=errors or {},
        )

    @api.get("/cases/{case_id}/assign")
    async def assign_page(request: Request, case_id: UUID) -> Response:
        chosen = [c for c in request.query_params.getlist("coordinator") if c][:2]
        return await show_assign(request, signed_in(request), case_id, chosen)

    @api.post("/cases/{case_id}/assign")
    async def assign(request: Request, case_id: UUID) -> Response:
        session, form = await posted(request)
        chosen = form.all("coordinator")[:2]

        async def show(**kw: Any) -> Response:
            return await show_assign(request, session, case_id, chosen, **kw)

        return await attempt(
            session,
            form,
            "assign",
            lambda: services.assign(session.token, case_id, chosen, form.one("reason")),
            show,
            N_("The coordinators were assigned."),
            f"/cases/{case_id}",
        )

    async def show_pool(
        request: Request,
        session: Session,
        form: Form | None = None,
        errors: Errors | None = None,
        status: int = 200,
    ) -> Response:
        pool = await services.coordinators(session.token)
        return renderer.render(
            page(request, session),
            "pool.html",
            status,
            pool=pool,
            values=form.flat() if form else {"languages": "nl", "capacity": "3"},
            errors=errors or {},
        )

    @api.get("/pool")
    async def pool_page(request: Request) -> Response:
        return await show_pool(request, signed_in(request))

    @api.post("/pool")
    async def register(request: Request) -> Response:
        session, form = await posted(request)

        async def show(**kw: Any) -> Response:
            return await show_pool(request, session, **kw)

        body = forms.coordinator_body(form)
        return await attempt(
            session,
            form,
            "register",
            lambda: services.register_coordinator(session.token, body),
            show,
            N_("The coordinator was saved."),
            "/pool",
        )

    @api.post("/pool/{coordinator_id}/availability")
    async def availability(request: Request, coordinator_id: str) -> Response:
        session, form = await posted(request)

        async def show(**kw: Any) -> Response:
            return await show_pool(request, session, **kw)

        available = form.one("available") == "yes"
        return await attempt(
            session,
            form,
            f"availability-{coordinator_id}",
            lambda: services.set_availability(
                session.token, coordinator_id, available, form.one("until") or None
            ),
            show,
            N_("The availability was saved."),
            "/pool",
        )

    # -- the coordinator -------------------------------------------------------------------
    @api.get("/mine")
    async def my_cases(request: Request) -> Response:
        session = signed_in(request)
        rows = await services.coordination_cases(session.token)
        due = sorted(
            rows,
            key=lambda r: (not r.get("overdue"), str(r.get("first_contact_due") or "9999")),
        )
        return renderer.render(
            page(request, session), "mine.html", rows=due, today=date.today().isoformat()
        )

    async def show_preparation(
        request: Request,
        session: Session,
        case_id: UUID,
        form: Form | None = None,
        errors: Errors | None = None,
        status: int = 200,
    ) -> Response:
        case = await services.coordination_case(session.token, case_id)
        participants = case.get("participants") or []
        return renderer.render(
            page(request, session),
            "preparation.html",
            status,
            case=case,
            case_id=case_id,
            participants=participants,
            present_options=views.can_come(participants),
            parts=views.PARTS,
            chaired=case.get("model") in views.COORDINATOR_CHAIRED,
            form=form,
            errors=errors or {},
            today=date.today().isoformat(),
        )

    @api.get("/cases/{case_id}/preparation")
    async def preparation(request: Request, case_id: UUID) -> Response:
        return await show_preparation(request, signed_in(request), case_id)

    preparation_notices = {
        "contact": N_("The first contact was recorded."),
        "invite": N_("The participant was invited."),
        "information": N_("The information needed was noted."),
        "arrangements": N_("The arrangements were saved."),
        "schedule": N_("The conference was scheduled."),
        "conference": N_("The conference was recorded as held."),
        "end": N_("The case was ended without a conference."),
    }

    @api.post("/cases/{case_id}/preparation/{action}")
    async def prepare(request: Request, case_id: UUID, action: str) -> Response:
        session, form = await posted(request)
        token = session.token

        async def show(**kw: Any) -> Response:
            return await show_preparation(request, session, case_id, **kw)

        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "contact": lambda: services.first_contact(token, case_id),
            "invite": lambda: services.invite(token, case_id, forms.participant_body(form)),
            "information": lambda: services.need_information(
                token, case_id, {"topic": form.one("topic"), "brought_by": form.one("brought_by")}
            ),
            "arrangements": lambda: services.arrange(token, case_id, forms.arrangements_body(form)),
            "schedule": lambda: services.schedule(
                token, case_id, {"on": form.one("on"), "venue": form.one("venue")}
            ),
            "conference": lambda: services.hold_conference(
                token, case_id, forms.conference_body(form)
            ),
            "end": lambda: services.end_without_conference(token, case_id, forms.ending_body(form)),
        }
        if action not in calls:
            raise NotFoundError("console", 404, "no such action")
        anchor = "" if action == "conference" else f"#{action}"
        return await attempt(
            session,
            form,
            action,
            calls[action],
            show,
            preparation_notices[action],
            f"/cases/{case_id}/preparation{anchor}",
        )

    answers = {
        "confirm": N_("The participant's confirmation was recorded."),
        "decline": N_("The participant's decline was recorded. It is final."),
        "consent/withdraw": N_("The withdrawn consent was recorded."),
        "informed": N_("Recorded that the participant was informed."),
        "not-informed": N_("Recorded why the participant could not be informed."),
    }

    @api.post("/cases/{case_id}/participants/{participant_id}/{answer:path}")
    async def participant_answer(
        request: Request, case_id: UUID, participant_id: str, answer: str
    ) -> Response:
        session, form = await posted(request)
        if answer not in answers:
            raise NotFoundError("console", 404, "no such answer")
        body: dict[str, Any] = {}
        if answer == "confirm":
            body = {"share_details": form.checked("share_details")}
        elif answer in ("decline", "not-informed"):
            body = {"reason": form.one("reason")}
        elif answer == "informed":
            body = {}  # today
        else:
            body = {"what": form.one("what")}

        async def show(**kw: Any) -> Response:
            return await show_preparation(request, session, case_id, **kw)

        return await attempt(
            session,
            form,
            f"answer-{participant_id}",
            lambda: services.answer(session.token, case_id, participant_id, answer, body),
            show,
            answers[answer],
            f"/cases/{case_id}/preparation#participants",
        )

    # -- the plan --------------------------------------------------------------------------
    async def show_plan(
        request: Request,
        session: Session,
        case_id: UUID,
        form: Form | None = None,
        errors: Errors | None = None,
        status: int = 200,
    ) -> Response:
        plan = await services.plan(session.token, case_id)
        versions = plan.get("versions") or []
        current = versions[-1] if versions else None
        content = current["content"] if current else {}
        return renderer.render(
            page(request, session),
            "plan.html",
            status,
            plan=plan,
            case_id=case_id,
            current=current,
            content=content,
            history=views.versions_with_changes(plan),
            agreement_rows=forms.rows(form, "a", len(content.get("agreements", []))),
            support_rows=forms.rows(form, "s", len(content.get("professional_support", []))),
            form=form,
            errors=errors or {},
            is_professional=Role.PROFESSIONAL in session.principal.roles,
            is_manager=Role.REGIONAL_MANAGER in session.principal.roles,
        )

    @api.get("/cases/{case_id}/plan")
    async def plan_page(request: Request, case_id: UUID) -> Response:
        return await show_plan(request, signed_in(request), case_id)

    plan_notices = {
        "recipients": N_("Who gets a copy was saved."),
        "write": N_("A new version of the plan was saved."),
        "accept": N_("The family's acceptance was recorded."),
        "sign-off": N_("The sign-off was recorded."),
        "signatory": N_("The professional who signs off the requirement was named."),
        "distribute": N_("The plan was distributed: the copies are on their way."),
        "handover": N_("The copy handed over was recorded."),
    }

    @api.post("/cases/{case_id}/plan/{action}")
    async def plan_action(request: Request, case_id: UUID, action: str) -> Response:
        session, form = await posted(request)
        token = session.token

        async def show(**kw: Any) -> Response:
            return await show_plan(request, session, case_id, **kw)

        if action == "write" and form.one("more"):
            return await show(form=form)
        version = forms.number(form.one("version"), 0)
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "recipients": lambda: services.name_recipients(
                token, case_id, forms.recipients_body(form, form.all("participant"))
            ),
            "write": lambda: services.write_plan(token, case_id, forms.plan_body(form)),
            "accept": lambda: services.accept_plan(token, case_id, version),
            "sign-off": lambda: services.sign_off(
                token,
                case_id,
                {
                    "version": version,
                    "meets": form.one("meets") == "yes",
                    "reason": form.one("reason") or None,
                },
            ),
            "signatory": lambda: services.name_signatory(
                token,
                case_id,
                form.one("requirement_id"),
                {
                    "subject": form.one("subject"),
                    "name": form.one("name"),
                    "reason": form.one("reason"),
                },
            ),
            "distribute": lambda: services.distribute(
                token,
                case_id,
                {
                    "shared_with_organisations": form.lines("organisations"),
                    "version": version or None,
                },
            ),
            "handover": lambda: services.hand_over(
                token,
                case_id,
                {
                    "version": version,
                    "participant_id": form.one("participant_id"),
                    "channel": form.one("channel"),
                },
            ),
        }
        if action not in calls:
            raise NotFoundError("console", 404, "no such action")
        return await attempt(
            session,
            form,
            action,
            calls[action],
            show,
            plan_notices[action],
            f"/cases/{case_id}/plan#{action}",
        )

    @api.get("/cases/{case_id}/plan/document.{kind}")
    async def plan_document(
        request: Request, case_id: UUID, kind: str, version: int | None = None
    ) -> Response:
        session = signed_in(request)
        if kind not in ("html", "pdf"):
            raise NotFoundError("console", 404, "no such document")
        content, media_type = await services.plan_document(session.token, case_id, kind, version)
        # The printed copy is the service's own document: it keeps a policy that runs nothing.
        return Response(
            content, media_type=media_type, headers={"Content-Security-Policy": DOCUMENT_CSP}
        )

    # -- follow-up -------------------------------------------------------------------------
    @api.get("/research")
    async def research(request: Request) -> Response:
        session = signed_in(request)
        rows = await services.follow_ups(session.token)
        rows.sort(
            key=lambda r: (r.get("stage") != "follow_up_due", str(r.get("next_due_at") or "~"))
        )
        return renderer.render(page(request, session), "research.html", rows=rows)

    async def show_follow_up(
        request: Request,
        session: Session,
        case_id: UUID,
        form: Form | None = None,
        errors: Errors | None = None,
        status: int = 200,
    ) -> Response:
        follow_up = await services.follow_up(session.token, case_id)
        return renderer.render(
            page(request, session),
            "follow_up.html",
            status,
            follow_up=follow_up,
            case_id=case_id,
            open_contacts=views.open_contacts(follow_up),
            open_meetings=views.open_meetings(follow_up),
            unrated=views.unrated_contacts(follow_up),
            rating_rows=forms.RATING_ROWS,
            form=form,
            errors=errors or {},
        )

    @api.get("/cases/{case_id}/follow-up")
    async def follow_up_page(request: Request, case_id: UUID) -> Response:
        return await show_follow_up(request, signed_in(request), case_id)

    @api.post("/cases/{case_id}/follow-up/{action}")
    async def follow_up_action(request: Request, case_id: UUID, action: str) -> Response:
        session, form = await posted(request)
        token = session.token

        async def show(**kw: Any) -> Response:
            return await show_follow_up(request, session, case_id, **kw)

        agreements = form.all("agreement")
        key = form.one("key") or secrets.token_urlsafe(16)
        calls: dict[str, tuple[Callable[[], Awaitable[Any]], str]] = {
            "outcome": (
                lambda: services.record_outcome(
                    token, case_id, forms.outcome_body(form, agreements)
                ),
                N_("The outcome was recorded."),
            ),
            "meeting": (
                lambda: services.record_meeting(
                    token, case_id, forms.meeting_body(form, agreements)
                ),
                N_("The family's meeting was recorded."),
            ),
            "ratings": (
                lambda: services.record_ratings(token, case_id, forms.ratings_body(form)),
                N_("The marks were recorded."),
            ),
            "conference": (
                lambda: services.follow_up_conference(token, case_id, form.one("reason"), key),
                N_("A follow-up conference was asked for: intake opens it as a new case."),
            ),
        }
        if action in calls:
            call, notice = calls[action]
            return await attempt(
                session, form, action, call, show, notice, f"/cases/{case_id}/follow-up"
            )
        raise NotFoundError("console", 404, "no such action")

    # -- the case, for everyone entitled ---------------------------------------------------
    async def per_service(
        session: Session, read: Callable[[str], Awaitable[Any]]
    ) -> tuple[dict[str, Any], dict[str, ServiceError]]:
        """Each service's answer, and each one's refusal or absence (shown as such)."""
        found: dict[str, Any] = {}
        missing: dict[str, ServiceError] = {}
        for service in SERVICES:
            try:
                found[service] = await read(service)
            except SignedOutError:
                raise
            except ServiceError as error:
                missing[service] = error
        return found, missing

    @api.get("/cases/{case_id}")
    async def case_page(request: Request, case_id: UUID) -> Response:
        session = signed_in(request)
        found, missing = await per_service(
            session, lambda s: services.case_in(s, session.token, case_id)
        )
        if not found:
            # Nobody would show it: the most telling refusal is the answer.
            raise _telling(missing)
        return renderer.render(
            page(request, session),
            "case.html",
            case_id=case_id,
            found={s: views.readable(v) for s, v in found.items()},
            missing=missing,
        )

    @api.get("/cases/{case_id}/timeline")
    async def case_timeline(request: Request, case_id: UUID) -> Response:
        session = signed_in(request)
        found, missing = await per_service(
            session, lambda s: services.history(s, session.token, case_id)
        )
        if not found:
            raise _telling(missing)
        return renderer.render(
            page(request, session),
            "timeline.html",
            case_id=case_id,
            entries=views.timeline(found),
            missing=missing,
        )

    @api.get("/cases/{case_id}/access-log")
    async def case_access_log(request: Request, case_id: UUID) -> Response:
        session = signed_in(request)
        found, missing = await per_service(
            session, lambda s: services.access_log(s, session.token, case_id)
        )
        if not found:
            raise _telling(missing)
        return renderer.render(
            page(request, session),
            "access_log.html",
            case_id=case_id,
            entries=views.access_entries(found),
            missing=missing,
        )

    return api


def _telling(missing: dict[str, ServiceError]) -> ServiceError:
    """Of the services' refusals, the one that says most: gone, refused, then not found."""
    for status in (410, 403, 503, 404):
        for error in missing.values():
            if error.status == status:
                return error
    return next(iter(missing.values()))


__all__ = ["BadFormError", "router"]
