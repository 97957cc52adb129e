import asyncio
import json
import os
import time
from pathlib import Path

import azure.functions as func

bp = func.Blueprint()


def _record(name: str, line: str) -> None:
    """Queue and timer functions report what they saw to a file the test reads."""
    out = Path(os.environ["SAMPLE_OUTPUT_DIR"]) / name
    with out.open("a", encoding="utf-8") as f:
        f.write(line + "\n")


@bp.route(route="echo/{*rest}", methods=["GET", "POST", "PUT"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    payload = {
        "method": req.method,
        "url": req.url,
        "params": dict(req.params),
        "route_params": dict(req.route_params),
        "headers": dict(req.headers),
        "body": req.get_body().decode("utf-8", "replace"),
    }
    return func.HttpResponse(json.dumps(payload, sort_keys=True), mimetype="application/json",
                             headers={"X-Echo": "yes"})


@bp.route(route="items/{id:int}", methods=["GET"])
def item_by_id(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"id={req.route_params['id']}")


@bp.route(route="items/latest", methods=["GET"])
def item_latest(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("latest")


@bp.route(route="items/{name:alpha}", methods=["GET"])
def item_by_name(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"name={req.route_params['name']}")


@bp.route(route="things/{guid:guid}/{part?}", methods=["GET", "DELETE"])
def thing(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(dict(req.route_params), sort_keys=True), mimetype="application/json")


@bp.route(methods=["GET"])
def no_route(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("named after the function")


@bp.route(route="cookies", methods=["GET"])
def cookies(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse("two cookies", status_code=201, headers={"Cache-Control": "no-store"})
    response.headers.add("Set-Cookie", "a=1; Path=/; HttpOnly")
    response.headers.add("Set-Cookie", "b=2; Path=/; Secure; SameSite=Lax")
    return response


@bp.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("deliberate failure")


@bp.route(route="slow", methods=["GET"])
def slow(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(float(req.params.get("seconds", "1")))
    return func.HttpResponse("slept")


@bp.route(route="async-hello", methods=["GET"])
async def async_hello(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0.01)
    return func.HttpResponse(f"hello {req.params.get('name', 'world')}")


@bp.route(route="redirect", methods=["GET"])
def redirect(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(status_code=302, headers={"Location": "/api/echo/landed"})


@bp.route(route="settings/{name}", methods=["GET"])
def setting(req: func.HttpRequest) -> func.HttpResponse:
    """Shows how an app setting reached the process (local.settings.json vs environment)."""
    return func.HttpResponse(os.environ.get(req.route_params["name"], "<unset>"))


# Queue names come from app settings (%NAME%), so two hosts sharing one Azurite stay apart.
@bp.queue_trigger(arg_name="msg", queue_name="%SAMPLE_QUEUE_PREFIX%-work", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage) -> None:
    _record("work.log", json.dumps({"id": msg.id, "body": msg.get_body().decode(), "dequeue_count": msg.dequeue_count}))


@bp.queue_trigger(arg_name="msg", queue_name="%SAMPLE_QUEUE_PREFIX%-fail", connection="AzureWebJobsStorage")
def always_fails(msg: func.QueueMessage) -> None:
    _record("fail.log", json.dumps({"id": msg.id, "dequeue_count": msg.dequeue_count}))
    raise ValueError("this message can never be processed")


@bp.timer_trigger(arg_name="timer", schedule="* * * * * *", run_on_startup=False)
def every_second(timer: func.TimerRequest) -> None:
    _record("timer.log", json.dumps({"past_due": timer.past_due, "at": time.time(),
                                     "next": timer.schedule_status["Next"]}))
