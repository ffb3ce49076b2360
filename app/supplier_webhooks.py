"""`POST /webhooks/suppliers/{code}`: a supplier's signed push (Standard Webhooks), applied before
the answer. 200 `{"syncRunId"}` once applied (and for a replayed `webhook-id`, applying nothing);
401 for a bad, missing or stale signature, storing nothing; 400 for a body of the wrong shape;
404 for an unknown supplier; 409/503 with Retry-After while the same delivery or another run of
the supplier is under way."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from strawberry.relay import to_base64

from app.services.supply import inbound


async def supplier_webhook(request: Request) -> JSONResponse:
    services = request.app.state.runtime.services
    body = await request.body()
    outcome = await inbound.receive(services, request.path_params["code"], request.headers, body)
    if outcome.run_id is not None:
        return JSONResponse({"syncRunId": to_base64("SyncRun", outcome.run_id)}, status_code=outcome.status)
    headers = {"Retry-After": str(outcome.retry_after_s)} if outcome.retry_after_s else None
    return JSONResponse({"error": outcome.error}, status_code=outcome.status, headers=headers)
