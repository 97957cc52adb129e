"""Bulk assignment jobs (PRODUCT.md capability 3; services/assignment_job.py): their progress in the JSON
API and on the dashboard, the queue trigger that works through their chunks, and the timer that resumes
stalled ones.

Thin: the gate checks caller, subscription and `licenses.read` (whoever may see the license list may
follow an import into it); the views read the job's progress and render it.
"""

from __future__ import annotations

import logging

import azure.functions as func

from adapters.table_storage import ASSIGNMENT_JOBS_QUEUE
from handlers import gate
from handlers.blueprint import new_blueprint
from handlers.responses import SECURITY_HEADERS, error, json_response
from handlers.seat_changes import InvalidRequestId, request_id
from handlers.web import WebRequest
from services import access, assignment_job, bootstrap, observability
from services.assignment_job_record import Progress
from services.audit import Actor
from services.i18n import translator
from services.seat_change import Context
from services.subscription import Subscription

log = logging.getLogger(__name__)
bp = new_blueprint()


def job_url(subscription_id: str, job_id: str) -> str:
    """The job in the JSON API (the `Location` of a 202)."""
    return f"/api/v1/subscriptions/{subscription_id}/jobs/{job_id}"


def job_page_url(subscription_id: str, job_id: str) -> str:
    return f"/api/subscriptions/{subscription_id}/jobs/{job_id}"


def job_json(progress: Progress, subscription_id: str) -> dict[str, object]:
    return {**progress.as_json(), "url": job_url(subscription_id, progress.job.id),
            "page_url": job_page_url(subscription_id, progress.job.id)}


_SHOWN = ("listed", "to_assign", "assigned", "mails_queued", "failed", "already_assigned")


def shown_count(number: object, language: str) -> str:
    """A count as the page shows it: "10,000" in English, "10.000" in German."""
    return f"{number:,}".replace(",", "." if language == "de" else ",")


def job_view(progress: Progress, subscription_id: str, language: str) -> dict[str, object]:
    """`job_json` with its counts as the page shows them under `shown`."""
    view = job_json(progress, subscription_id)
    view["shown"] = {name: shown_count(view[name], language) for name in _SHOWN}
    return view


def _job_id(req: func.HttpRequest) -> str:
    """The route's job id (a request id: ASCII letters, digits, '-', '_', '.'); InvalidRequestId if not."""
    value = request_id(req.route_params.get("job_id"), "job_id")
    if value is None:
        raise InvalidRequestId("job_id")
    return value


# --- the JSON API -------------------------------------------------------------------------------------


@bp.route(route="v1/subscriptions/{subscription_id}/jobs/{job_id}", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.LICENSES_READ)
def api_assignment_job(req: func.HttpRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    job_id = _job_id(req)
    found = assignment_job.progress(bootstrap.unit_of_work(), subscription.id, job_id)
    if found is None:
        return error(404, "job_not_found", f"no assignment job {job_id} on this subscription")
    return json_response(job_json(found, subscription.id), headers={"Cache-Control": "no-store"})


# --- the dashboard ------------------------------------------------------------------------------------


@bp.route(route="subscriptions/{subscription_id}/jobs/{job_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.LICENSES_READ, not_found="licenses.not_found")
def assignment_job_page(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """The job's progress: a page that can be reloaded; with JavaScript its bar updates by itself."""
    t = translator(web.language)
    try:
        job_id = _job_id(web.req)
    except InvalidRequestId:
        return web.error_page(404, t("error.not_found.title"), t("jobs.not_found"))
    found = assignment_job.progress(bootstrap.unit_of_work(), subscription.id, job_id)
    if found is None:
        return web.error_page(404, t("error.not_found.title"), t("jobs.not_found"))
    return web.render("assignment_job.html", subscription=subscription,
                      job=job_view(found, subscription.id, web.language))


@bp.route(route="subscriptions/{subscription_id}/jobs/{job_id}/progress", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.LICENSES_READ, not_found="licenses.not_found")
def assignment_job_progress(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """What the progress bar polls (the dashboard session, not a bearer token): the API's answer."""
    try:
        job_id = _job_id(web.req)
    except InvalidRequestId as exc:
        return error(400, exc.code, str(exc), field=exc.field)
    found = assignment_job.progress(bootstrap.unit_of_work(), subscription.id, job_id)
    if found is None:
        return error(404, "job_not_found", f"no assignment job {job_id} on this subscription")
    return json_response(job_json(found, subscription.id), headers={"Cache-Control": "no-store"})


# The page's Content-Security-Policy allows scripts from our own origin only: the progress bar's few lines
# are served here. It polls the job every second while it runs and reloads the page once it has finished
# (the finished page is rendered by the server, failures listed); without JavaScript, reloading the page
# shows the same.
PROGRESS_SCRIPT = """\
"use strict";
document.querySelectorAll("[data-job-progress]").forEach(function (box) {
  var url = box.getAttribute("data-job-progress");
  var bar = box.querySelector("progress");
  var language = document.documentElement.lang || undefined;
  function show(job) {
    if (bar) { bar.value = job.percent; bar.textContent = job.percent + " %"; }
    box.querySelectorAll("[data-field]").forEach(function (field) {
      var value = job[field.getAttribute("data-field")];
      if (typeof value === "number") { field.textContent = value.toLocaleString(language); }
    });
  }
  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (job) {
        if (!job) { return; }
        show(job);
        if (job.status === "running") { window.setTimeout(poll, 1000); } else { window.location.reload(); }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  if (box.getAttribute("data-status") === "running") { window.setTimeout(poll, 1000); }
});
"""


@bp.route(route="assets/job-progress.js", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def job_progress_script(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(PROGRESS_SCRIPT, status_code=200, mimetype="text/javascript", charset="utf-8",
                             headers={**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"})


# --- the queue and the timer ------------------------------------------------------------------------------


def _context() -> Context:
    return Context(bootstrap.unit_of_work(), bootstrap.settings(), Actor.system("assignment job"))


@bp.queue_trigger(arg_name="msg", queue_name=ASSIGNMENT_JOBS_QUEUE, connection="AzureWebJobsStorage")
def run_assignment_chunk(msg: func.QueueMessage, context: func.Context) -> None:
    """One chunk of a job: its seats (unless written), lookup rows and welcome mails. Retried by the host;
    the last attempt records the chunk as failed before the message goes to the poison queue."""
    message = assignment_job.parse(msg.get_body())
    with observability.correlation(context, subscription_id=message.subscription_id):
        last = (msg.dequeue_count or 1) >= assignment_job.MAX_ATTEMPTS
        assignment_job.run_chunk(_context(), message, last_attempt=last)


@bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False)
def resume_assignment_jobs(timer: func.TimerRequest) -> None:
    """Jobs where nothing happened for a while get their unfinished chunks sent again (found through
    the index of open jobs, never by scanning the subscriptions)."""
    done = assignment_job.resume_stalled(_context())
    if done.resumed or done.finished:
        log.warning("assignment jobs: %d resumed, %d finished by the timer", done.resumed, done.finished)
